// SPDX-License-Identifier: MIT
#include "process.hpp"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <stdexcept>

#include <fcntl.h>
#include <sys/mman.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace testing {

namespace {

// The whole of a memory file written by a child so far.
void drain(int fd, std::string& into) {
    if (fd < 0) return;
    into.clear();
    char buf[65536];
    off_t off = 0;
    for (;;) {
        ssize_t n = ::pread(fd, buf, sizeof buf, off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        into.append(buf, static_cast<std::size_t>(n));
        off += n;
    }
}

} // namespace

child::child(std::vector<std::string> argv, std::optional<std::string> stdin_data, bool keep_stdin,
             const std::vector<std::string>& env) {
    // Writes into a pipe whose reader died must not kill the test runner.
    ::signal(SIGPIPE, SIG_IGN);
    // stdout and stderr go to memory files, not pipes: a child never blocks
    // on output the test has not collected yet, so no test can deadlock on it.
    int in[2];
    if (::pipe2(in, O_CLOEXEC) < 0) throw std::runtime_error("pipe failed");
    out_ = ::memfd_create("child-stdout", MFD_CLOEXEC);
    err_ = ::memfd_create("child-stderr", MFD_CLOEXEC);
    if (out_ < 0 || err_ < 0) throw std::runtime_error("memfd_create failed");
    // Input that fits in the pipe is queued before the child starts, so the
    // child finds all of it there from its first instruction.
    bool prefilled = false;
    if (stdin_data && stdin_data->size() <= 65536) {
        std::size_t done = 0;
        while (done < stdin_data->size()) {
            ssize_t n = ::write(in[1], stdin_data->data() + done, stdin_data->size() - done);
            if (n <= 0) break;
            done += static_cast<std::size_t>(n);
        }
        prefilled = done == stdin_data->size();
    }
    // The child starts the program only once the parent has closed its copy
    // of the stdin pipe's read end: a program that counts its pipe's readers
    // (ipc-pipe stat -) must not find the parent among them.
    int go[2];
    if (::pipe2(go, O_CLOEXEC) < 0) throw std::runtime_error("pipe failed");
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
        ::close(go[1]);
        char c;
        while (::read(go[0], &c, 1) < 0 && errno == EINTR) {
        }
        ::dup2(in[0], 0);
        ::dup2(out_, 1);
        ::dup2(err_, 2);
        // Only 0, 1 and 2: nothing the test runner inherited (from CTest,
        // make's jobserver...) leaks into the program under test.
        ::close_range(3, ~0U, 0);
        ::signal(SIGPIPE, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        std::vector<char*> args;
        for (auto& a : argv) args.push_back(a.data());
        args.push_back(nullptr);
        for (const auto& e : env) ::putenv(const_cast<char*>(e.c_str()));
        ::execvp(args[0], args.data());
        std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
        ::_exit(127);
    }
    ::close(in[0]);
    ::close(go[0]);
    ::close(go[1]);  // the child's read returns: its program may start
    in_ = in[1];
    if (stdin_data && !prefilled) write_stdin(*stdin_data);
    if (!keep_stdin) close_stdin();
}

child::child(child&& o) noexcept
    : pid_(o.pid_), in_(o.in_), out_(o.out_), err_(o.err_), out_buf_(std::move(o.out_buf_)),
      err_buf_(std::move(o.err_buf_)), reaped_(o.reaped_), status_(o.status_) {
    o.pid_ = -1;
    o.in_ = o.out_ = o.err_ = -1;
    o.reaped_ = true;
}

child::~child() {
    if (pid_ > 0 && !reaped_) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
    for (int fd : {in_, out_, err_})
        if (fd >= 0) ::close(fd);
}

void child::write_stdin(const std::string& data) {
    std::size_t done = 0;
    while (done < data.size()) {
        pollfd p{in_, POLLOUT, 0};
        ::poll(&p, 1, 100);
        if (!(p.revents & (POLLOUT | POLLERR | POLLHUP))) continue;
        ssize_t n = ::write(in_, data.data() + done, data.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return;  // the child closed its stdin
        done += static_cast<std::size_t>(n);
    }
}

void child::close_stdin() {
    if (in_ >= 0) ::close(in_);
    in_ = -1;
}

void child::kill(int sig) {
    if (pid_ > 0 && !reaped_) ::kill(pid_, sig);
}

std::string child::read_stdout(std::size_t n, std::chrono::milliseconds limit) {
    auto end = std::chrono::steady_clock::now() + limit;
    drain(out_, out_buf_);
    while (out_buf_.size() < n && std::chrono::steady_clock::now() < end) {
        struct timespec ts{0, 5'000'000};
        nanosleep(&ts, nullptr);
        drain(out_, out_buf_);
    }
    return out_buf_;
}

outcome child::wait(std::chrono::milliseconds limit, bool keep_stdin) {
    if (!keep_stdin) close_stdin();
    auto end = std::chrono::steady_clock::now() + limit;
    bool killed = false;
    while (!reaped_) {
        int st = 0;
        pid_t r = ::waitpid(pid_, &st, WNOHANG);
        if (r == pid_) {
            reaped_ = true;
            status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            break;
        }
        if (!killed && std::chrono::steady_clock::now() > end) {
            ::kill(pid_, SIGKILL);
            killed = true;
        }
        struct timespec ts{0, 2'000'000};
        nanosleep(&ts, nullptr);
    }
    drain(out_, out_buf_);
    drain(err_, err_buf_);
    outcome o;
    o.status = killed ? -9 : status_;
    o.out = out_buf_;
    o.err = err_buf_;
    return o;
}

outcome run(std::vector<std::string> argv, std::optional<std::string> stdin_data,
            std::chrono::milliseconds limit) {
    child c(std::move(argv), std::move(stdin_data));
    return c.wait(limit);
}

outcome sh(const std::string& script, std::chrono::milliseconds limit) {
    return run({"/bin/sh", "-c", script}, std::nullopt, limit);
}

temp_dir::temp_dir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/ipc-test-XXXXXX";
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
}

temp_dir::~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

std::string unique_name(const std::string& stem) {
    static std::atomic<unsigned> counter{0};
    return stem + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

} // namespace testing
