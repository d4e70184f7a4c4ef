// SPDX-License-Identifier: MIT
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/stat.h>
#include <sys/types.h>

#include "ipc/fd.hpp"

/// The process table as /proc shows it: who holds which open file.
namespace ipc::proc {

/// One open descriptor of some process.
struct open_fd {
    pid_t pid = 0;
    int fd = -1;
    std::string target;   ///< readlink of /proc/PID/fd/N: a path, "pipe:[INO]"...
    struct stat st {};    ///< stat of the open file (follows the magic link)
    int flags = -1;       ///< open flags from /proc/PID/fdinfo/N, -1 if unknown
};

struct scan_result {
    std::vector<open_fd> fds;
    /// Processes whose descriptors could not be read (permission): holders
    /// found may be incomplete when this is non-zero.
    std::size_t hidden_processes = 0;
};

/// Every descriptor of every visible process (or of `only` when given) whose
/// link target passes `want`; each is stat'ed and its flags read.
scan_result scan_fds(const std::function<bool(std::string_view target)>& want,
                     std::optional<pid_t> only = std::nullopt);

/// The command name (/proc/PID/comm), "" if the process is gone.
std::string command(pid_t pid);

/// Whether a process with this pid exists (it may belong to another user)
/// and is not a zombie: one that died and waits to be reaped holds nothing.
bool alive(pid_t pid);

/// When a process (or thread) started, in clock ticks since boot (field 22
/// of /proc/PID/stat): with the pid, it tells a process from a later one
/// that was given the same pid. nullopt when it is gone or a zombie.
std::optional<std::uint64_t> start_time(pid_t pid);

/// The user's name, or the number when it has none.
std::string user_name(uid_t uid);

/// A duplicate of descriptor `fd` of process `pid` (pidfd_getfd(2)); needs
/// the permission to ptrace it. Throws ipc::error with errno on failure.
unique_fd borrow_fd(pid_t pid, int fd);

} // namespace ipc::proc
