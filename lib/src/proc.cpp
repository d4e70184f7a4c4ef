// SPDX-License-Identifier: MIT
#include "ipc/proc.hpp"

#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>

#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fmt/format.h>

#include "ipc/error.hpp"

namespace ipc::proc {

namespace {

struct dir_closer {
    void operator()(DIR* d) const { ::closedir(d); }
};
using dir_ptr = std::unique_ptr<DIR, dir_closer>;

std::optional<long> number(std::string_view s) {
    long v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
    return v;
}

int read_flags(int pid_dir, int fd) {
    std::string path = fmt::format("fdinfo/{}", fd);
    unique_fd info(::openat(pid_dir, path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!info) return -1;
    char buf[512];
    ssize_t n = retry([&] { return ::read(info.get(), buf, sizeof buf - 1); });
    if (n <= 0) return -1;
    buf[n] = '\0';
    const char* p = std::strstr(buf, "flags:");
    if (!p) return -1;
    return static_cast<int>(std::strtol(p + 6, nullptr, 8));
}

void scan_one(int proc_dir, pid_t pid, const std::function<bool(std::string_view)>& want,
              scan_result& out) {
    unique_fd pid_dir(::openat(proc_dir, std::to_string(pid).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!pid_dir) return;  // gone
    int fd_dir_fd = ::openat(pid_dir.get(), "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd_dir_fd < 0) {
        if (errno == EACCES || errno == EPERM) ++out.hidden_processes;
        return;
    }
    dir_ptr fd_dir(::fdopendir(fd_dir_fd));
    if (!fd_dir) {
        ::close(fd_dir_fd);
        return;
    }
    while (dirent* e = ::readdir(fd_dir.get())) {
        auto fd = number(e->d_name);
        if (!fd) continue;
        char target[4096];
        ssize_t n = ::readlinkat(fd_dir_fd, e->d_name, target, sizeof target - 1);
        if (n < 0) continue;
        std::string_view t(target, static_cast<std::size_t>(n));
        if (!want(t)) continue;
        open_fd ref;
        ref.pid = pid;
        ref.fd = static_cast<int>(*fd);
        ref.target = std::string(t);
        if (::fstatat(fd_dir_fd, e->d_name, &ref.st, 0) < 0) continue;
        ref.flags = read_flags(pid_dir.get(), ref.fd);
        out.fds.push_back(std::move(ref));
    }
}

} // namespace

scan_result scan_fds(const std::function<bool(std::string_view)>& want, std::optional<pid_t> only) {
    scan_result out;
    unique_fd proc_dir(::open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!proc_dir) throw last_system_error("open", "", "/proc");
    if (only) {
        if (!alive(*only)) throw system_error(ESRCH, "find", "process", std::to_string(*only));
        scan_one(proc_dir.get(), *only, want, out);
        return out;
    }
    dir_ptr dir(::opendir("/proc"));
    if (!dir) throw last_system_error("read", "", "/proc");
    while (dirent* e = ::readdir(dir.get())) {
        auto pid = number(e->d_name);
        if (!pid || *pid <= 0) continue;
        scan_one(proc_dir.get(), static_cast<pid_t>(*pid), want, out);
    }
    return out;
}

std::string command(pid_t pid) {
    std::ifstream in(fmt::format("/proc/{}/comm", pid));
    std::string name;
    std::getline(in, name);
    return name;
}

bool alive(pid_t pid) {
    if (pid <= 0 || (::kill(pid, 0) != 0 && errno != EPERM)) return false;
    return start_time(pid).has_value() || ::access(fmt::format("/proc/{}", pid).c_str(), F_OK) != 0;
}

std::optional<std::uint64_t> start_time(pid_t pid) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
    unique_fd fd(::open(path, O_RDONLY | O_CLOEXEC));
    if (!fd) return std::nullopt;
    char buf[1024];
    ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
    if (n <= 0) return std::nullopt;
    buf[n] = '\0';
    const char* p = std::strrchr(buf, ')');
    if (!p) return std::nullopt;
    // Field 3 is the state: a zombie (Z) or dying (X) process holds nothing
    // any more and never will, though its pid stays until it is reaped.
    if (p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X')) return std::nullopt;
    // After ") " come fields 3..: the start time is field 22.
    int field = 2;
    for (; *p && field < 22; ++p)
        if (*p == ' ') ++field;
    return std::strtoull(p, nullptr, 10);
}

std::string user_name(uid_t uid) {
    const passwd* pw = ::getpwuid(uid);
    return pw ? std::string(pw->pw_name) : std::to_string(uid);
}

unique_fd borrow_fd(pid_t pid, int fd) {
    // Through syscall(2): glibc 2.36's <sys/pidfd.h> is not C++-safe.
    unique_fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (!pidfd) throw system_error(errno, fmt::format("open process {}", pid));
    unique_fd dup(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.get(), fd, 0)));
    if (!dup) throw system_error(errno, fmt::format("borrow descriptor {} of process {}", fd, pid));
    return dup;
}

} // namespace ipc::proc
