// SPDX-License-Identifier: MIT
#include "ipc/shm.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <set>

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fmt/format.h>

#include "ipc/error.hpp"
#include "ipc/proc.hpp"

namespace ipc::shm {

namespace {

constexpr const char* kind_attr = "user.ipc.kind";
constexpr const char* creator_attr = "user.ipc.creator";
constexpr const char* temp_prefix = ".ipc-tmp-";


std::string body(const std::string& name) { return name.substr(1); }


std::string creator_tag() {
    pid_t me = ::getpid();
    return fmt::format("{}:{}", me, proc::start_time(me).value_or(0));
}

std::optional<std::string> get_attr(int fd, const char* attr) {
    char buf[256];
    ssize_t n = ::fgetxattr(fd, attr, buf, sizeof buf);
    if (n < 0) return std::nullopt;
    return std::string(buf, static_cast<std::size_t>(n));
}

std::optional<std::string> get_attr_path(const std::string& path, const char* attr) {
    char buf[256];
    ssize_t n = ::lgetxattr(path.c_str(), attr, buf, sizeof buf);
    if (n < 0) return std::nullopt;
    return std::string(buf, static_cast<std::size_t>(n));
}

} // namespace

void tag_path(const std::string& path, kind k) {
    std::string kv = std::string(kind_name(k)) + " ipc-shm";
    ::lsetxattr(path.c_str(), kind_attr, kv.data(), kv.size(), 0);
    auto c = creator_tag();
    ::lsetxattr(path.c_str(), creator_attr, c.data(), c.size(), 0);
}

void tag_fd(int fd, kind k, std::string_view tool) {
    std::string kv = fmt::format("{} {}", kind_name(k), tool);
    // Tags are best effort: a file system without user xattrs still works,
    // the kind then comes from the magic number or the name.
    ::fsetxattr(fd, kind_attr, kv.data(), kv.size(), 0);
    auto c = creator_tag();
    ::fsetxattr(fd, creator_attr, c.data(), c.size(), 0);
}

namespace {

kind kind_from_magic(int fd) {
    std::uint64_t m = 0;
    if (::pread(fd, &m, sizeof m, 0) != static_cast<ssize_t>(sizeof m)) return kind::other;
    if (m == ring::magic) return kind::channel;
    if (m == consistent::magic) return kind::consistent;
    return kind::other;
}

// Who maps or holds each /dev/shm path, in one pass over /proc.
struct attachment_index {
    std::map<std::string, std::set<pid_t>> by_path;
    bool complete = true;
};

attachment_index index_attachments() {
    attachment_index idx;
    std::string dir = shm_dir() + "/";
    auto scan = proc::scan_fds([&](std::string_view t) { return t.starts_with(dir); });
    for (const auto& f : scan.fds) {
        std::string p = f.target;
        if (p.ends_with(" (deleted)")) continue;
        idx.by_path[p].insert(f.pid);
    }
    if (scan.hidden_processes) idx.complete = false;
    DIR* d = ::opendir("/proc");
    if (!d) return idx;
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        std::string maps_path = fmt::format("/proc/{}/maps", e->d_name);
        unique_fd probe(::open(maps_path.c_str(), O_RDONLY | O_CLOEXEC));
        if (!probe) {
            if (errno == EACCES || errno == EPERM) idx.complete = false;  // gone meanwhile is fine
            continue;
        }
        std::ifstream maps(maps_path);
        pid_t pid = static_cast<pid_t>(std::strtol(e->d_name, nullptr, 10));
        std::string line;
        while (std::getline(maps, line)) {
            auto pos = line.find(dir);
            if (pos == std::string::npos) continue;
            std::string p = line.substr(pos);
            if (p.ends_with(" (deleted)")) continue;
            idx.by_path[p].insert(pid);
        }
    }
    ::closedir(d);
    return idx;
}

object_info describe(const std::string& file, const struct stat& st, const attachment_index* idx) {
    object_info i;
    std::string path = shm_dir() + "/" + file;
    bool is_sem = file.starts_with("sem.");
    i.name = "/" + (is_sem ? file.substr(4) : file);
    i.size_bytes = static_cast<std::uint64_t>(st.st_size);
    i.mode = st.st_mode & 07777;
    i.uid = st.st_uid;
    i.gid = st.st_gid;
    i.mtime_unix = st.st_mtim.tv_sec;
    i.ctime_unix = st.st_ctim.tv_sec;
    if (auto tagged = get_attr_path(path, kind_attr)) {
        auto space = tagged->find(' ');
        i.kind = parse_kind(tagged->substr(0, space)).value_or(kind::other);
        if (space != std::string::npos) i.tool = tagged->substr(space + 1);
    } else if (is_sem) {
        // glibc's named semaphores are files of exactly one sem_t; anything
        // else under that name is not one.
        i.kind = st.st_size == static_cast<off_t>(sizeof(sem_t)) ? kind::semaphore : kind::other;
    } else {
        unique_fd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
        i.kind = fd ? kind_from_magic(fd.get()) : kind::other;
    }
    if (auto c = get_attr_path(path, creator_attr)) {
        auto colon = c->find(':');
        pid_t pid = static_cast<pid_t>(std::strtol(c->c_str(), nullptr, 10));
        unsigned long long started = colon == std::string::npos ? 0 : std::strtoull(c->c_str() + colon + 1, nullptr, 10);
        if (pid > 0) {
            i.creator_pid = pid;
            auto now = proc::start_time(pid);
            i.creator_alive = now && (started == 0 || *now == started);
        }
    }
    if (idx) {
        auto it = idx->by_path.find(path);
        if (it != idx->by_path.end()) i.attached.assign(it->second.begin(), it->second.end());
        i.attached_complete = idx->complete;
    }
    return i;
}

int open_dir() {
    int d = ::open(shm_dir().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d < 0) throw last_system_error("open", "directory", shm_dir());
    return d;
}

std::string with_article(std::string_view noun) {
    bool vowel = !noun.empty() && std::string_view("aeiou").find(noun[0]) != std::string_view::npos;
    return std::string(vowel ? "an " : "a ") + std::string(noun);
}

} // namespace

std::string_view kind_name(kind k) {
    switch (k) {
    case kind::segment: return "segment";
    case kind::consistent: return "consistent";
    case kind::channel: return "channel";
    case kind::semaphore: return "semaphore";
    case kind::mailbox: return "mailbox";
    case kind::other: return "other";
    }
    return "other";
}

std::optional<kind> parse_kind(std::string_view t) {
    for (auto k : {kind::segment, kind::consistent, kind::channel, kind::semaphore, kind::mailbox, kind::other})
        if (t == kind_name(k)) return k;
    return std::nullopt;
}

std::string shm_dir() { return "/dev/shm"; }

mapping& mapping::operator=(mapping&& o) noexcept {
    if (this != &o) {
        this->~mapping();
        base_ = o.base_;
        size_ = o.size_;
        sysv_ = o.sysv_;
        o.base_ = nullptr;
    }
    return *this;
}

mapping::~mapping() {
    if (!base_) return;
    if (sysv_) ::shmdt(base_);
    else ::munmap(base_, size_);
    base_ = nullptr;
}

namespace {

// Makes an object under a temporary name, lets `prepare` size and format it,
// and links it into place only when complete: nobody ever opens a half-made
// object, and link(2) fails if the name exists. Returns false when it existed
// (and !exclusive): the existing object is left as it is.
void reserve(int fd, std::uint64_t from, std::uint64_t to, const std::string& name) {
    if (to <= from) return;
    int err = ::posix_fallocate(fd, static_cast<off_t>(from), static_cast<off_t>(to - from));
    // EOPNOTSUPP/EINVAL: a file system without fallocate; the size stands.
    if (err == ENOSPC || err == EFBIG)
        throw system_error(err, fmt::format("reserve {} bytes for '{}' in {}", to - from, name, shm_dir()));
}

template <class F>
bool create_object(const std::string& name, mode_t mode, bool exclusive, kind k, F prepare) {
    unique_fd dir(open_dir());
    std::string tmp = fmt::format("{}{}-{}", temp_prefix, ::getpid(), body(name));
    if (tmp.size() > 255) tmp = fmt::format("{}{}-{}", temp_prefix, ::getpid(), ::gettid());
    unique_fd fd(::openat(dir.get(), tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode & 0777));
    if (!fd) throw system_error(errno, "create", std::string(kind_name(k)), name);
    struct unlink_tmp {
        int dir;
        std::string tmp;
        ~unlink_tmp() { ::unlinkat(dir, tmp.c_str(), 0); }
    } cleanup{dir.get(), tmp};
    ::fchmod(fd.get(), mode & 0777);
    prepare(fd.get());
    tag_fd(fd.get(), k);
    if (::linkat(dir.get(), tmp.c_str(), dir.get(), body(name).c_str(), 0) < 0) {
        int err = errno;
        if (err == EEXIST && !exclusive) return false;
        throw system_error(err, "create", std::string(kind_name(k)), name);
    }
    return true;
}

// Sizes a new object and reserves its memory: a /dev/shm without room says
// ENOSPC now, rather than SIGBUS to whoever touches a page later.
void size_to(int fd, std::uint64_t bytes, const std::string& name) {
    if (::ftruncate(fd, static_cast<off_t>(bytes)) < 0) throw last_system_error("size", "segment", name);
    reserve(fd, 0, bytes, name);
}

// A segment's name may not be where glibc keeps a named semaphore.
void check_not_semaphore_name(const std::string& name) {
    if (body(name).starts_with("sem."))
        throw usage_error(fmt::format("'{}': names beginning with 'sem.' are where POSIX semaphores live in {} "
                                      "(that file is semaphore '/{}'); choose another name",
                                      name, shm_dir(), body(name).substr(4)));
}

} // namespace

bool create_segment(const std::string& name, std::uint64_t size, mode_t mode, bool exclusive, kind k) {
    if (k != kind::segment && k != kind::consistent)
        throw error(exit_code::internal, "create_segment makes plain and consistent segments");
    check_not_semaphore_name(name);
    return create_object(name, mode, exclusive, k, [&](int fd) {
        std::uint64_t bytes = k == kind::consistent ? consistent::region_size(size) : size;
        size_to(fd, bytes, name);
        if (k == kind::consistent) {
            void* m = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (m == MAP_FAILED) throw last_system_error("map", "segment", name);
            consistent::format({static_cast<std::byte*>(m), bytes}, size);
            ::munmap(m, bytes);
        }
    });
}

bool create_channel(const std::string& name, std::uint64_t capacity, std::uint64_t max_msg, mode_t mode,
                    bool exclusive) {
    check_not_semaphore_name(name);
    capacity = (capacity + 15) & ~std::uint64_t{15};
    if (max_msg == 0) max_msg = ring::largest_message(capacity);
    if (max_msg == 0 || max_msg > ring::largest_message(capacity))
        throw usage_error(fmt::format("a channel of {} bytes takes messages of at most {} bytes (half its size, "
                                      "less a header)",
                                      capacity, ring::largest_message(capacity)));
    return create_object(name, mode, exclusive, kind::channel, [&](int fd) {
        std::size_t bytes = ring::region_size(capacity);
        size_to(fd, bytes, name);
        void* m = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED) throw last_system_error("map", "channel", name);
        ring::channel::format({static_cast<std::byte*>(m), bytes}, capacity, max_msg);
        ::munmap(m, bytes);
    });
}

std::optional<uid_t> owner(const std::string& name) {
    unique_fd dir(open_dir());
    struct stat st {};
    if (::fstatat(dir.get(), body(name).c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 ||
        ::fstatat(dir.get(), ("sem." + body(name)).c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0)
        return st.st_uid;
    return std::nullopt;
}

object_info stat(const std::string& name) {
    std::string file = body(name);
    struct stat st {};
    unique_fd dir(open_dir());
    if (::fstatat(dir.get(), file.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
        int err = errno;
        std::string sem = "sem." + file;
        if (err != ENOENT || ::fstatat(dir.get(), sem.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0)
            throw system_error(err, "inspect", "shared memory object", name);
        file = sem;
    }
    if (!S_ISREG(st.st_mode))
        throw data_error(fmt::format("'{}' in {} is not a shared memory object", name, shm_dir()));
    auto idx = index_attachments();
    return describe(file, st, &idx);
}

std::vector<object_info> list() {
    std::vector<object_info> out;
    unique_fd dir(open_dir());
    DIR* d = ::fdopendir(::dup(dir.get()));
    if (!d) throw last_system_error("list", "directory", shm_dir());
    auto idx = index_attachments();
    while (dirent* e = ::readdir(d)) {
        std::string file = e->d_name;
        if (file == "." || file == ".." || file.starts_with(temp_prefix)) continue;
        struct stat st {};
        if (::fstatat(dir.get(), file.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)) continue;
        out.push_back(describe(file, st, &idx));
    }
    ::closedir(d);
    std::sort(out.begin(), out.end(), [](const object_info& a, const object_info& b) {
        return std::tie(a.name, a.kind) < std::tie(b.name, b.kind);
    });
    return out;
}

void remove(const std::string& name) {
    auto i = stat(name);
    if (i.kind == kind::semaphore) {
        sem_remove(semaphore_ref{name, std::nullopt, std::nullopt});
        return;
    }
    if (::shm_unlink(name.c_str()) < 0) throw last_system_error("remove", std::string(kind_name(i.kind)), name);
}

std::vector<temporary> abandoned_temporaries() {
    std::vector<temporary> out;
    unique_fd dir(open_dir());
    DIR* d = ::fdopendir(::dup(dir.get()));
    if (!d) throw last_system_error("list", "directory", shm_dir());
    std::string prefix = temp_prefix;
    while (dirent* e = ::readdir(d)) {
        std::string file = e->d_name;
        if (!file.starts_with(prefix)) continue;
        pid_t pid = static_cast<pid_t>(std::strtol(file.c_str() + prefix.size(), nullptr, 10));
        struct stat st {};
        if (pid <= 0 || ::fstatat(dir.get(), file.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) ||
            st.st_uid != ::geteuid())
            continue;
        // Alive: its create is under way. (A recycled pid keeps it until later.)
        if (proc::alive(pid)) continue;
        auto dash = file.find('-', prefix.size());
        std::string name = dash == std::string::npos ? "" : file.substr(dash + 1);
        out.push_back({file, "/" + name, st.st_uid, st.st_mtim.tv_sec});
    }
    ::closedir(d);
    std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.file < b.file; });
    return out;
}

void remove_temporary(const std::string& file) {
    if (!file.starts_with(temp_prefix) || file.find('/') != std::string::npos)
        throw error(exit_code::internal, "not a temporary file: " + file);
    unique_fd dir(open_dir());
    if (::unlinkat(dir.get(), file.c_str(), 0) < 0 && errno != ENOENT)
        throw last_system_error("remove", "temporary file", file);
}

void resize(const std::string& name, std::uint64_t size) {
    auto i = stat(name);
    if (i.kind != kind::segment && i.kind != kind::other)
        throw data_error(fmt::format("'{}' is {}, whose layout is fixed: it cannot be resized", name,
                                     with_article(i.kind == kind::consistent ? "consistent segment" : kind_name(i.kind))));
    unique_fd fd(::shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0));
    if (!fd) throw last_system_error("open", "segment", name);
    struct stat st {};
    ::fstat(fd.get(), &st);
    if (::ftruncate(fd.get(), static_cast<off_t>(size)) < 0) throw last_system_error("resize", "segment", name);
    try {
        reserve(fd.get(), static_cast<std::uint64_t>(st.st_size), size, name);
    } catch (const error&) {
        if (::ftruncate(fd.get(), st.st_size) < 0) {  // back to the old size: nothing stored is lost
        }
        throw;
    }
}

std::string read_at(const std::string& name, std::uint64_t offset, std::uint64_t length) {
    unique_fd fd(::shm_open(name.c_str(), O_RDONLY | O_CLOEXEC, 0));
    if (!fd) throw last_system_error("open", "segment", name);
    std::string out(length, '\0');
    std::size_t done = 0;
    while (done < length) {
        ssize_t r = ::pread(fd.get(), out.data() + done, length - done, static_cast<off_t>(offset + done));
        if (r < 0) {
            if (errno == EINTR) continue;
            throw last_system_error("read", "segment", name);
        }
        if (r == 0) break;  // shrunk meanwhile: the rest reads as zeros
        done += static_cast<std::size_t>(r);
    }
    return out;
}

void write_at(const std::string& name, std::uint64_t offset, std::string_view data) {
    unique_fd fd(::shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0));
    if (!fd) throw last_system_error("open", "segment", name);
    // Pages first: without room, nothing is written at all.
    reserve(fd.get(), offset, offset + data.size(), name);
    std::size_t done = 0;
    while (done < data.size()) {
        ssize_t w = ::pwrite(fd.get(), data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
        if (w < 0) {
            if (errno == EINTR) continue;
            throw system_error(errno, fmt::format("write {} bytes to segment '{}' ({} written)", data.size(), name, done));
        }
        done += static_cast<std::size_t>(w);
    }
}

mapping map(const std::string& name, bool writable, std::optional<kind> want) {
    unique_fd fd(::shm_open(name.c_str(), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC, 0));
    // shm_open does not follow symbolic links (ELOOP): say what stat says.
    if (!fd && errno == ELOOP)
        throw data_error(fmt::format("'{}' in {} is not a shared memory object", name, shm_dir()));
    if (!fd) throw last_system_error("open", "shared memory object", name);
    struct stat st {};
    if (::fstat(fd.get(), &st) < 0) throw last_system_error("inspect", "segment", name);
    if (!S_ISREG(st.st_mode))
        throw data_error(fmt::format("'{}' in {} is not a shared memory object", name, shm_dir()));
    if (want) {
        kind k = kind::other;
        if (auto t = get_attr(fd.get(), kind_attr)) k = parse_kind(t->substr(0, t->find(' '))).value_or(kind::other);
        else k = kind_from_magic(fd.get());
        bool ok = k == *want || (*want == kind::segment && k == kind::other);
        if (!ok)
            throw data_error(fmt::format("'{}' is {}, not {}", name, with_article(kind_name(k)), with_article(kind_name(*want))));
    }
    if (st.st_size == 0) return mapping(nullptr, 0, false);
    void* m = ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ | (writable ? PROT_WRITE : 0),
                     MAP_SHARED, fd.get(), 0);
    if (m == MAP_FAILED) throw last_system_error("map", "segment", name);
    return mapping(m, static_cast<std::size_t>(st.st_size), false);
}

// ------------------------------------------------------- System V segments --

namespace {

sysv_info sysv_of(int id, const shmid_ds& ds) {
    sysv_info i;
    i.id = id;
    i.key = ds.shm_perm.__key;
    i.size_bytes = ds.shm_segsz;
    i.mode = ds.shm_perm.mode & 0777;
    i.removed = (ds.shm_perm.mode & SHM_DEST) != 0;
    i.uid = ds.shm_perm.uid;
    i.gid = ds.shm_perm.gid;
    i.cuid = ds.shm_perm.cuid;
    i.cgid = ds.shm_perm.cgid;
    i.attached = ds.shm_nattch;
    i.creator_pid = ds.shm_cpid;
    i.last_pid = ds.shm_lpid;
    i.attach_time = ds.shm_atime;
    i.detach_time = ds.shm_dtime;
    i.change_time = ds.shm_ctime;
    return i;
}

int missing_or(int err) { return err == EINVAL || err == EIDRM ? ENOENT : err; }

} // namespace

int sysv_create(key_t key, std::uint64_t size, mode_t mode, bool exclusive, bool* created) {
    int id = ::shmget(key, size, IPC_CREAT | IPC_EXCL | static_cast<int>(mode & 0777));
    if (created) *created = id >= 0;
    if (id < 0 && errno == EEXIST && !exclusive) id = ::shmget(key, 0, 0);
    if (id < 0) {
        int err = errno;
        if (err == EINVAL)
            throw error(exit_code::os,
                        fmt::format("cannot create System V segment with key {:#010x}: {} bytes is outside "
                                    "/proc/sys/kernel/shmmax, or the key's segment is smaller",
                                    static_cast<std::uint32_t>(key), size),
                        err);
        throw system_error(err, fmt::format("create System V segment with key {:#010x}", static_cast<std::uint32_t>(key)));
    }
    return id;
}

int sysv_resolve(std::optional<key_t> key, std::optional<int> id) {
    if (id) {
        shmid_ds ds{};
        if (::shmctl(*id, IPC_STAT, &ds) < 0)
            throw system_error(missing_or(errno), fmt::format("open System V segment id {}", *id));
        return *id;
    }
    if (!key || *key == IPC_PRIVATE) throw usage_error("a private segment (key 0) has no key to find it by: use --id");
    int r = ::shmget(*key, 0, 0);
    if (r < 0) throw system_error(errno, fmt::format("open System V segment key {:#010x}", static_cast<std::uint32_t>(*key)));
    return r;
}

sysv_info sysv_stat(int id) {
    shmid_ds ds{};
    if (::shmctl(id, IPC_STAT, &ds) < 0)
        throw system_error(missing_or(errno), fmt::format("inspect System V segment {}", id));
    return sysv_of(id, ds);
}

std::vector<sysv_info> sysv_list() {
    shm_info info{};
    int highest = ::shmctl(0, SHM_INFO, reinterpret_cast<shmid_ds*>(&info));
    if (highest < 0) throw last_system_error("list", "System V segments", "");
    std::vector<sysv_info> out;
    for (int index = 0; index <= highest; ++index) {
        shmid_ds ds{};
        int id = ::shmctl(index, SHM_STAT_ANY, &ds);
        if (id >= 0) out.push_back(sysv_of(id, ds));
    }
    return out;
}

void sysv_remove(int id) {
    if (::shmctl(id, IPC_RMID, nullptr) < 0)
        throw system_error(missing_or(errno), fmt::format("remove System V segment {}", id));
}

mapping sysv_map(int id, bool writable) {
    auto info = sysv_stat(id);
    void* m = ::shmat(id, nullptr, writable ? 0 : SHM_RDONLY);
    if (m == reinterpret_cast<void*>(-1))
        throw system_error(missing_or(errno), fmt::format("attach System V segment {}", id));
    return mapping(m, static_cast<std::size_t>(info.size_bytes), true);
}

} // namespace ipc::shm
