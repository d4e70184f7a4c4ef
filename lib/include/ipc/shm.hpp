// SPDX-License-Identifier: MIT
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

#include "ipc/fd.hpp"
#include "ipc/ring.hpp"
#include "ipc/sync.hpp"

/// Shared memory: POSIX objects in /dev/shm (plain segments, double-buffered
/// "consistent" segments, message channels) and System V segments; and
/// semaphores, POSIX named and System V.
namespace ipc::shm {

/// What a /dev/shm object is. The toolkit tags what it makes with the
/// extended attribute user.ipc.kind; channels and consistent segments also
/// carry a magic number at offset 0.
enum class kind { segment, consistent, channel, semaphore, mailbox, other };
std::string_view kind_name(kind k);
std::optional<kind> parse_kind(std::string_view text);

/// The directory POSIX shared memory lives in (/dev/shm on Linux).
std::string shm_dir();

// ------------------------------------------------------------- POSIX objects --

struct object_info {
    std::string name;  ///< "/NAME" (for a semaphore: the name given to sem_open)
    shm::kind kind = kind::other;
    std::string tool;  ///< who made it, from user.ipc.kind ("ipc-shm"...), "" if unknown
    std::uint64_t size_bytes = 0;
    mode_t mode = 0;
    uid_t uid = 0;
    gid_t gid = 0;
    std::int64_t mtime_unix = 0, ctime_unix = 0;
    std::vector<pid_t> attached;                ///< processes mapping it or holding it open
    std::optional<pid_t> creator_pid;          ///< from user.ipc.creator
    std::optional<bool> creator_alive;         ///< same process still running (pid and start time)
    bool attached_complete = true;             ///< false when some processes could not be inspected
};

/// Creates a POSIX segment of `size` bytes (zeroed; for a consistent one, of
/// `size` bytes of content), tagged with its kind and creator. The umask does
/// not apply. Returns false when it existed and !exclusive (left unchanged).
bool create_segment(const std::string& name, std::uint64_t size, mode_t mode, bool exclusive, kind k);

/// Creates a message channel: a ring of `capacity` bytes taking messages of up
/// to max_msg bytes (0: the largest the capacity allows).
bool create_channel(const std::string& name, std::uint64_t capacity, std::uint64_t max_msg, mode_t mode,
                    bool exclusive);

/// Tags the file at path with its kind and this process as its creator
/// (best effort), for objects made by other means (sem_open).
void tag_path(const std::string& path, kind k);
/// The same for an open file made by `tool` (ipc-mbox tags its mailboxes so).
void tag_fd(int fd, kind k, std::string_view tool = "ipc-shm");

/// stat of a POSIX object (segment, channel, semaphore...).
object_info stat(const std::string& name);

/// Only the owner of a POSIX object (or semaphore): one fstatat, none of
/// stat()'s look through /proc for who has it attached. nullopt if missing.
std::optional<uid_t> owner(const std::string& name);

/// Every object in /dev/shm, with its kind.
std::vector<object_info> list();

/// Unlinks a POSIX object (a semaphore through sem_unlink).
void remove(const std::string& name);

/// A temporary file (".ipc-tmp-PID-NAME" in /dev/shm) of a create whose
/// process is gone: killed before the object was linked into place.
struct temporary {
    std::string file;  ///< its name in /dev/shm
    std::string name;  ///< "/NAME", the object it was to become
    uid_t uid = 0;
    std::int64_t mtime_unix = 0;
};
std::vector<temporary> abandoned_temporaries();
/// Unlinks one of them (a file name in /dev/shm, as returned above).
void remove_temporary(const std::string& file);

/// Writes data at offset of a POSIX segment with pwrite(2): ENOSPC (71)
/// rather than SIGBUS when /dev/shm cannot back the pages. The caller checks
/// the bounds.
void write_at(const std::string& name, std::uint64_t offset, std::string_view data);

/// Reads length bytes at offset of a POSIX segment with pread(2): pages never
/// written read as zeros without being allocated (a load through a mapping
/// would allocate them, and get SIGBUS from a full /dev/shm).
std::string read_at(const std::string& name, std::uint64_t offset, std::uint64_t length);

/// ftruncate; only plain segments (a channel or a consistent segment has a
/// fixed layout).
void resize(const std::string& name, std::uint64_t size);

/// A mapping of a POSIX object or System V segment; unmapped on destruction.
class mapping {
public:
    mapping() = default;
    mapping(void* base, std::size_t size, bool sysv) : base_(base), size_(size), sysv_(sysv) {}
    mapping(mapping&& o) noexcept : base_(o.base_), size_(o.size_), sysv_(o.sysv_) { o.base_ = nullptr; }
    mapping& operator=(mapping&& o) noexcept;
    mapping(const mapping&) = delete;
    mapping& operator=(const mapping&) = delete;
    ~mapping();
    std::span<std::byte> bytes() const { return {static_cast<std::byte*>(base_), size_}; }

private:
    void* base_ = nullptr;
    std::size_t size_ = 0;
    bool sysv_ = false;
};

/// Maps a POSIX object (read-only or read-write), checking it is of kind `want`
/// (any kind when nullopt).
mapping map(const std::string& name, bool writable, std::optional<kind> want = std::nullopt);

// ------------------------------------------------------- System V segments --

struct sysv_info {
    int id = -1;
    key_t key = 0;
    std::uint64_t size_bytes = 0;
    mode_t mode = 0;
    uid_t uid = 0, cuid = 0;
    gid_t gid = 0, cgid = 0;
    std::uint64_t attached = 0;  ///< shm_nattch
    pid_t creator_pid = 0, last_pid = 0;
    std::int64_t attach_time = 0, detach_time = 0, change_time = 0;
    bool removed = false;  ///< marked for removal, waiting for the last detach
};

int sysv_create(key_t key, std::uint64_t size, mode_t mode, bool exclusive, bool* created = nullptr);
int sysv_resolve(std::optional<key_t> key, std::optional<int> id);
sysv_info sysv_stat(int id);
std::vector<sysv_info> sysv_list();
void sysv_remove(int id);
mapping sysv_map(int id, bool writable);

// ------------------------------------------------------- consistent update --

/// A consistent segment holds `size` bytes twice. A writer copies the current
/// bytes into the inactive buffer, applies its change there, and commits by
/// incrementing the generation (release); readers copy the active buffer and
/// retry if the generation moved meanwhile (seqlock). Readers thus see the old
/// or the new content, never a mix; a writer killed before its commit leaves
/// the old content in place (the robust writer lock lets the next one go on).
/// Bytes are copied with relaxed atomic word accesses, so the concurrent read
/// of a buffer being rewritten is not a data race.
namespace consistent {

inline constexpr std::uint64_t magic = 0x31534E4F43435049ull;  // "IPCCONS1"

/// Whether read() writes to the mapping: only in ThreadSanitizer builds,
/// which do not model the fence a reader uses otherwise.
#if defined(__SANITIZE_THREAD__)
inline constexpr bool reader_writes = true;
#else
inline constexpr bool reader_writes = false;
#endif
std::size_t region_size(std::uint64_t size);
void format(std::span<std::byte> region, std::uint64_t size);
/// Size of the content, or a data error (65) when region is not consistent.
std::uint64_t content_size(std::span<const std::byte> region);
/// A snapshot of [offset, offset+length): never a mix of two versions.
std::string read(std::span<std::byte> region, std::uint64_t offset, std::uint64_t length);
/// Replaces [offset, offset+data.size()) in one commit; returns the new generation.
std::uint64_t write(std::span<std::byte> region, std::uint64_t offset, std::string_view data, const deadline& until);
std::uint64_t generation(std::span<std::byte> region);

} // namespace consistent

// -------------------------------------------------------------- semaphores --

struct semaphore_info {
    std::string name;  ///< "/NAME" or "key 0x..." / "id N"
    bool sysv = false;
    int id = -1;
    key_t key = 0;
    long value = 0;
    std::optional<long> waiters;  ///< processes waiting to take it, where known
    std::optional<long> zero_waiters;  ///< System V: waiting for zero
    std::optional<pid_t> last_pid;     ///< System V: last semop
    mode_t mode = 0;
    uid_t uid = 0;
    gid_t gid = 0;
    std::int64_t change_time = 0, op_time = 0;
};

/// Which semaphore: a POSIX name, or a System V set (its first semaphore).
struct semaphore_ref {
    std::optional<std::string> name;
    std::optional<key_t> key;
    std::optional<int> id;
    std::string str() const;
};

/// An open POSIX named semaphore. Its waits and posts act on the semaphore
/// it opened, also when the name is removed or made again meanwhile (as
/// `ipc-shm run` needs: the unit goes back where it came from).
class named_semaphore {
public:
    explicit named_semaphore(const std::string& name);
    ~named_semaphore();
    named_semaphore(const named_semaphore&) = delete;
    named_semaphore& operator=(const named_semaphore&) = delete;
    /// Takes one unit; false when none came before the deadline.
    bool wait(const deadline& until);
    void post();
    int value() const;

private:
    std::string name_;
    void* s_;  // sem_t*
};

/// Returns false when it existed (and !exclusive): left as it was.
bool sem_create(const semaphore_ref& which, unsigned value, mode_t mode, bool exclusive);
void sem_post(const semaphore_ref& which);
/// Takes one unit; false when none came before the deadline. With `undo`
/// (System V only) the kernel gives it back when this process exits.
bool sem_wait(const semaphore_ref& which, const deadline& until, bool undo = false);
semaphore_info sem_stat(const semaphore_ref& which);
std::vector<semaphore_info> sem_list_sysv();
void sem_remove(const semaphore_ref& which);

} // namespace ipc::shm
