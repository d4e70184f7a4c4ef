// SPDX-License-Identifier: MIT
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <mqueue.h>
#include <sys/types.h>

#include "ipc/fd.hpp"

/// Message queues: POSIX (mq_open) and System V (msgget).
namespace ipc::mq {

/// A message taken from a queue, with what the queue knows about it.
struct message {
    std::string data;
    unsigned priority = 0;  ///< POSIX
    long type = 0;          ///< System V (> 0)
};

// ---------------------------------------------------------------- POSIX --

/// The system's limits on POSIX queues (/proc/sys/fs/mqueue and
/// RLIMIT_MSGQUEUE); -1 where unreadable.
struct posix_limits {
    long msg_max = -1;          ///< most messages per queue (unprivileged)
    long msgsize_max = -1;      ///< largest message size (unprivileged)
    long queues_max = -1;       ///< most queues on the system
    long msg_default = -1;      ///< capacity when none is asked for
    long msgsize_default = -1;  ///< message size when none is asked for
    std::uint64_t rlimit_msgqueue = 0;  ///< bytes per user (soft limit)
};
posix_limits read_posix_limits();

/// Bytes a queue charges against RLIMIT_MSGQUEUE (the kernel's formula).
std::uint64_t posix_queue_cost(long max_msgs, long msg_size);

/// What stat and ls report about a POSIX queue.
struct posix_info {
    std::string name;  ///< "/NAME"
    long max_msgs = 0;
    long msg_size = 0;
    long messages = 0;
    std::optional<std::uint64_t> queued_bytes;  ///< QSIZE, when /dev/mqueue is mounted
    std::optional<pid_t> notify_pid;            ///< a process registered with mq_notify
    mode_t mode = 0;
    uid_t uid = 0;
    gid_t gid = 0;
    std::optional<std::int64_t> mtime_unix;     ///< when mounted: last send or receive
};

/// Where the mqueue file system is mounted (from /proc/self/mountinfo), or
/// nullopt when it is not.
std::optional<std::string> mqueue_mount();

/// The error (status 69) for a verb that needs the mqueue file system.
[[noreturn]] void throw_not_mounted();

/// An open POSIX queue; closes it on destruction. Sends and receives never
/// block past their deadline, and SIGINT/SIGTERM end a wait (see ipc::wait_fd).
class posix_queue {
public:
    enum class access { read, write, read_write };

    /// Creates a queue (or opens an existing one unless exclusive). Zero
    /// max_msgs and msg_size take the system defaults. A request over the
    /// system's limits fails with a message naming the limit and its value.
    static posix_queue create(const std::string& name, long max_msgs, long msg_size, mode_t mode,
                              bool exclusive);
    /// False when create() found the queue already there (and changed nothing).
    bool created() const { return created_; }
    static posix_queue open(const std::string& name, access a);

    posix_queue(posix_queue&&) noexcept = default;
    posix_queue& operator=(posix_queue&&) noexcept = default;

    /// Sends one message whole; false when the queue stayed full until the
    /// deadline. A message over the queue's size is a data error (65).
    bool send(std::string_view data, unsigned priority, const deadline& until);
    /// Takes one message (highest priority first, FIFO within a priority);
    /// nullopt when the queue stayed empty until the deadline.
    std::optional<message> receive(const deadline& until);

    mq_attr attributes() const;
    /// The owning user, for the warning about queues of other users.
    uid_t owner() const;
    const std::string& name() const { return name_; }
    int fd() const { return fd_.get(); }

private:
    posix_queue(std::string name, int fd);
    std::string name_;
    bool created_ = false;
    unique_fd fd_;  // on Linux an mqd_t is a descriptor
    std::string buf_;
};

/// stat of a POSIX queue: opens it read-only (taking nothing) or, when that
/// is refused, reads what /dev/mqueue shows.
posix_info posix_stat(const std::string& name);

/// Every POSIX queue; needs the mqueue file system mounted (status 69 if not).
std::vector<posix_info> posix_list();

/// mq_unlink.
void posix_remove(const std::string& name);

// ------------------------------------------------------------- System V --

struct sysv_limits {
    long msgmax = -1;  ///< largest message (/proc/sys/kernel/msgmax)
    long msgmnb = -1;  ///< default queue capacity in bytes
    long msgmni = -1;  ///< most queues
};
sysv_limits read_sysv_limits();

struct sysv_info {
    int id = -1;
    key_t key = 0;
    mode_t mode = 0;
    uid_t uid = 0, cuid = 0;
    gid_t gid = 0, cgid = 0;
    std::uint64_t messages = 0;
    std::uint64_t queued_bytes = 0;
    std::uint64_t capacity_bytes = 0;  ///< msg_qbytes
    pid_t last_send_pid = 0, last_recv_pid = 0;
    std::int64_t send_time = 0, recv_time = 0, change_time = 0;
};

/// Which System V queue: by key or by id.
struct sysv_selector {
    std::optional<key_t> key;
    std::optional<int> id;
    std::string str() const;  ///< "key 0x1234" or "id 7", for messages
};

/// msgget(IPC_CREAT); returns the id. capacity 0 keeps the default.
/// *created (if given) says whether the queue is new.
int sysv_create(key_t key, mode_t mode, bool exclusive, std::uint64_t capacity, bool* created = nullptr);

/// The id of an existing queue (66 when there is none).
int sysv_resolve(const sysv_selector& which);

/// msgsnd of one message whole; false when the queue stayed full until the
/// deadline. type must be > 0.
bool sysv_send(int id, long type, std::string_view data, const deadline& until);

/// msgrcv with msgrcv's addressing: type 0 the first message, > 0 the first of
/// that type, < 0 the lowest type not above |type|. nullopt on timeout.
std::optional<message> sysv_receive(int id, long type, const deadline& until);

sysv_info sysv_stat(int id);
std::vector<sysv_info> sysv_list();
void sysv_remove(int id);

/// Sets msg_qbytes; returns the new capacity.
std::uint64_t sysv_set_capacity(int id, std::uint64_t bytes);

} // namespace ipc::mq
