// SPDX-License-Identifier: MIT
#include "ipc/mq.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <sys/msg.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <fmt/format.h>

#include "ipc/error.hpp"
#include "ipc/parse.hpp"

namespace ipc::mq {

namespace {

constexpr long hard_msg_max = 65536;            // HARD_MSGMAX
constexpr long hard_msgsize_max = 16 * 1048576;  // HARD_MSGSIZEMAX
constexpr unsigned long mqueue_magic = 0x19800202;

long read_long(const char* path) {
    std::ifstream in(path);
    long v = -1;
    if (!(in >> v)) return -1;
    return v;
}

std::string body_of(const std::string& name) { return name.substr(1); }  // "/q" -> "q"

// The kernel's mqueue file ("QSIZE:5 NOTIFY:0 SIGNO:0 NOTIFY_PID:0").
struct mqueue_file {
    std::uint64_t qsize = 0;
    pid_t notify_pid = 0;
    struct stat st {};
};

std::optional<mqueue_file> read_mqueue_file(const std::string& dir, const std::string& name) {
    std::string path = dir + "/" + body_of(name);
    mqueue_file f;
    if (::stat(path.c_str(), &f.st) < 0) return std::nullopt;
    std::ifstream in(path);
    std::string word;
    while (in >> word) {
        auto colon = word.find(':');
        if (colon == std::string::npos) continue;
        auto key = word.substr(0, colon);
        auto value = std::strtoull(word.c_str() + colon + 1, nullptr, 10);
        if (key == "QSIZE") f.qsize = value;
        else if (key == "NOTIFY_PID") f.notify_pid = static_cast<pid_t>(value);
    }
    if (!in.eof() && in.fail()) return std::nullopt;
    return f;
}

// A one-shot timer that interrupts a blocking System V call at a deadline:
// msgsnd and msgrcv have no timed variant.
extern "C" void on_alarm(int) {}

class interrupt_timer {
public:
    explicit interrupt_timer(const deadline& until) {
        // Without a deadline the timer still ticks, so that a SIGINT landing
        // just before the call blocks is seen within one tick.
        constexpr std::int64_t tick = 100'000'000;
        auto left = until.remaining();
        static bool installed = [] {
            struct sigaction sa {};
            sa.sa_handler = on_alarm;
            sigemptyset(&sa.sa_mask);
            sa.sa_flags = 0;  // no SA_RESTART: the call must return EINTR
            ::sigaction(SIGALRM, &sa, nullptr);
            return true;
        }();
        (void)installed;
        sigevent ev{};
        ev.sigev_notify = SIGEV_SIGNAL;
        ev.sigev_signo = SIGALRM;
        if (::timer_create(CLOCK_MONOTONIC, &ev, &timer_) < 0) throw last_system_error("create", "timer", "");
        armed_ = true;
        auto ns = left ? std::max<std::int64_t>(left->count(), 1) : tick;
        itimerspec spec{};
        spec.it_value.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
        spec.it_value.tv_nsec = static_cast<long>(ns % 1'000'000'000);
        // Repeat, so that a tick that lands before the call blocks is not the last one.
        spec.it_interval.tv_nsec = left ? 2'000'000 : tick;
        ::timer_settime(timer_, 0, &spec, nullptr);
    }
    ~interrupt_timer() {
        if (armed_) ::timer_delete(timer_);
    }
    interrupt_timer(const interrupt_timer&) = delete;
    interrupt_timer& operator=(const interrupt_timer&) = delete;

private:
    timer_t timer_{};
    bool armed_ = false;
};

// Calls a blocking System V operation until it succeeds, fails, or the
// deadline passes (false). nowait is tried first so a ready queue costs one call.
template <class F>
bool sysv_call(F call, const deadline& until, const char* what, int id) {
    if (call(IPC_NOWAIT) >= 0) return true;
    if (errno != EAGAIN && errno != ENOMSG && errno != EINTR)
        throw system_error(errno, fmt::format("{} System V queue {}", what, id));
    if (until.expired()) return false;
    interrupt_timer timer(until);
    for (;;) {
        check_interrupt();
        if (call(0) >= 0) return true;
        if (errno != EINTR) throw system_error(errno, fmt::format("{} System V queue {}", what, id));
        if (until.expired()) return false;
    }
}

} // namespace

posix_limits read_posix_limits() {
    posix_limits l;
    l.msg_max = read_long("/proc/sys/fs/mqueue/msg_max");
    l.msgsize_max = read_long("/proc/sys/fs/mqueue/msgsize_max");
    l.queues_max = read_long("/proc/sys/fs/mqueue/queues_max");
    l.msg_default = read_long("/proc/sys/fs/mqueue/msg_default");
    l.msgsize_default = read_long("/proc/sys/fs/mqueue/msgsize_default");
    rlimit r{};
    if (::getrlimit(RLIMIT_MSGQUEUE, &r) == 0) l.rlimit_msgqueue = r.rlim_cur;
    return l;
}

std::uint64_t posix_queue_cost(long max_msgs, long msg_size) {
    // ipc/mqueue.c: one msg_msg header per message, one tree node per priority in use.
    auto n = static_cast<std::uint64_t>(max_msgs);
    return n * 48 + std::min<std::uint64_t>(n, 32768) * 48 + n * static_cast<std::uint64_t>(msg_size);
}

std::optional<std::string> mqueue_mount() {
    std::ifstream in("/proc/self/mountinfo");
    std::string line;
    while (std::getline(in, line)) {
        // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
        auto dash = line.find(" - ");
        if (dash == std::string::npos) continue;
        std::istringstream tail(line.substr(dash + 3));
        std::string fstype;
        tail >> fstype;
        if (fstype != "mqueue") continue;
        std::istringstream head(line.substr(0, dash));
        std::string id, parent, dev, root, point;
        head >> id >> parent >> dev >> root >> point;
        // Mount points escape blanks as octal (\040).
        std::string unescaped;
        for (std::size_t i = 0; i < point.size(); ++i) {
            if (point[i] == '\\' && i + 3 < point.size()) {
                unescaped += static_cast<char>(std::stoi(point.substr(i + 1, 3), nullptr, 8));
                i += 3;
            } else {
                unescaped += point[i];
            }
        }
        struct statfs fs {};
        if (::statfs(unescaped.c_str(), &fs) == 0 && static_cast<unsigned long>(fs.f_type) == mqueue_magic)
            return unescaped;
    }
    return std::nullopt;
}

void throw_not_mounted() {
    throw error(exit_code::unavailable,
                "the mqueue file system is not mounted, so POSIX queues cannot be listed; as root: "
                "mkdir -p /dev/mqueue && mount -t mqueue none /dev/mqueue",
                ENODEV);
}

posix_queue::posix_queue(std::string name, int fd) : name_(std::move(name)), fd_(fd) {}

posix_queue posix_queue::create(const std::string& name, long max_msgs, long msg_size, mode_t mode,
                                bool exclusive) {
    auto limits = read_posix_limits();
    mq_attr a{};
    bool custom = max_msgs > 0 || msg_size > 0;
    a.mq_maxmsg = max_msgs > 0 ? max_msgs : limits.msg_default;
    a.mq_msgsize = msg_size > 0 ? msg_size : limits.msgsize_default;
    int flags = O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC;
    mode &= 0777;  // queues have no set-id or sticky bits
    mqd_t q = ::mq_open(name.c_str(), flags, mode, custom ? &a : nullptr);
    bool created = q != static_cast<mqd_t>(-1);
    if (!created && errno == EEXIST && !exclusive) {
        q = ::mq_open(name.c_str(), O_RDWR | O_CLOEXEC);
        if (q == static_cast<mqd_t>(-1)) throw last_system_error("open", "queue", name);
        return posix_queue(name, q);
    }
    if (!created) {
        int err = errno;
        auto why = [&](const std::string& detail) {
            return error(exit_for_errno(err) == exit_code::os ? exit_code::os : exit_for_errno(err),
                         fmt::format("cannot create queue '{}': {}", name, detail), err);
        };
        if (err == EINVAL) {
            if (a.mq_maxmsg > limits.msg_max && limits.msg_max > 0)
                throw why(fmt::format("{} messages is over /proc/sys/fs/mqueue/msg_max ({}){}", a.mq_maxmsg,
                                      limits.msg_max,
                                      a.mq_maxmsg > hard_msg_max ? fmt::format(" and the kernel's limit ({})", hard_msg_max)
                                                                : std::string(" without CAP_SYS_RESOURCE")));
            if (a.mq_msgsize > limits.msgsize_max && limits.msgsize_max > 0)
                throw why(fmt::format("a message size of {} bytes is over /proc/sys/fs/mqueue/msgsize_max ({}){}",
                                      a.mq_msgsize, limits.msgsize_max,
                                      a.mq_msgsize > hard_msgsize_max
                                          ? fmt::format(" and the kernel's limit ({})", hard_msgsize_max)
                                          : std::string(" without CAP_SYS_RESOURCE")));
            throw why("invalid capacity or message size");
        }
        if (err == EMFILE && posix_queue_cost(a.mq_maxmsg, a.mq_msgsize) > limits.rlimit_msgqueue)
            throw why(fmt::format("it needs about {} bytes, over RLIMIT_MSGQUEUE ({} bytes; see ulimit -q)",
                                  posix_queue_cost(a.mq_maxmsg, a.mq_msgsize), limits.rlimit_msgqueue));
        if (err == EMFILE)
            throw why(fmt::format("the queues of this user would exceed RLIMIT_MSGQUEUE ({} bytes; see ulimit -q), "
                                  "or too many open files",
                                  limits.rlimit_msgqueue));
        if (err == ENOSPC)
            throw why(fmt::format("the system has /proc/sys/fs/mqueue/queues_max ({}) queues already",
                                  limits.queues_max));
        throw system_error(err, "create", "queue", name);
    }
    posix_queue out(name, q);
    out.created_ = true;
    // mq_open applies the umask; the contract's --mode is the mode itself.
    ::fchmod(out.fd(), mode);
    return out;
}

posix_queue posix_queue::open(const std::string& name, access a) {
    // Blocking descriptor: a send or receive that has to wait sleeps in the
    // kernel (one system call), bounded by mq_timed* when there is a deadline.
    int flags = (a == access::read ? O_RDONLY : a == access::write ? O_WRONLY : O_RDWR) | O_CLOEXEC;
    mqd_t q = ::mq_open(name.c_str(), flags);
    if (q == static_cast<mqd_t>(-1)) throw last_system_error("open", "queue", name);
    return posix_queue(name, q);
}

mq_attr posix_queue::attributes() const {
    mq_attr a{};
    if (::mq_getattr(fd_.get(), &a) < 0) throw last_system_error("inspect", "queue", name_);
    return a;
}

namespace {

// The deadline as mq_timed*'s absolute CLOCK_REALTIME time; a deadline that
// has passed gives a time in the past, which means "do not wait".
timespec realtime_of(const deadline& until) {
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    auto left = until.remaining().value_or(std::chrono::nanoseconds(0));
    std::int64_t ns = static_cast<std::int64_t>(now.tv_nsec) + left.count();
    return timespec{now.tv_sec + static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
}

} // namespace

bool posix_queue::send(std::string_view data, unsigned priority, const deadline& until) {
    for (;;) {
        int r;
        if (until.infinite()) {
            r = retry([&] { return ::mq_send(fd_.get(), data.data(), data.size(), priority); });
        } else {
            timespec abs = realtime_of(until);
            r = ::mq_timedsend(fd_.get(), data.data(), data.size(), priority, &abs);
            if (r < 0 && errno == EINTR) {
                check_interrupt();
                continue;
            }
        }
        if (r == 0) return true;
        if (errno == ETIMEDOUT || errno == EAGAIN) return false;
        if (errno == EMSGSIZE)
            throw error(exit_code::data,
                        fmt::format("message of {} bytes is over the message size of queue '{}' ({} bytes); nothing sent",
                                    data.size(), name_, attributes().mq_msgsize),
                        EMSGSIZE);
        if (errno == EINVAL && priority >= static_cast<unsigned>(::sysconf(_SC_MQ_PRIO_MAX)))
            throw data_error(fmt::format("priority {} is over the largest, {}", priority,
                                         ::sysconf(_SC_MQ_PRIO_MAX) - 1));
        throw last_system_error("send to", "queue", name_);
    }
}

std::optional<message> posix_queue::receive(const deadline& until) {
    if (buf_.empty()) buf_.resize(static_cast<std::size_t>(attributes().mq_msgsize));
    for (;;) {
        unsigned prio = 0;
        ssize_t n;
        if (until.infinite()) {
            n = retry([&] { return ::mq_receive(fd_.get(), buf_.data(), buf_.size(), &prio); });
        } else {
            timespec abs = realtime_of(until);
            n = ::mq_timedreceive(fd_.get(), buf_.data(), buf_.size(), &prio, &abs);
            if (n < 0 && errno == EINTR) {
                check_interrupt();
                continue;
            }
        }
        if (n >= 0) return message{std::string(buf_.data(), static_cast<std::size_t>(n)), prio, 0};
        if (errno == ETIMEDOUT || errno == EAGAIN) return std::nullopt;
        if (errno == EMSGSIZE) {  // the buffer was sized before someone recreated the queue
            buf_.resize(static_cast<std::size_t>(attributes().mq_msgsize));
            continue;
        }
        throw last_system_error("receive from", "queue", name_);
    }
}

uid_t posix_queue::owner() const {
    struct stat st {};
    if (::fstat(fd_.get(), &st) < 0) throw last_system_error("inspect", "queue", name_);
    return st.st_uid;
}

posix_info posix_stat(const std::string& name) {
    posix_info i;
    i.name = name;
    auto mount = mqueue_mount();
    mqd_t q = ::mq_open(name.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (q == static_cast<mqd_t>(-1)) {
        int err = errno;
        // Without read permission the mount still shows the owner and mode
        // (stat needs no permission on the file); the figures stay unknown.
        struct stat st {};
        if (err != EACCES || !mount || ::stat((*mount + "/" + body_of(name)).c_str(), &st) < 0)
            throw system_error(err, "inspect", "queue", name);
        i.max_msgs = i.msg_size = i.messages = -1;
        i.mode = st.st_mode & 07777;
        i.uid = st.st_uid;
        i.gid = st.st_gid;
        i.mtime_unix = st.st_mtim.tv_sec;
        return i;
    }
    unique_fd owner(q);
    mq_attr a{};
    ::mq_getattr(q, &a);
    i.max_msgs = a.mq_maxmsg;
    i.msg_size = a.mq_msgsize;
    i.messages = a.mq_curmsgs;
    struct stat st {};
    if (::fstat(q, &st) == 0) {
        i.mode = st.st_mode & 07777;
        i.uid = st.st_uid;
        i.gid = st.st_gid;
    }
    if (mount) {
        if (auto f = read_mqueue_file(*mount, name)) {
            i.queued_bytes = f->qsize;
            if (f->notify_pid) i.notify_pid = f->notify_pid;
            i.mtime_unix = f->st.st_mtim.tv_sec;
        }
    }
    return i;
}

std::vector<posix_info> posix_list() {
    auto mount = mqueue_mount();
    if (!mount) throw_not_mounted();
    std::vector<posix_info> out;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(*mount, ec)) {
        std::string name = "/" + entry.path().filename().string();
        try {
            out.push_back(posix_stat(name));
        } catch (const error& e) {
            if (e.errno_value() != ENOENT) throw;  // removed meanwhile
        }
    }
    if (ec) throw system_error(ec.value(), "list", "directory", *mount);
    std::sort(out.begin(), out.end(), [](const posix_info& a, const posix_info& b) { return a.name < b.name; });
    return out;
}

void posix_remove(const std::string& name) {
    if (::mq_unlink(name.c_str()) < 0) throw last_system_error("remove", "queue", name);
}

// ------------------------------------------------------------- System V --

sysv_limits read_sysv_limits() {
    return sysv_limits{read_long("/proc/sys/kernel/msgmax"), read_long("/proc/sys/kernel/msgmnb"),
                       read_long("/proc/sys/kernel/msgmni")};
}

std::string sysv_selector::str() const {
    if (id) return fmt::format("id {}", *id);
    if (key) return fmt::format("key {:#010x}", static_cast<std::uint32_t>(*key));
    return "queue";
}

int sysv_create(key_t key, mode_t mode, bool exclusive, std::uint64_t capacity, bool* created_out) {
    int id = ::msgget(key, IPC_CREAT | IPC_EXCL | static_cast<int>(mode & 0777));
    bool created = id >= 0;
    if (created_out) *created_out = created;
    if (!created && errno == EEXIST && !exclusive) id = ::msgget(key, 0);
    if (id < 0) {
        int err = errno;
        if (err == ENOSPC)
            throw error(exit_code::os,
                        fmt::format("cannot create System V queue with key {:#010x}: the system has "
                                    "/proc/sys/kernel/msgmni ({}) queues already",
                                    static_cast<std::uint32_t>(key), read_sysv_limits().msgmni),
                        err);
        throw system_error(err, fmt::format("create System V queue with key {:#010x}", static_cast<std::uint32_t>(key)));
    }
    if (capacity > 0 && created) {
        try {
            sysv_set_capacity(id, capacity);
        } catch (...) {
            ::msgctl(id, IPC_RMID, nullptr);  // nothing half-made is left behind
            throw;
        }
    }
    return id;
}

int sysv_resolve(const sysv_selector& which) {
    if (which.id) {
        msqid_ds ds{};
        if (::msgctl(*which.id, IPC_STAT, &ds) < 0) {
            int err = errno == EINVAL ? ENOENT : errno;  // EINVAL: no queue with that id
            throw system_error(err, fmt::format("open System V queue {}", which.str()));
        }
        return *which.id;
    }
    // msgget(IPC_PRIVATE) always makes a new queue: a private queue is found by id.
    if (*which.key == IPC_PRIVATE) throw usage_error("a private queue (key 0) has no key to find it by: use --id");
    int id = ::msgget(*which.key, 0);
    if (id < 0) throw system_error(errno, fmt::format("open System V queue {}", which.str()));
    return id;
}

bool sysv_send(int id, long type, std::string_view data, const deadline& until) {
    if (type <= 0) throw usage_error(fmt::format("message type {} is not above 0", type));
    std::string buf(sizeof(long) + data.size(), '\0');
    std::memcpy(buf.data(), &type, sizeof(long));
    std::memcpy(buf.data() + sizeof(long), data.data(), data.size());
    auto call = [&](int flags) { return ::msgsnd(id, buf.data(), data.size(), flags); };
    try {
        // The common case costs one system call; only a full queue is looked
        // at closer.
        if (call(IPC_NOWAIT) >= 0) return true;
        if (errno == EAGAIN) {
            // A message over the queue's byte capacity would never fit: refuse it now.
            if (msqid_ds ds{}; ::msgctl(id, IPC_STAT, &ds) == 0 && data.size() > ds.msg_qbytes)
                throw error(exit_code::data,
                            fmt::format("message of {} bytes is over the capacity of System V queue {} ({} bytes); "
                                        "nothing sent",
                                        data.size(), id, ds.msg_qbytes),
                            EMSGSIZE);
        } else if (errno != EINTR) {
            throw system_error(errno, fmt::format("send to System V queue {}", id));
        }
        return sysv_call(call, until, "send to", id);
    } catch (const error& e) {
        if (e.errno_value() == EINVAL && static_cast<long>(data.size()) > read_sysv_limits().msgmax)
            throw error(exit_code::data,
                        fmt::format("message of {} bytes is over /proc/sys/kernel/msgmax ({}); nothing sent",
                                    data.size(), read_sysv_limits().msgmax),
                        EINVAL);
        if (e.errno_value() == EINVAL || e.errno_value() == EIDRM)
            throw system_error(ENOENT, fmt::format("send to System V queue {}", id));
        throw;
    }
}

std::optional<message> sysv_receive(int id, long type, const deadline& until) {
    // msgmax read once: a busy receiver must not open /proc per message. A
    // larger message (msgmax raised since) says E2BIG, and the buffer grows.
    static const std::size_t msgmax = static_cast<std::size_t>(std::max(read_sysv_limits().msgmax, 8192L));
    thread_local std::string buf;
    std::size_t size = std::max(msgmax, buf.size() > sizeof(long) ? buf.size() - sizeof(long) : 0);
    for (;;) {
        if (buf.size() < sizeof(long) + size) buf.resize(sizeof(long) + size);
        ssize_t got = -1;
        auto call = [&](int flags) {
            got = ::msgrcv(id, buf.data(), size, type, flags);
            return got;
        };
        try {
            if (!sysv_call(call, until, "receive from", id)) return std::nullopt;
        } catch (const error& e) {
            if (e.errno_value() == E2BIG) {  // a message larger than msgmax says: grow and retry
                size *= 4;
                continue;
            }
            if (e.errno_value() == EINVAL || e.errno_value() == EIDRM)
                throw system_error(ENOENT, fmt::format("receive from System V queue {}", id));
            throw;
        }
        message m;
        std::memcpy(&m.type, buf.data(), sizeof(long));
        m.data.assign(buf.data() + sizeof(long), static_cast<std::size_t>(got));
        return m;
    }
}

namespace {

sysv_info info_of(int id, const msqid_ds& ds) {
    sysv_info i;
    i.id = id;
    i.key = ds.msg_perm.__key;
    i.mode = ds.msg_perm.mode & 0777;
    i.uid = ds.msg_perm.uid;
    i.gid = ds.msg_perm.gid;
    i.cuid = ds.msg_perm.cuid;
    i.cgid = ds.msg_perm.cgid;
    i.messages = ds.msg_qnum;
    i.queued_bytes = ds.__msg_cbytes;
    i.capacity_bytes = ds.msg_qbytes;
    i.last_send_pid = ds.msg_lspid;
    i.last_recv_pid = ds.msg_lrpid;
    i.send_time = ds.msg_stime;
    i.recv_time = ds.msg_rtime;
    i.change_time = ds.msg_ctime;
    return i;
}

} // namespace

sysv_info sysv_stat(int id) {
    msqid_ds ds{};
    if (::msgctl(id, IPC_STAT, &ds) < 0) {
        int err = errno == EINVAL || errno == EIDRM ? ENOENT : errno;
        throw system_error(err, fmt::format("inspect System V queue {}", id));
    }
    return info_of(id, ds);
}

std::vector<sysv_info> sysv_list() {
    msginfo mi{};
    int highest = ::msgctl(0, MSG_INFO, reinterpret_cast<msqid_ds*>(&mi));
    if (highest < 0) throw last_system_error("list", "System V queues", "");
    std::vector<sysv_info> out;
    for (int index = 0; index <= highest; ++index) {
        msqid_ds ds{};
        // MSG_STAT_ANY: listed whatever the permissions, as ipcs does.
        int id = ::msgctl(index, MSG_STAT_ANY, &ds);
        if (id < 0) continue;
        out.push_back(info_of(id, ds));
    }
    return out;
}

void sysv_remove(int id) {
    if (::msgctl(id, IPC_RMID, nullptr) < 0) {
        int err = errno == EINVAL || errno == EIDRM ? ENOENT : errno;
        throw system_error(err, fmt::format("remove System V queue {}", id));
    }
}

std::uint64_t sysv_set_capacity(int id, std::uint64_t bytes) {
    if (bytes == 0) throw usage_error("a capacity of 0 bytes would take no message");
    msqid_ds ds{};
    if (::msgctl(id, IPC_STAT, &ds) < 0) throw system_error(errno, fmt::format("inspect System V queue {}", id));
    ds.msg_qbytes = static_cast<msglen_t>(bytes);
    if (::msgctl(id, IPC_SET, &ds) < 0) {
        int err = errno;
        if (err == EPERM && bytes > static_cast<std::uint64_t>(read_sysv_limits().msgmnb))
            throw error(exit_code::no_perm,
                        fmt::format("cannot set the capacity of System V queue {} to {} bytes: over "
                                    "/proc/sys/kernel/msgmnb ({}) and not privileged",
                                    id, bytes, read_sysv_limits().msgmnb),
                        err);
        throw system_error(err, fmt::format("set the capacity of System V queue {}", id));
    }
    return sysv_stat(id).capacity_bytes;
}

} // namespace ipc::mq
