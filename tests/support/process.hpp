// SPDX-License-Identifier: MIT
// Test support: run the built binaries as real processes, and give every test
// its own objects that are removed also when the test fails.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

namespace testing {

struct outcome {
    int status = -1;  ///< exit status, or 128+signal when killed
    std::string out;
    std::string err;
};

/// A process started in the background: stdin is a pipe from the test,
/// stdout and stderr are memory files the test reads.
class child {
public:
    /// argv[0] is the program path. stdin_data is written and stdin closed
    /// unless keep_stdin is set (then use write_stdin/close_stdin).
    child(std::vector<std::string> argv, std::optional<std::string> stdin_data = std::nullopt,
          bool keep_stdin = false, const std::vector<std::string>& env = {});
    child(const child&) = delete;
    child& operator=(const child&) = delete;
    child(child&& other) noexcept;
    ~child();  ///< kills the process if still running

    pid_t pid() const { return pid_; }
    void write_stdin(const std::string& data);
    void close_stdin();
    void kill(int sig);
    /// Waits for exit, collecting output; kills it (SIGKILL) after `limit`.
    /// Closes the child's stdin first unless keep_stdin.
    outcome wait(std::chrono::milliseconds limit = std::chrono::seconds(20), bool keep_stdin = false);
    /// Reads stdout until it holds at least n bytes or limit passes.
    std::string read_stdout(std::size_t n, std::chrono::milliseconds limit = std::chrono::seconds(10));

private:
    pid_t pid_ = -1;
    int in_ = -1, out_ = -1, err_ = -1;
    std::string out_buf_, err_buf_;
    bool reaped_ = false;
    int status_ = -1;
};

/// Runs a command to completion (killed after `limit`).
outcome run(std::vector<std::string> argv, std::optional<std::string> stdin_data = std::nullopt,
            std::chrono::milliseconds limit = std::chrono::seconds(20));

/// Runs "sh -c script" to completion.
outcome sh(const std::string& script, std::chrono::milliseconds limit = std::chrono::seconds(20));

/// A private directory under $TMPDIR or /tmp, removed with everything in it.
class temp_dir {
public:
    temp_dir();
    ~temp_dir();
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    const std::filesystem::path& path() const { return path_; }
    std::string operator/(const std::string& name) const { return (path_ / name).string(); }

private:
    std::filesystem::path path_;
};

/// Polls cond every few milliseconds until it holds or limit passes.
template <class F>
bool eventually(F cond, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
        if (cond()) return true;
        struct timespec ts{0, 5'000'000};
        nanosleep(&ts, nullptr);
    }
    return cond();
}

/// True in sanitizer builds, whose runtimes change what a test can observe
/// (ASan needs spare descriptors; TSan defers signal handlers past a
/// blocking system call it does not intercept).
#ifdef IPC_SANITIZER
inline bool sanitized() { return IPC_SANITIZER[0] != '\0'; }
inline bool thread_sanitized() { return std::string_view(IPC_SANITIZER).find("thread") != std::string_view::npos; }
#else
inline bool sanitized() { return false; }
inline bool thread_sanitized() { return false; }
#endif

/// A name unique to this process and call, for kernel objects.
std::string unique_name(const std::string& stem);

} // namespace testing
