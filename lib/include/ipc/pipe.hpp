// SPDX-License-Identifier: MIT
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

#include "ipc/fd.hpp"
#include "ipc/framing.hpp"

/// Unnamed pipes and FIFOs: inspection, creation, framed messages, relays.
namespace ipc::pipe {

enum class end { read, write, both };

/// A process holding one end of a pipe.
struct holder {
    pid_t pid = 0;
    std::string command;
    int fd = -1;
    pipe::end end = end::read;
};

std::string_view end_name(end e);

/// What stat and ls report about one pipe or FIFO.
struct info {
    std::string name;  ///< the path, "/proc/PID/fd/N", "-", or "pipe:[INODE]"
    bool named = false;  ///< a FIFO in the file system, or an anonymous pipe
    std::uint64_t inode = 0;
    std::uint64_t device = 0;
    mode_t mode = 0;  ///< permission bits
    uid_t uid = 0;
    gid_t gid = 0;
    std::int64_t mtime_unix = 0;
    std::optional<std::uint64_t> capacity_bytes;  ///< F_GETPIPE_SZ, if known
    std::optional<std::uint64_t> queued_bytes;    ///< FIONREAD, if known
    /// Where the two figures came from ("own descriptor", "pid 12 fd 3"), or
    /// why they are unknown.
    std::string figures_source;
    std::vector<holder> holders;
    /// False when some processes could not be inspected.
    bool holders_complete = true;

    std::size_t readers() const;
    std::size_t writers() const;
};

/// stat of a FIFO path, of /proc/PID/fd/N, or of "-" (this process's stdin).
/// Reads the figures through a holder's descriptor (pidfd_getfd) and never
/// opens the FIFO itself: a writer blocked in open stays blocked, nobody gets
/// SIGPIPE. A figure it cannot read is left unknown.
info stat(std::string_view target);

/// What `wait` waits for. All that are set must hold; none set: the FIFO exists.
struct condition {
    bool reader = false;                      ///< some process holds a read end
    bool writer = false;                      ///< some process holds a write end
    bool empty = false;                       ///< nothing queued (and that is known)
    std::optional<std::uint64_t> min_bytes;   ///< at least this much queued
};

/// Whether a pipe described by `i` meets `c`.
bool meets(const info& i, const condition& c);

/// stat, or nullopt when the path does not exist (yet, or any more).
std::optional<info> try_stat(std::string_view target);

/// FIFOs in dir (recursively when asked), with their holders.
std::vector<info> list_fifos(const std::string& dir, bool recursive);

/// Anonymous pipes of every visible process, or the pipes (anonymous and
/// named) that process `pid` holds; each with all its holders.
std::vector<info> list_pipes(std::optional<pid_t> pid);

/// mkfifo with exactly `mode` (the umask does not apply).
void create(const std::string& path, mode_t mode);

/// Removes a FIFO; refuses anything else, symbolic links included. With
/// dry_run, makes the same checks and removes nothing.
void remove(const std::string& path, bool dry_run = false);

struct capacity_change {
    std::string name;
    std::uint64_t requested = 0;
    std::uint64_t previous = 0;
    std::uint64_t granted = 0;  ///< the kernel rounds up to a power-of-two number of pages
    std::string via;
};

/// F_SETPIPE_SZ on the pipe behind target (as for stat). A refusal names
/// /proc/sys/fs/pipe-max-size and its value.
capacity_change set_capacity(std::string_view target, std::uint64_t bytes);

/// The system's pipe-max-size (bytes an unprivileged user may set).
std::uint64_t max_size();

enum class direction { read, write };

/// Opens a FIFO for reading or writing without following a symbolic link.
/// Opening for writing waits (up to the deadline) for a reader instead of
/// blocking in open(2); timing out is a temp_failure (75). The descriptor is
/// non-blocking. Refuses what is not a FIFO (65). Warns (through `warn`) when
/// the FIFO belongs to another user.
unique_fd open_fifo(const std::string& path, direction dir, const deadline& until,
                    const std::function<void(const std::string&)>& warn = {});

/// Writes framed messages into a pipe so that they arrive whole.
///
/// A message of up to PIPE_BUF bytes (with its delimiter or header) goes in
/// one write(2), which the kernel keeps whole whatever other writers do. A
/// larger one is written while holding an exclusive flock(2) on the pipe,
/// after waiting for room for all of it, so that no other ipc-pipe sender's
/// bytes land inside it; ipc-pipe senders take a shared lock for small
/// messages for the same reason.
class sender {
public:
    sender(int fd, std::string label, framing::mode m);
    /// Sends one message; false when the deadline passed before any byte of it
    /// went out. Throws on EPIPE (no reader) and other errors.
    bool send(std::string_view payload, const deadline& until);

private:
    bool write_small(std::string_view frame, const deadline& until);
    bool write_large(std::string_view frame, const deadline& until);
    bool lock(int how, const deadline& until);
    void unlock();

    int fd_;
    std::string label_;
    framing::mode mode_;
    std::string frame_;
};

struct relay_stats {
    std::uint64_t bytes = 0;
    bool spliced = false;  ///< splice(2) moved the data (no copy through user space)
};

/// Copies in to out until in ends: splice(2) where one side is a pipe,
/// read/write otherwise. progress(bytes so far) is called now and then.
relay_stats relay(int in, int out, const std::function<void(std::uint64_t)>& progress);

} // namespace ipc::pipe
