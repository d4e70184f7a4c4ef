// SPDX-License-Identifier: MIT
#include "ipc/cli.hpp"

#include <cstdio>
#include <cstring>
#include <iostream>

#include <fmt/format.h>

#include "ipc/error.hpp"
#include "ipc/parse.hpp"

#ifndef IPC_VERSION
#define IPC_VERSION "0.0.0"
#endif

namespace ipc::cli {

namespace {

std::string g_program = "ipc";
const output_options* g_output = nullptr;

// The --json error object, or the one-line message.
void report(const std::string& message, int err, int status, bool as_json) {
    if (as_json) {
        out::json e = out::json::object();
        e["message"] = message;
        e["errno"] = err;
        if (err) e["errno_name"] = std::string(errno_name(err));
        else e["errno_name"] = nullptr;
        e["exit_status"] = status;
        out::json doc = out::json::object();
        doc["error"] = e;
        std::string text = doc.dump(-1, ' ', false, out::json::error_handler_t::replace) + "\n";
        std::fputs(text.c_str(), stderr);
    } else {
        std::fprintf(stderr, "%s: %s\n", g_program.c_str(), message.c_str());
    }
}

// Whether argv asks for JSON, for errors found before the parse finished.
bool argv_wants_json(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "--") break;
        if (a == "--json" || a == "-ojson" || a == "--output=json" || a == "-ojsonl" ||
            a == "--output=jsonl")
            return true;
        if ((a == "-o" || a == "--output") && i + 1 < argc &&
            (std::string_view(argv[i + 1]) == "json" || std::string_view(argv[i + 1]) == "jsonl"))
            return true;
    }
    return false;
}

} // namespace

out::format output_options::format() const {
    if (json) return out::format::json;
    return out::parse_format(format_name);
}

std::optional<std::chrono::nanoseconds> wait_options::value() const {
    if (nonblock) return std::chrono::nanoseconds(0);
    return parse::duration(timeout);
}

stream::input_mode input_options::mode() const {
    int chosen = int(nul) + int(whole) + int(jsonl);
    if (chosen > 1) throw usage_error("choose one of -0, --whole and --jsonl");
    if (nul) return stream::input_mode::nul;
    if (whole) return stream::input_mode::whole;
    if (jsonl) return stream::input_mode::jsonl;
    return stream::input_mode::line;
}

std::string_view program() { return g_program; }

bool quiet() { return g_output && g_output->quiet; }

out::format format() { return g_output ? g_output->format() : out::format::text; }

void report(const error& e) {
    auto f = format();
    report(e.what(), e.errno_value(), static_cast<int>(e.code()),
           f == out::format::json || f == out::format::jsonl);
}

void warn(std::string_view message) {
    if (quiet()) return;
    std::fprintf(stderr, "%s: warning: %.*s\n", g_program.c_str(), static_cast<int>(message.size()),
                 message.data());
}

void emit(std::string_view kind, std::span<const out::record> records, out::layout text_layout) {
    if (quiet()) return;
    out::stdout_stream().write(out::render(format(), kind, records, text_layout));
}

stream::printer make_printer(const print_options& p) {
    stream::printer_options o;
    auto f = format();
    if (f == out::format::json || f == out::format::csv)
        throw usage_error("messages are written as text or jsonl (-o jsonl)");
    o.jsonl = f == out::format::jsonl;
    o.delimiter = p.nul ? '\0' : '\n';
    o.no_delimiter = p.no_delimiter;
    o.discard = quiet();
    return stream::printer(o);
}

app::app(std::string name, std::string summary)
    : name_(std::move(name)), root_(std::make_unique<CLI::App>(std::move(summary), name_)) {
    g_program = name_;
    g_output = &out_;
    root_->set_help_flag("-h,--help", "Print this help and exit");
    root_->set_version_flag("-V,--version", name_ + " " + IPC_VERSION, "Print the version and exit");
    root_->require_subcommand(1);
    root_->footer(fmt::format("Run '{} VERB --help' for a verb's options. See {}(1) and ipc(7).", name_,
                              name_));
}

CLI::App* app::verb(const std::string& name, const std::string& description, handler h) {
    CLI::App* sub = root_->add_subcommand(name, description);
    sub->set_help_flag("-h,--help", "Print this help and exit");
    sub->add_option("-o,--output", out_.format_name, "Output format: text, json, jsonl or csv")
        ->type_name("FMT");
    sub->add_flag("--json", out_.json, "Same as -o json");
    sub->add_flag("-q,--quiet", out_.quiet, "No output on success");
    handlers_.emplace_back(sub, std::move(h));
    return sub;
}

void app::add_wait(CLI::App* verb, wait_options& w, const std::string& default_timeout) {
    w.timeout = default_timeout;
    waits_.emplace_back(verb, &w);
    verb->add_option("-t,--timeout", w.timeout,
                     fmt::format("How long one wait may last: 250ms, 2s, 1m, 0, inf (default {})",
                                 default_timeout))
        ->type_name("DUR");
    verb->add_flag("-n,--nonblock", w.nonblock, "Do not wait: same as --timeout 0");
}

void app::add_mode(CLI::App* verb, std::string& mode_text) {
    mode_text = "0600";
    verb->add_option("-m,--mode", mode_text, "Permissions of the created object (default 0600)")
        ->type_name("OCTAL");
}

void app::add_print(CLI::App* verb, print_options& p) {
    verb->add_flag("-0,--null", p.nul, "Messages end with NUL instead of newline");
    verb->add_flag("--no-delimiter", p.no_delimiter, "Write payloads with nothing between them");
}

void app::add_input(CLI::App* verb, input_options& in) {
    verb->add_flag("-0,--null", in.nul, "Input messages end with NUL, not newline");
    verb->add_flag("--whole", in.whole, "All of the input is one message");
    verb->add_flag("--jsonl", in.jsonl, "Input is JSON Lines records as recv -o jsonl writes them");
    verb->add_option("--file", in.file, "Read messages from FILE instead of stdin")->type_name("FILE");
}

int app::run(int argc, char** argv) noexcept {
    install_signal_handlers();
    bool as_json = argv_wants_json(argc, argv);
    auto usage = [&](const std::string& message, const std::string& where) {
        report(message, 0, static_cast<int>(exit_code::usage), as_json);
        if (!as_json)
            std::fprintf(stderr, "Try '%s --help' for more information.\n", where.c_str());
        return static_cast<int>(exit_code::usage);
    };
    auto chosen_verb = [&]() -> std::string {
        for (auto& [sub, h] : handlers_)
            if (sub->parsed()) return name_ + " " + sub->get_name();
        return name_;
    };

    // The first word that is not an option must be a verb.
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a.starts_with("-")) continue;
        bool known = false;
        for (auto& [sub, h] : handlers_) known = known || sub->check_name(std::string(a));
        if (!known) return usage(fmt::format("unknown verb '{}'", a), name_);
        break;
    }
    try {
        root_->parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
        const CLI::App* target = root_.get();
        for (auto& [sub, h] : handlers_)
            if (sub->parsed()) target = sub;
        std::cout << (target == root_.get() ? target->help() : target->help(name_)) << "\n" << std::flush;
        return 0;
    } catch (const CLI::CallForAllHelp&) {
        std::cout << root_->help("", CLI::AppFormatMode::All) << "\n" << std::flush;
        return 0;
    } catch (const CLI::CallForVersion&) {
        std::cout << name_ << " " << IPC_VERSION << "\n" << std::flush;
        return 0;
    } catch (const CLI::RequiredError& e) {
        if (argc <= 1) return usage("missing verb", name_);
        return usage(e.what(), chosen_verb());
    } catch (const CLI::ParseError& e) {
        return usage(e.what(), chosen_verb());
    } catch (const std::exception& e) {
        return usage(e.what(), name_);
    }

    int status = 0;
    try {
        // The format is checked before anything is done, so a bad -o fails cleanly.
        as_json = out_.format() == out::format::json || out_.format() == out::format::jsonl;
        // A bad --timeout is a usage error before anything is opened.
        for (auto& [sub, w] : waits_)
            if (sub->parsed()) (void)w->value();
        for (auto& [sub, h] : handlers_)
            if (sub->parsed()) status = h();
        out::stdout_stream().close();
        return status;
    } catch (const stdout_closed&) {
        return 0;  // the reader of stdout left: a normal end of a pipeline
    } catch (const interrupted& e) {
        try {
            out::stdout_stream().flush();
        } catch (...) {
        }
        return static_cast<int>(e.code());
    } catch (const error& e) {
        try {
            out::stdout_stream().flush();
        } catch (...) {
        }
        if (e.code() == exit_code::usage) return usage(e.what(), chosen_verb());
        report(e.what(), e.errno_value(), static_cast<int>(e.code()), as_json);
        return static_cast<int>(e.code());
    } catch (const std::bad_alloc&) {
        report("out of memory", ENOMEM, static_cast<int>(exit_code::os), as_json);
        return static_cast<int>(exit_code::os);
    } catch (const std::exception& e) {
        report(fmt::format("internal error: {}", e.what()), 0, static_cast<int>(exit_code::internal), as_json);
        return static_cast<int>(exit_code::internal);
    }
}

} // namespace ipc::cli
