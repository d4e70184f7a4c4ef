// SPDX-License-Identifier: MIT
#include "ipc/fd.hpp"

#include <csignal>
#include <ctime>
#include <string>

#include <fcntl.h>
#include <unistd.h>

#include "ipc/error.hpp"

namespace ipc {

namespace {

volatile std::sig_atomic_t g_interrupt = 0;
bool g_handlers_installed = false;

extern "C" void on_interrupt(int signo) { g_interrupt = signo; }

sigset_t interrupt_signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    return set;
}

timespec to_timespec(std::chrono::nanoseconds d) {
    auto secs = std::chrono::duration_cast<std::chrono::seconds>(d);
    return timespec{static_cast<time_t>(secs.count()),
                    static_cast<long>((d - secs).count())};
}

} // namespace

void unique_fd::reset(int fd) noexcept {
    if (fd_ >= 0 && fd_ != fd) ::close(fd_);  // close(2) is not retried on EINTR on Linux
    fd_ = fd;
}

bool signal_handlers_installed() noexcept { return g_handlers_installed; }

void install_signal_handlers() {
    struct sigaction sa {};
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: a blocked call returns EINTR and we look at the flag
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
    struct sigaction ign {};
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    ::sigaction(SIGPIPE, &ign, nullptr);
    g_handlers_installed = true;
}

int pending_interrupt() noexcept { return g_interrupt; }

void check_interrupt() {
    if (int sig = g_interrupt) throw interrupted(sig);
}

std::optional<std::chrono::nanoseconds> deadline::remaining() const noexcept {
    if (!when_) return std::nullopt;
    auto left = *when_ - clock::now();
    if (left < clock::duration::zero()) left = clock::duration::zero();
    return std::chrono::duration_cast<std::chrono::nanoseconds>(left);
}

namespace {

// ppoll with SIGINT/SIGTERM blocked except during the wait itself, so a
// signal that lands between the flag check and the wait is not lost.
int guarded_ppoll(pollfd* fds, nfds_t n, const deadline& until) {
    sigset_t block = interrupt_signals();
    sigset_t old;
    if (g_handlers_installed) ::sigprocmask(SIG_BLOCK, &block, &old);
    struct restore {
        bool on;
        sigset_t* old;
        ~restore() {
            if (on) ::sigprocmask(SIG_SETMASK, old, nullptr);
        }
    } guard{g_handlers_installed, &old};
    check_interrupt();
    auto left = until.remaining();
    timespec ts{};
    if (left) ts = to_timespec(*left);
    int r = ::ppoll(fds, n, left ? &ts : nullptr, g_handlers_installed ? &old : nullptr);
    if (r < 0 && errno == EINTR) check_interrupt();
    return r;
}

} // namespace

short wait_fd(int fd, short events, const deadline& until) {
    pollfd p{fd, events, 0};
    for (;;) {
        int r = guarded_ppoll(&p, 1, until);
        if (r > 0) return p.revents;
        if (r == 0) {
            if (until.expired()) return 0;
            continue;
        }
        if (errno == EINTR) continue;
        throw last_system_error("wait for", "", "descriptor");
    }
}

void sleep_until(const deadline& until, std::chrono::nanoseconds step) {
    auto left = until.remaining();
    auto wait = left && *left < step ? *left : step;
    guarded_ppoll(nullptr, 0, deadline::after(wait));
}

std::size_t write_all(int fd, std::span<const std::byte> data, const deadline& until,
                      std::string_view what) {
    std::size_t done = 0;
    while (done < data.size()) {
        ssize_t n = retry([&] { return ::write(fd, data.data() + done, data.size() - done); });
        if (n >= 0) {
            done += static_cast<std::size_t>(n);
            continue;
        }
        if (errno != EAGAIN) throw system_error(errno, "write to " + std::string(what));
        short ev = wait_fd(fd, POLLOUT, until);
        if (ev == 0) return done;
        if (ev & POLLERR) {
            // POLLERR on a pipe's write end means the readers are gone: let write say so.
            continue;
        }
    }
    return done;
}

void set_nonblocking(int fd, bool on) {
    int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0) throw last_system_error("get flags of", "", "descriptor");
    int want = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
    if (want != flags && ::fcntl(fd, F_SETFL, want) < 0)
        throw last_system_error("set flags of", "", "descriptor");
}

} // namespace ipc
