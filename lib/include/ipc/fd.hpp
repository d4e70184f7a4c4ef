// SPDX-License-Identifier: MIT
#pragma once

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <optional>
#include <span>
#include <string_view>

#include <poll.h>

namespace ipc {

/// Move-only owner of a file descriptor; closes it on destruction.
class unique_fd {
public:
    unique_fd() noexcept = default;
    explicit unique_fd(int fd) noexcept : fd_(fd) {}
    unique_fd(unique_fd&& other) noexcept : fd_(other.release()) {}
    unique_fd& operator=(unique_fd&& other) noexcept {
        if (this != &other) reset(other.release());
        return *this;
    }
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;
    ~unique_fd() { reset(); }

    int get() const noexcept { return fd_; }
    explicit operator bool() const noexcept { return fd_ >= 0; }
    /// Gives up ownership without closing.
    int release() noexcept {
        int fd = fd_;
        fd_ = -1;
        return fd;
    }
    /// Closes the owned descriptor (if any) and owns fd instead.
    void reset(int fd = -1) noexcept;

private:
    int fd_ = -1;
};

/// SIGINT and SIGTERM set a flag and interrupt system calls (no SA_RESTART);
/// SIGPIPE is ignored so that writes report EPIPE. Called by the run wrapper.
void install_signal_handlers();

/// Whether install_signal_handlers() ran: a blocking call can then miss a
/// signal that lands just before it, so waits go through ppoll(2) instead.
bool signal_handlers_installed() noexcept;

/// Signal number of a SIGINT/SIGTERM received so far, 0 if none.
int pending_interrupt() noexcept;

/// Throws ipc::interrupted if SIGINT or SIGTERM arrived.
void check_interrupt();

/// Calls f() again while it fails with EINTR; an EINTR caused by SIGINT or
/// SIGTERM becomes ipc::interrupted instead. The one place EINTR is handled.
template <class F>
auto retry(F f) -> decltype(f()) {
    for (;;) {
        auto r = f();
        if (r != -1 || errno != EINTR) return r;
        check_interrupt();
    }
}

/// A point in time a wait may not pass: never (wait forever), now (do not
/// wait), or a moment on the monotonic clock.
class deadline {
public:
    using clock = std::chrono::steady_clock;

    static deadline never() noexcept { return deadline(); }
    static deadline after(std::chrono::nanoseconds d) noexcept {
        return deadline(clock::now() + d);
    }
    /// From a parsed --timeout: nullopt is infinite.
    static deadline from(std::optional<std::chrono::nanoseconds> timeout) noexcept {
        return timeout ? after(*timeout) : never();
    }

    bool infinite() const noexcept { return !when_; }
    bool expired() const noexcept { return when_ && clock::now() >= *when_; }
    /// Time left, clamped at zero; nullopt when infinite.
    std::optional<std::chrono::nanoseconds> remaining() const noexcept;

private:
    deadline() noexcept = default;
    explicit deadline(clock::time_point t) noexcept : when_(t) {}
    std::optional<clock::time_point> when_;
};

/// Waits until fd reports one of events (POLLIN, POLLOUT) or the deadline
/// passes; returns revents (which may include POLLHUP/POLLERR), 0 on timeout.
/// A SIGINT or SIGTERM ends the wait with ipc::interrupted, without the race
/// of checking a flag before a plain poll.
short wait_fd(int fd, short events, const deadline& until);

/// Sleeps until the deadline or for at most `step`, whichever is first;
/// interruptible like wait_fd.
void sleep_until(const deadline& until, std::chrono::nanoseconds step);

/// Writes all of data to a (possibly non-blocking) fd, waiting for room up
/// to the deadline. Returns bytes written: less than data.size() only when the
/// deadline passed. Throws ipc::error (with errno) on a write error.
std::size_t write_all(int fd, std::span<const std::byte> data, const deadline& until,
                      std::string_view what);
inline std::size_t write_all(int fd, std::string_view data, const deadline& until,
                             std::string_view what) {
    return write_all(fd, std::as_bytes(std::span(data.data(), data.size())), until, what);
}

/// Sets or clears O_NONBLOCK.
void set_nonblocking(int fd, bool on);

} // namespace ipc
