// SPDX-License-Identifier: MIT
// Consistent (double-buffered) segments and semaphores.
#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <new>

#include <fcntl.h>
#include <semaphore.h>
#include <sys/mman.h>
#include <sys/sem.h>
#include <sys/xattr.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "ipc/error.hpp"
#include "ipc/fault.hpp"
#include "ipc/shm.hpp"

namespace ipc::shm {

// ------------------------------------------------------- consistent update --

namespace consistent {

namespace {

struct alignas(64) header {
    std::uint64_t magic;
    std::uint32_t version;
    std::uint32_t pad;
    std::uint64_t size;
    alignas(64) sync::robust_mutex writer;
    alignas(64) std::atomic<std::uint64_t> generation;  // the active buffer is generation % 2
    std::atomic<std::uint64_t> recoveries;
};
constexpr std::size_t header_bytes = 256;
static_assert(sizeof(header) <= header_bytes);

std::uint64_t padded(std::uint64_t n) { return (n + 63) & ~std::uint64_t{63}; }

header* header_of(std::span<std::byte> region) {
    if (region.size() < header_bytes) throw data_error("not a consistent segment (too small)");
    std::uint64_t m;
    std::memcpy(&m, region.data(), sizeof m);
    if (m != magic) throw data_error("not a consistent segment (no header)");
    auto* h = std::launder(reinterpret_cast<header*>(region.data()));
    if (h->version != 1 || region_size(h->size) > region.size())
        throw data_error("consistent segment is corrupted: its size does not match the segment");
    return h;
}

std::byte* buffer(std::span<std::byte> region, const header* h, std::uint64_t which) {
    return region.data() + header_bytes + (which % 2) * padded(h->size);
}

// Word-wise relaxed atomic copies: a reader may run while a writer rewrites
// the buffer (the seqlock then discards what it read), and racing plain
// accesses would be undefined behaviour.
void atomic_copy_out(char* dst, const std::byte* src, std::size_t n) {
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        auto v = std::atomic_ref<const std::uint64_t>(*reinterpret_cast<const std::uint64_t*>(src + i))
                     .load(std::memory_order_relaxed);
        std::memcpy(dst + i, &v, 8);
    }
    for (; i < n; ++i)
        dst[i] = static_cast<char>(std::atomic_ref<const std::byte>(src[i]).load(std::memory_order_relaxed));
}

void atomic_copy_in(std::byte* dst, const void* src, std::size_t n) {
    auto* s = static_cast<const char*>(src);
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        std::uint64_t v;
        std::memcpy(&v, s + i, 8);
        std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(dst + i)).store(v, std::memory_order_relaxed);
    }
    for (; i < n; ++i) std::atomic_ref<std::byte>(dst[i]).store(static_cast<std::byte>(s[i]), std::memory_order_relaxed);
}

} // namespace

std::size_t region_size(std::uint64_t size) { return header_bytes + 2 * padded(size); }

void format(std::span<std::byte> region, std::uint64_t size) {
    std::memset(region.data(), 0, header_bytes);
    auto* h = new (region.data()) header;
    h->version = 1;
    h->size = size;
    h->writer.init();
    h->generation.store(0);
    h->recoveries.store(0);
    std::atomic_ref<std::uint64_t>(h->magic).store(magic, std::memory_order_release);
}

std::uint64_t content_size(std::span<const std::byte> region) {
    return header_of({const_cast<std::byte*>(region.data()), region.size()})->size;
}

std::uint64_t generation(std::span<std::byte> region) {
    return header_of(region)->generation.load(std::memory_order_acquire);
}

std::string read(std::span<std::byte> region, std::uint64_t offset, std::uint64_t length) {
    auto* h = header_of(region);
    if (offset > h->size || length > h->size - offset)
        throw data_error(fmt::format("range {}+{} is beyond the segment's {} bytes", offset, length, h->size));
    std::string out(length, '\0');
    for (;;) {
        // Seqlock: the generation before and after the copy must agree. A
        // writer only writes the inactive buffer, which becomes ours only after
        // a commit, so an unchanged generation means an untouched copy.
        std::uint64_t g1 = h->generation.load(std::memory_order_acquire);
        atomic_copy_out(out.data(), buffer(region, h, g1) + offset, length);
        // The second look must not move before the copy's loads: an acquire
        // fence does that (a reader needs no write access). TSan does not
        // model fences, so under it an acq_rel RMW stands in.
#if defined(__SANITIZE_THREAD__)
        std::uint64_t g2 = h->generation.fetch_add(0, std::memory_order_acq_rel);
#else
        std::atomic_thread_fence(std::memory_order_acquire);
        std::uint64_t g2 = h->generation.load(std::memory_order_relaxed);
#endif
        if (g1 == g2) return out;
    }
}

std::uint64_t write(std::span<std::byte> region, std::uint64_t offset, std::string_view data, const deadline& until) {
    auto* h = header_of(region);
    if (offset > h->size || data.size() > h->size - offset)
        throw data_error(fmt::format("{} bytes at offset {} do not fit the segment's {} bytes; nothing written",
                                     data.size(), offset, h->size));
    auto r = h->writer.lock(until);
    if (r == sync::robust_mutex::outcome::timeout)
        throw temp_failure("another writer held the segment until the timeout", ETIMEDOUT);
    if (r == sync::robust_mutex::outcome::recovered) h->recoveries.fetch_add(1);
    struct unlock {
        sync::robust_mutex& m;
        ~unlock() { m.unlock(); }
    } guard{h->writer};
    std::uint64_t g = h->generation.load(std::memory_order_relaxed);  // ours: we hold the writer lock
    std::byte* active = buffer(region, h, g);
    std::byte* next = buffer(region, h, g + 1);
    // The inactive buffer gets the current content, then the change.
    std::string current(h->size, '\0');
    atomic_copy_out(current.data(), active, h->size);
    atomic_copy_in(next, current.data(), h->size);
    fault::point("consistent.write.copied");
    atomic_copy_in(next + offset, data.data(), data.size() / 2);
    fault::point("consistent.write.half");
    atomic_copy_in(next + offset + data.size() / 2, data.data() + data.size() / 2, data.size() - data.size() / 2);
    // The commit: readers switch buffers here, all at once.
    h->generation.store(g + 1, std::memory_order_release);
    return g + 1;
}

} // namespace consistent

// -------------------------------------------------------------- semaphores --

namespace {

std::string sem_path(const std::string& name) { return shm_dir() + "/sem." + name.substr(1); }

int missing_or(int err) { return err == EINVAL || err == EIDRM ? ENOENT : err; }

int sysv_id(const semaphore_ref& w) {
    if (w.id) {
        semid_ds ds{};
        union {
            int val;
            semid_ds* buf;
        } arg;
        arg.buf = &ds;
        if (::semctl(*w.id, 0, IPC_STAT, arg) < 0)
            throw system_error(missing_or(errno), fmt::format("open System V semaphore set id {}", *w.id));
        return *w.id;
    }
    if (*w.key == IPC_PRIVATE) throw usage_error("a private semaphore set (key 0) has no key to find it by: use --id");
    int id = ::semget(*w.key, 0, 0);
    if (id < 0) throw system_error(errno, fmt::format("open System V semaphore set {}", w.str()));
    return id;
}

timespec realtime_after(std::chrono::nanoseconds d) {
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    std::int64_t ns = static_cast<std::int64_t>(now.tv_nsec) + d.count();
    return timespec{now.tv_sec + static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
}

// Waits in slices: the blocking calls have no signal mask argument, so a
// SIGINT that lands just before one is seen at the end of the slice.
constexpr auto slice = std::chrono::milliseconds(250);

std::chrono::nanoseconds next_slice(const deadline& until) {
    auto left = until.remaining();
    return left && *left < slice ? *left : std::chrono::nanoseconds(slice);
}

} // namespace

std::string semaphore_ref::str() const {
    if (name) return fmt::format("'{}'", *name);
    if (id) return fmt::format("id {}", *id);
    return fmt::format("key {:#010x}", static_cast<std::uint32_t>(key.value_or(0)));
}

bool sem_create(const semaphore_ref& w, unsigned value, mode_t mode, bool exclusive) {
    if (w.name) {
        sem_t* s = ::sem_open(w.name->c_str(), O_CREAT | O_EXCL, mode & 0777, value);
        if (s == SEM_FAILED) {
            int err = errno;
            if (err == EEXIST && !exclusive) return false;
            if (err == EINVAL && value > static_cast<unsigned>(SEM_VALUE_MAX))
                throw usage_error(fmt::format("a value of {} is over SEM_VALUE_MAX ({})", value, SEM_VALUE_MAX));
            throw system_error(err, "create", "semaphore", *w.name);
        }
        ::sem_close(s);
        ::chmod(sem_path(*w.name).c_str(), mode & 0777);  // sem_open applies the umask
        tag_path(sem_path(*w.name), kind::semaphore);
        return true;
    }
    int id = ::semget(*w.key, 1, IPC_CREAT | IPC_EXCL | static_cast<int>(mode & 0777));
    if (id < 0 && errno == EEXIST && !exclusive) return false;
    if (id < 0) throw system_error(errno, fmt::format("create System V semaphore set {}", w.str()));
    union {
        int val;
        semid_ds* buf;
    } arg;
    arg.val = static_cast<int>(value);
    if (::semctl(id, 0, SETVAL, arg) < 0) {
        int err = errno;
        ::semctl(id, 0, IPC_RMID);
        if (err == ERANGE)
            throw usage_error(fmt::format("a value of {} is over SEMVMX (32767)", value));
        throw system_error(err, fmt::format("set the value of System V semaphore set {}", w.str()));
    }
    return true;
}

named_semaphore::named_semaphore(const std::string& name) : name_(name) {
    sem_t* s = ::sem_open(name.c_str(), 0);
    if (s == SEM_FAILED) throw last_system_error("open", "semaphore", name);
    s_ = s;
}

named_semaphore::~named_semaphore() { ::sem_close(static_cast<sem_t*>(s_)); }

bool named_semaphore::wait(const deadline& until) {
    auto* s = static_cast<sem_t*>(s_);
    for (;;) {
        check_interrupt();
        if (until.expired()) return ::sem_trywait(s) == 0;
        timespec abs = realtime_after(next_slice(until));
        if (::sem_timedwait(s, &abs) == 0) return true;
        if (errno == ETIMEDOUT) {
            if (until.expired()) return false;
            continue;
        }
        if (errno == EINTR) continue;
        throw last_system_error("wait on", "semaphore", name_);
    }
}

int named_semaphore::value() const {
    int v = 0;
    ::sem_getvalue(static_cast<sem_t*>(s_), &v);
    return v;
}

void named_semaphore::post() {
    if (::sem_post(static_cast<sem_t*>(s_)) < 0) {
        if (errno == EOVERFLOW)
            throw temp_failure(fmt::format("semaphore '{}' is at its largest value", name_), EOVERFLOW);
        throw last_system_error("post", "semaphore", name_);
    }
}

void sem_post(const semaphore_ref& w) {
    if (w.name) {
        named_semaphore(*w.name).post();
        return;
    }
    sembuf op{0, 1, 0};
    if (::semop(sysv_id(w), &op, 1) < 0) {
        if (errno == ERANGE) throw temp_failure(fmt::format("semaphore {} is at its largest value", w.str()), ERANGE);
        throw system_error(missing_or(errno), fmt::format("post System V semaphore {}", w.str()));
    }
}

bool sem_wait(const semaphore_ref& w, const deadline& until, bool undo) {
    if (w.name) {
        if (undo) throw error(exit_code::internal, "POSIX semaphores have no undo");
        return named_semaphore(*w.name).wait(until);
    }
    int id = sysv_id(w);
    for (;;) {
        check_interrupt();
        sembuf op{0, -1, static_cast<short>(undo ? SEM_UNDO : 0)};
        if (until.expired()) {
            op.sem_flg = static_cast<short>(op.sem_flg | IPC_NOWAIT);
            if (::semop(id, &op, 1) == 0) return true;
            if (errno == EAGAIN) return false;
            throw system_error(missing_or(errno), fmt::format("wait on System V semaphore {}", w.str()));
        }
        auto d = next_slice(until);
        timespec rel{static_cast<time_t>(d.count() / 1'000'000'000), static_cast<long>(d.count() % 1'000'000'000)};
        if (::semtimedop(id, &op, 1, &rel) == 0) return true;
        if (errno == EAGAIN) {
            if (until.expired()) return false;
            continue;
        }
        if (errno == EINTR) continue;
        throw system_error(missing_or(errno), fmt::format("wait on System V semaphore {}", w.str()));
    }
}

namespace {

semaphore_info sysv_sem_info(int id) {
    semid_ds ds{};
    union {
        int val;
        semid_ds* buf;
    } arg;
    arg.buf = &ds;
    if (::semctl(id, 0, IPC_STAT, arg) < 0)
        throw system_error(missing_or(errno), fmt::format("inspect System V semaphore set {}", id));
    semaphore_info i;
    i.sysv = true;
    i.id = id;
    i.key = ds.sem_perm.__key;
    i.name = fmt::format("key {:#010x}", static_cast<std::uint32_t>(i.key));
    i.value = ::semctl(id, 0, GETVAL);
    i.waiters = ::semctl(id, 0, GETNCNT);
    i.zero_waiters = ::semctl(id, 0, GETZCNT);
    i.last_pid = ::semctl(id, 0, GETPID);
    i.mode = ds.sem_perm.mode & 0777;
    i.uid = ds.sem_perm.uid;
    i.gid = ds.sem_perm.gid;
    i.change_time = ds.sem_ctime;
    i.op_time = ds.sem_otime;
    return i;
}

} // namespace

semaphore_info sem_stat(const semaphore_ref& w) {
    if (!w.name) return sysv_sem_info(sysv_id(w));
    semaphore_info i;
    i.name = *w.name;
    i.value = named_semaphore(*w.name).value();
    struct stat st {};
    std::string path = sem_path(*w.name);
    if (::stat(path.c_str(), &st) == 0) {
        i.mode = st.st_mode & 0777;
        i.uid = st.st_uid;
        i.gid = st.st_gid;
        i.change_time = st.st_ctim.tv_sec;
        i.op_time = st.st_mtim.tv_sec;
    }
    // glibc keeps the number of waiters in the upper half of the semaphore's
    // first 64-bit word (value in the lower half) on 64-bit systems.
    if (sizeof(void*) == 8) {
        unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
        std::uint64_t word = 0;
        if (fd && ::pread(fd.get(), &word, sizeof word, 0) == static_cast<ssize_t>(sizeof word) &&
            static_cast<long>(word & 0x7fffffff) == i.value)
            i.waiters = static_cast<long>(word >> 32);
    }
    return i;
}

std::vector<semaphore_info> sem_list_sysv() {
    seminfo info{};
    union {
        int val;
        semid_ds* buf;
        seminfo* __buf;
    } arg;
    arg.__buf = &info;
    int highest = ::semctl(0, 0, SEM_INFO, arg);
    if (highest < 0) throw last_system_error("list", "System V semaphore sets", "");
    std::vector<semaphore_info> out;
    for (int index = 0; index <= highest; ++index) {
        semid_ds ds{};
        arg.buf = &ds;
        int id = ::semctl(index, 0, SEM_STAT_ANY, arg);
        if (id < 0) continue;
        try {
            out.push_back(sysv_sem_info(id));
        } catch (const error&) {
            // Another user's set: list what SEM_STAT_ANY showed.
            semaphore_info i;
            i.sysv = true;
            i.id = id;
            i.key = ds.sem_perm.__key;
            i.name = fmt::format("key {:#010x}", static_cast<std::uint32_t>(i.key));
            i.value = -1;
            i.mode = ds.sem_perm.mode & 0777;
            i.uid = ds.sem_perm.uid;
            i.gid = ds.sem_perm.gid;
            out.push_back(i);
        }
    }
    return out;
}

void sem_remove(const semaphore_ref& w) {
    if (w.name) {
        if (::sem_unlink(w.name->c_str()) < 0) throw last_system_error("remove", "semaphore", *w.name);
        return;
    }
    if (::semctl(sysv_id(w), 0, IPC_RMID) < 0)
        throw system_error(missing_or(errno), fmt::format("remove System V semaphore set {}", w.str()));
}

} // namespace ipc::shm
