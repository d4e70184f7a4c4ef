// SPDX-License-Identifier: MIT
#include "ipc/pipe.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstring>
#include <fstream>
#include <map>

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "ipc/error.hpp"
#include "ipc/parse.hpp"
#include "ipc/proc.hpp"

namespace ipc::pipe {

namespace {

using inode_key = std::pair<std::uint64_t, std::uint64_t>;  // device, inode

std::string kind_of(mode_t m) {
    if (S_ISREG(m)) return "regular file";
    if (S_ISDIR(m)) return "directory";
    if (S_ISLNK(m)) return "symbolic link";
    if (S_ISSOCK(m)) return "socket";
    if (S_ISCHR(m)) return "character device";
    if (S_ISBLK(m)) return "block device";
    if (S_ISFIFO(m)) return "FIFO";
    return "file";
}

error not_a_fifo(std::string_view name, mode_t m) {
    return data_error(fmt::format("'{}' is not a FIFO (it is a {})", name, kind_of(m)));
}

end end_of_flags(int flags) {
    switch (flags & O_ACCMODE) {
    case O_RDONLY: return end::read;
    case O_WRONLY: return end::write;
    default: return end::both;
    }
}

// Everyone holding a pipe, found in one pass over /proc, with what the scan
// saw of the pipe itself (so nothing is looked up again after holders leave).
struct holder_index {
    std::map<inode_key, std::vector<holder>> by_inode;
    std::map<inode_key, std::pair<std::string, struct stat>> seen;  // link target, stat
    bool complete = true;
};

holder_index index_holders(const std::function<bool(std::string_view)>& want) {
    holder_index idx;
    auto scan = proc::scan_fds(want);
    idx.complete = scan.hidden_processes == 0;
    std::map<pid_t, std::string> names;
    for (const auto& f : scan.fds) {
        if (!S_ISFIFO(f.st.st_mode)) continue;
        auto& name = names[f.pid];
        if (name.empty()) name = proc::command(f.pid);
        inode_key key{f.st.st_dev, f.st.st_ino};
        idx.by_inode[key].push_back(holder{f.pid, name, f.fd, end_of_flags(f.flags)});
        idx.seen.try_emplace(key, f.target, f.st);
    }
    for (auto& [key, list] : idx.by_inode)
        std::sort(list.begin(), list.end(),
                  [](const holder& a, const holder& b) { return std::tie(a.pid, a.fd) < std::tie(b.pid, b.fd); });
    return idx;
}

bool anonymous_pipe_link(std::string_view t) { return t.starts_with("pipe:["); }

// A named FIFO's link is its path (FIFOs under /dev, such as /dev/shm, too).
bool maybe_fifo_link(std::string_view t) { return t.starts_with("/"); }

// Capacity and queued bytes through a descriptor of the pipe.
bool read_figures(int fd, info& out) {
    int cap = ::fcntl(fd, F_GETPIPE_SZ);
    int queued = 0;
    if (cap < 0 || ::ioctl(fd, FIONREAD, &queued) < 0) return false;
    out.capacity_bytes = static_cast<std::uint64_t>(cap);
    out.queued_bytes = static_cast<std::uint64_t>(queued);
    return true;
}

// A descriptor of the pipe borrowed from one of its holders, and which one.
std::optional<std::pair<unique_fd, std::string>> borrow_from(const std::vector<holder>& holders,
                                                             std::string& why) {
    int last_err = 0;
    for (const auto& h : holders) {
        if (h.pid == ::getpid()) {
            unique_fd dup(::fcntl(h.fd, F_DUPFD_CLOEXEC, 0));
            if (dup) return std::pair{std::move(dup), std::string("own descriptor")};
            continue;
        }
        try {
            auto fd = proc::borrow_fd(h.pid, h.fd);
            return std::pair{std::move(fd), fmt::format("pid {} fd {}", h.pid, h.fd)};
        } catch (const error& e) {
            last_err = e.errno_value();
        }
    }
    if (holders.empty()) why = "not open: a FIFO has a pipe buffer only while a process holds it open";
    else why = fmt::format("no holder's descriptor could be borrowed ({})", std::strerror(last_err));
    return std::nullopt;
}

void fill_from_stat(info& out, const struct stat& st) {
    out.inode = st.st_ino;
    out.device = st.st_dev;
    out.mode = st.st_mode & 07777;
    out.uid = st.st_uid;
    out.gid = st.st_gid;
    out.mtime_unix = st.st_mtim.tv_sec;
}

void finish_with_holders(info& out, const holder_index& idx) {
    auto it = idx.by_inode.find({out.device, out.inode});
    if (it != idx.by_inode.end()) out.holders = it->second;
    out.holders_complete = idx.complete;
    if (out.capacity_bytes) return;
    std::string why;
    if (auto borrowed = borrow_from(out.holders, why)) {
        if (read_figures(borrowed->first.get(), out)) out.figures_source = borrowed->second;
        else out.figures_source = "the borrowed descriptor did not answer";
    } else {
        out.figures_source = why;
        // Nobody holds it: the pipe has no buffer, so nothing is queued.
        if (out.holders.empty() && out.holders_complete && out.named) out.queued_bytes = 0;
    }
}

struct proc_fd_path {
    pid_t pid;
    int fd;
};

std::optional<proc_fd_path> parse_proc_fd(std::string_view s) {
    // /proc/PID/fd/N or /proc/self/fd/N
    if (!s.starts_with("/proc/")) return std::nullopt;
    s.remove_prefix(6);
    auto slash = s.find('/');
    if (slash == std::string_view::npos) return std::nullopt;
    std::string_view pid_text = s.substr(0, slash);
    s.remove_prefix(slash);
    if (!s.starts_with("/fd/")) return std::nullopt;
    s.remove_prefix(4);
    long pid = 0, fd = 0;
    if (pid_text == "self") pid = ::getpid();
    else {
        auto [e1, ec1] = std::from_chars(pid_text.data(), pid_text.data() + pid_text.size(), pid);
        if (ec1 != std::errc() || e1 != pid_text.data() + pid_text.size()) return std::nullopt;
    }
    auto [e2, ec2] = std::from_chars(s.data(), s.data() + s.size(), fd);
    if (s.empty() || ec2 != std::errc() || e2 != s.data() + s.size()) return std::nullopt;
    return proc_fd_path{static_cast<pid_t>(pid), static_cast<int>(fd)};
}

// The pipe a stat/set-capacity target names, found without opening a FIFO.
struct target {
    struct stat st {};
    bool named = false;
    std::optional<proc_fd_path> proc;  // /proc/PID/fd/N
    bool own_stdin = false;             // "-"
};

target resolve(std::string_view text) {
    target out;
    std::string name(text);
    if (text == "-") {
        if (::fstat(STDIN_FILENO, &out.st) < 0) throw last_system_error("inspect", "", "standard input");
        if (!S_ISFIFO(out.st.st_mode)) throw not_a_fifo("standard input", out.st.st_mode);
        out.own_stdin = true;
        char link[PATH_MAX];
        ssize_t n = ::readlink("/proc/self/fd/0", link, sizeof link - 1);
        out.named = n > 0 && link[0] == '/';
        return out;
    }
    out.proc = parse_proc_fd(text);
    if (::stat(name.c_str(), &out.st) < 0)
        throw last_system_error("inspect", out.proc ? "" : "FIFO", name);
    if (!S_ISFIFO(out.st.st_mode)) throw not_a_fifo(name, out.st.st_mode);
    if (out.proc) {
        char link[PATH_MAX];
        ssize_t n = ::readlink(name.c_str(), link, sizeof link - 1);
        out.named = n > 0 && link[0] == '/';
    } else {
        out.named = true;
    }
    return out;
}

// A descriptor of the target's pipe: our stdin itself, the named process's
// descriptor, or any holder's. Taken after the holders were scanned, so our
// own copy is never counted among them.
std::optional<std::pair<unique_fd, std::string>> descriptor_for(const target& t,
                                                                const std::vector<holder>& holders,
                                                                std::string& why) {
    if (t.own_stdin) {
        unique_fd dup(::fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 0));
        if (dup) return std::pair{std::move(dup), std::string("own descriptor")};
    }
    if (t.proc) {
        if (t.proc->pid == ::getpid()) {
            unique_fd dup(::fcntl(t.proc->fd, F_DUPFD_CLOEXEC, 0));
            if (dup) return std::pair{std::move(dup), std::string("own descriptor")};
        }
        try {
            auto fd = proc::borrow_fd(t.proc->pid, t.proc->fd);
            return std::pair{std::move(fd), fmt::format("pid {} fd {}", t.proc->pid, t.proc->fd)};
        } catch (const error&) {
            // Fall back on the other holders.
        }
    }
    return borrow_from(holders, why);
}

} // namespace

std::string_view end_name(end e) {
    switch (e) {
    case end::read: return "read";
    case end::write: return "write";
    case end::both: return "both";
    }
    return "?";
}

std::size_t info::readers() const {
    return static_cast<std::size_t>(std::count_if(holders.begin(), holders.end(),
                                                  [](const holder& h) { return h.end != end::write; }));
}

std::size_t info::writers() const {
    return static_cast<std::size_t>(std::count_if(holders.begin(), holders.end(),
                                                  [](const holder& h) { return h.end != end::read; }));
}

info stat(std::string_view text) {
    auto t = resolve(text);
    info out;
    out.name = std::string(text);
    out.named = t.named;
    fill_from_stat(out, t.st);
    auto idx = index_holders(out.named ? maybe_fifo_link : anonymous_pipe_link);
    auto it = idx.by_inode.find({out.device, out.inode});
    if (it != idx.by_inode.end()) out.holders = it->second;
    out.holders_complete = idx.complete;
    std::string why;
    if (auto fd = descriptor_for(t, out.holders, why)) {
        if (read_figures(fd->first.get(), out)) out.figures_source = fd->second;
        else out.figures_source = "the descriptor did not answer";
    } else {
        out.figures_source = why;
        if (out.holders.empty() && out.holders_complete && out.named) out.queued_bytes = 0;
    }
    return out;
}

bool meets(const info& i, const condition& c) {
    if (c.reader && i.readers() == 0) return false;
    if (c.writer && i.writers() == 0) return false;
    if (c.empty && (!i.queued_bytes || *i.queued_bytes != 0)) return false;
    if (c.min_bytes && (!i.queued_bytes || *i.queued_bytes < *c.min_bytes)) return false;
    return true;
}

std::optional<info> try_stat(std::string_view target) {
    try {
        return stat(target);
    } catch (const error& e) {
        if (e.errno_value() == ENOENT) return std::nullopt;
        throw;
    }
}

std::vector<info> list_fifos(const std::string& dir, bool recursive) {
    std::vector<info> found;
    std::function<void(const std::string&)> walk = [&](const std::string& d) {
        DIR* raw = ::opendir(d.c_str());
        if (!raw) {
            if (d == dir) throw last_system_error("list", "directory", d);
            return;
        }
        std::vector<std::string> subdirs;
        while (dirent* e = ::readdir(raw)) {
            std::string_view n = e->d_name;
            if (n == "." || n == "..") continue;
            std::string path = d == "/" ? "/" + std::string(n) : d + "/" + std::string(n);
            struct stat st {};
            if (::fstatat(dirfd(raw), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) continue;
            if (S_ISFIFO(st.st_mode)) {
                info i;
                i.name = path;
                i.named = true;
                fill_from_stat(i, st);
                found.push_back(std::move(i));
            } else if (recursive && S_ISDIR(st.st_mode)) {
                subdirs.push_back(path);
            }
        }
        ::closedir(raw);
        for (const auto& s : subdirs) walk(s);
    };
    walk(dir);
    std::sort(found.begin(), found.end(), [](const info& a, const info& b) { return a.name < b.name; });
    if (!found.empty()) {
        auto idx = index_holders(maybe_fifo_link);
        for (auto& i : found) finish_with_holders(i, idx);
    }
    return found;
}

std::vector<info> list_pipes(std::optional<pid_t> pid) {
    std::vector<info> found;
    auto want = [&](std::string_view t) { return anonymous_pipe_link(t) || (pid && maybe_fifo_link(t)); };
    if (pid && !proc::alive(*pid)) throw system_error(ESRCH, "find", "process", std::to_string(*pid));
    auto idx = index_holders(want);
    std::vector<inode_key> keys;
    if (pid) {
        auto own = proc::scan_fds(want, *pid);
        for (const auto& f : own.fds)
            if (S_ISFIFO(f.st.st_mode)) keys.emplace_back(f.st.st_dev, f.st.st_ino);
        std::sort(keys.begin(), keys.end());
        keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    } else {
        // Only anonymous pipes: a named FIFO is listed by `ls DIR`.
        for (const auto& [key, seen] : idx.seen)
            if (anonymous_pipe_link(seen.first)) keys.push_back(key);
    }
    for (const auto& key : keys) {
        auto it = idx.seen.find(key);
        if (it == idx.seen.end()) continue;  // closed between the two scans
        info i;
        i.named = !anonymous_pipe_link(it->second.first);
        i.name = it->second.first;
        fill_from_stat(i, it->second.second);
        finish_with_holders(i, idx);
        found.push_back(std::move(i));
    }
    return found;
}

void create(const std::string& path, mode_t mode) {
    if (::mkfifo(path.c_str(), mode) < 0) throw last_system_error("create", "FIFO", path);
    // mkfifo applies the umask; the contract's --mode is the mode itself.
    if (::chmod(path.c_str(), mode) < 0) {
        int err = errno;
        ::unlink(path.c_str());
        throw system_error(err, "set the mode of", "FIFO", path);
    }
}

void remove(const std::string& path, bool dry_run) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) < 0) throw last_system_error("remove", "FIFO", path);
    if (!S_ISFIFO(st.st_mode)) throw not_a_fifo(path, st.st_mode);
    if (dry_run) return;
    if (::unlink(path.c_str()) < 0) throw last_system_error("remove", "FIFO", path);
}

std::uint64_t max_size() {
    std::ifstream in("/proc/sys/fs/pipe-max-size");
    std::uint64_t v = 0;
    in >> v;
    return v;
}

capacity_change set_capacity(std::string_view text, std::uint64_t bytes) {
    auto t = resolve(text);
    std::string target(text);
    auto idx = index_holders(t.named ? maybe_fifo_link : anonymous_pipe_link);
    auto it = idx.by_inode.find({t.st.st_dev, t.st.st_ino});
    std::vector<holder> none;
    std::string why;
    auto fd = descriptor_for(t, it == idx.by_inode.end() ? none : it->second, why);
    if (!fd)
        throw error(it == idx.by_inode.end() ? exit_code::no_object : exit_code::no_perm,
                    fmt::format("cannot set the capacity of '{}': {}", target, why));
    unique_fd& pipe_fd = fd->first;
    capacity_change c;
    c.name = target;
    c.requested = bytes;
    c.via = fd->second;
    int before = ::fcntl(pipe_fd.get(), F_GETPIPE_SZ);
    c.previous = before > 0 ? static_cast<std::uint64_t>(before) : 0;
    if (bytes > INT_MAX)
        throw data_error(fmt::format("cannot set the capacity of '{}' to {}: larger than the kernel accepts",
                                     target, parse::human_size(bytes)));
    int r = ::fcntl(pipe_fd.get(), F_SETPIPE_SZ, static_cast<int>(bytes));
    if (r < 0) {
        int err = errno;
        if (err == EPERM)
            throw error(exit_code::no_perm,
                        fmt::format("cannot set the capacity of '{}' to {}: over /proc/sys/fs/pipe-max-size "
                                    "({} bytes) or the per-user pipe limits, and not privileged",
                                    target, parse::human_size(bytes), max_size()),
                        err);
        if (err == EBUSY)
            throw temp_failure(fmt::format("cannot set the capacity of '{}' to {}: more than that is queued",
                                           target, parse::human_size(bytes)),
                               err);
        throw system_error(err, fmt::format("set the capacity of '{}'", target));
    }
    c.granted = static_cast<std::uint64_t>(r);
    return c;
}

unique_fd open_fifo(const std::string& path, direction dir, const deadline& until,
                    const std::function<void(const std::string&)>& warn) {
    // Look before opening: opening a device can have side effects.
    struct stat st {};
    if (::lstat(path.c_str(), &st) < 0) throw last_system_error("open", "FIFO", path);
    if (S_ISLNK(st.st_mode))
        throw data_error(fmt::format("'{}' is a symbolic link; give the FIFO's own path", path));
    if (!S_ISFIFO(st.st_mode)) throw not_a_fifo(path, st.st_mode);

    int flags = (dir == direction::read ? O_RDONLY : O_WRONLY) | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC;
    std::chrono::nanoseconds step = std::chrono::microseconds(500);
    unique_fd fd;
    for (;;) {
        fd.reset(retry([&] { return ::open(path.c_str(), flags); }));
        if (fd) break;
        // A write open with no reader fails with ENXIO: wait for one, up to the deadline.
        if (errno != ENXIO) throw last_system_error("open", "FIFO", path);
        if (until.expired())
            throw error(exit_code::temp_fail,
                        fmt::format("cannot open FIFO '{}' for writing: no reader{}", path,
                                    until.infinite() ? "" : " within the timeout"),
                        ENXIO);
        sleep_until(until, step);
        step = std::min<std::chrono::nanoseconds>(step * 2, std::chrono::milliseconds(20));
    }
    struct stat now {};
    if (::fstat(fd.get(), &now) < 0) throw last_system_error("inspect", "FIFO", path);
    if (!S_ISFIFO(now.st_mode) || now.st_ino != st.st_ino || now.st_dev != st.st_dev)
        throw data_error(fmt::format("'{}' changed while it was being opened", path));
    if (warn && now.st_uid != ::geteuid()) {
        warn(fmt::format("FIFO '{}' belongs to another user ({})", path, proc::user_name(now.st_uid)));
    }
    return fd;
}

sender::sender(int fd, std::string label, framing::mode m) : fd_(fd), label_(std::move(label)), mode_(m) {}

bool sender::lock(int how, const deadline& until) {
    std::chrono::nanoseconds step = std::chrono::microseconds(200);
    for (;;) {
        if (retry([&] { return ::flock(fd_, how | LOCK_NB); }) == 0) return true;
        if (errno != EWOULDBLOCK) throw system_error(errno, "lock " + label_);
        if (until.expired()) return false;
        sleep_until(until, step);
        step = std::min<std::chrono::nanoseconds>(step * 2, std::chrono::milliseconds(10));
    }
}

void sender::unlock() { ::flock(fd_, LOCK_UN); }

bool sender::write_small(std::string_view frame, const deadline& until) {
    if (!lock(LOCK_SH, until)) return false;
    struct guard {
        sender* s;
        ~guard() { s->unlock(); }
    } g{this};
    for (;;) {
        // Up to PIPE_BUF bytes: the kernel writes all of it or nothing.
        ssize_t n = retry([&] { return ::write(fd_, frame.data(), frame.size()); });
        if (n == static_cast<ssize_t>(frame.size())) return true;
        if (n >= 0) throw error(exit_code::internal, "pipe accepted part of an atomic write");
        if (errno != EAGAIN) throw system_error(errno, "write to " + label_);
        if (wait_fd(fd_, POLLOUT, until) == 0) return false;
    }
}

bool sender::write_large(std::string_view frame, const deadline& until) {
    if (!lock(LOCK_EX, until)) return false;
    struct guard {
        sender* s;
        ~guard() { s->unlock(); }
    } g{this};
    // Room for all of it first, so that one write(2) moves the whole message
    // and a sender killed meanwhile leaves nothing behind.
    int cap = ::fcntl(fd_, F_GETPIPE_SZ);
    if (cap > 0 && static_cast<std::size_t>(cap) < frame.size() + PIPE_BUF) {
        std::uint64_t want = std::min<std::uint64_t>(std::max<std::uint64_t>(frame.size() + PIPE_BUF, 2 * cap),
                                                     INT_MAX);
        int r = ::fcntl(fd_, F_SETPIPE_SZ, static_cast<int>(want));
        if (r > 0) cap = r;
    }
    if (cap > 0 && static_cast<std::size_t>(cap) >= frame.size() + PIPE_BUF) {
        std::chrono::nanoseconds step = std::chrono::microseconds(50);
        for (;;) {
            int queued = 0;
            if (::ioctl(fd_, FIONREAD, &queued) < 0) break;
            // One page of slack: the ring is counted in pages, not bytes.
            if (static_cast<std::size_t>(cap - queued) >= frame.size() + PIPE_BUF) break;
            if (until.expired()) return false;
            sleep_until(until, step);
            step = std::min<std::chrono::nanoseconds>(step * 2, std::chrono::milliseconds(5));
        }
    }
    // Once a byte is out the message is finished, whatever the deadline.
    std::size_t done = 0;
    while (done < frame.size()) {
        ssize_t n = retry([&] { return ::write(fd_, frame.data() + done, frame.size() - done); });
        if (n >= 0) {
            done += static_cast<std::size_t>(n);
            continue;
        }
        if (errno != EAGAIN) throw system_error(errno, "write to " + label_);
        if (done == 0 && until.expired()) return false;
        wait_fd(fd_, POLLOUT, done == 0 ? until : deadline::never());
    }
    return true;
}

bool sender::send(std::string_view payload, const deadline& until) {
    frame_.clear();
    framing::encode(mode_, payload, frame_);
    if (frame_.size() <= PIPE_BUF) return write_small(frame_, until);
    return write_large(frame_, until);
}

relay_stats relay(int in, int out, const std::function<void(std::uint64_t)>& progress) {
    relay_stats stats;
    struct stat in_st {}, out_st {};
    ::fstat(in, &in_st);
    ::fstat(out, &out_st);
    bool in_pipe = S_ISFIFO(in_st.st_mode), out_pipe = S_ISFIFO(out_st.st_mode);
    // Bigger pipe buffers mean fewer, larger moves.
    auto grow = [](int fd) {
        int cap = ::fcntl(fd, F_GETPIPE_SZ);
        std::uint64_t target = std::min<std::uint64_t>(max_size(), 1 << 20);
        if (cap > 0 && static_cast<std::uint64_t>(cap) < target) ::fcntl(fd, F_SETPIPE_SZ, static_cast<int>(target));
    };
    if (in_pipe) grow(in);
    if (out_pipe) grow(out);
    std::size_t step = 1 << 20;
    auto tick = std::chrono::steady_clock::now();
    auto report = [&] {
        if (!progress) return;
        auto now = std::chrono::steady_clock::now();
        if (now - tick >= std::chrono::milliseconds(250)) {
            tick = now;
            progress(stats.bytes);
        }
    };

    if (in_pipe || out_pipe) {
        for (;;) {
            ssize_t n = retry([&] { return ::splice(in, nullptr, out, nullptr, step, SPLICE_F_MOVE | SPLICE_F_MORE); });
            if (n > 0) {
                stats.bytes += static_cast<std::uint64_t>(n);
                stats.spliced = true;
                report();
                continue;
            }
            if (n == 0) {
                if (progress) progress(stats.bytes);
                return stats;
            }
            if (errno == EAGAIN) {
                // A non-blocking side: wait for whichever is not ready.
                pollfd p[2] = {{in, POLLIN, 0}, {out, POLLOUT, 0}};
                retry([&] { return ::poll(p, 2, 100); });
                check_interrupt();
                continue;
            }
            if (errno == EINVAL && stats.bytes == 0) break;  // this pair cannot splice: copy instead
            if (errno == EPIPE) throw system_error(errno, "relay into the output");
            throw system_error(errno, "relay");
        }
    }
    std::string buf(step, '\0');
    for (;;) {
        ssize_t n = retry([&] { return ::read(in, buf.data(), buf.size()); });
        if (n < 0 && errno == EAGAIN) {
            wait_fd(in, POLLIN, deadline::never());
            continue;
        }
        if (n < 0) throw system_error(errno, "read the relay's input");
        if (n == 0) break;
        write_all(out, std::string_view(buf.data(), static_cast<std::size_t>(n)), deadline::never(),
                  "the relay's output");
        stats.bytes += static_cast<std::uint64_t>(n);
        report();
    }
    if (progress) progress(stats.bytes);
    return stats;
}

} // namespace ipc::pipe
