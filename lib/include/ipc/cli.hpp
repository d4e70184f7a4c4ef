// SPDX-License-Identifier: MIT
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <CLI/CLI.hpp>

#include "ipc/error.hpp"
#include "ipc/fd.hpp"
#include "ipc/output.hpp"
#include "ipc/stream.hpp"

/// The contract's command line, shared by every binary: common options, the
/// run wrapper that turns errors into messages and exit statuses, and output.
namespace ipc::cli {

/// -o/--output, --json, -q/--quiet: every verb has them.
struct output_options {
    std::string format_name = "text";
    bool json = false;
    bool quiet = false;
    out::format format() const;
};

/// -t/--timeout and -n/--nonblock.
struct wait_options {
    std::string timeout = "inf";
    bool nonblock = false;
    /// nullopt: wait forever; zero: do not wait.
    std::optional<std::chrono::nanoseconds> value() const;
    ipc::deadline deadline() const { return ipc::deadline::from(value()); }
};

/// How recv writes messages: -0, --no-delimiter, plus -o jsonl.
struct print_options {
    bool nul = false;
    bool no_delimiter = false;
};

/// How send reads messages from stdin: -0, --whole, --jsonl, --file.
struct input_options {
    bool nul = false;
    bool whole = false;
    bool jsonl = false;
    std::string file;
    stream::input_mode mode() const;
};

class app {
public:
    using handler = std::function<int()>;

    /// name is the binary's name ("ipc-pipe"); summary is one line for --help.
    app(std::string name, std::string summary);
    app(const app&) = delete;
    app& operator=(const app&) = delete;

    CLI::App& root() { return *root_; }

    /// A verb with its own options; every verb gets -o/--json/-q. The handler
    /// runs after a successful parse and returns the exit status.
    CLI::App* verb(const std::string& name, const std::string& description, handler h);

    /// Adds -t/--timeout DUR and -n/--nonblock to a verb.
    void add_wait(CLI::App* verb, wait_options& w, const std::string& default_timeout = "inf");
    /// Adds -m/--mode OCTAL (default 0600).
    void add_mode(CLI::App* verb, std::string& mode_text);
    /// Adds -0 and --no-delimiter (recv's output).
    void add_print(CLI::App* verb, print_options& p);
    /// Adds -0, --whole, --jsonl, --file (send's input).
    void add_input(CLI::App* verb, input_options& in);

    const output_options& output() const { return out_; }

    /// Parses argv, runs the chosen verb, flushes stdout, and maps every
    /// outcome to the contract's exit status. Never throws.
    int run(int argc, char** argv) noexcept;

private:
    std::string name_;
    std::unique_ptr<CLI::App> root_;
    std::vector<std::pair<CLI::App*, handler>> handlers_;
    std::vector<std::pair<CLI::App*, wait_options*>> waits_;
    output_options out_;
};

/// The running binary's name, for messages.
std::string_view program();

/// True when the user asked for no output on success (-q).
bool quiet();

/// The chosen output format.
out::format format();

/// Reports an error on stderr as the run wrapper does (one line, or the JSON
/// error object with --json/-o jsonl), for verbs that carry on past one.
void report(const error& e);

/// "ipc-X: warning: MSG" on stderr, unless --quiet.
void warn(std::string_view message);

/// Prints records of one kind in the chosen format (nothing with --quiet).
void emit(std::string_view kind, std::span<const out::record> records,
          out::layout text_layout = out::layout::table);

/// The printer recv uses, from its options and the chosen format.
stream::printer make_printer(const print_options& p);

} // namespace ipc::cli
