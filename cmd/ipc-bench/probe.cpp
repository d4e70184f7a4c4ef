// SPDX-License-Identifier: MIT
#include "probe.hpp"
#include "peers.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <thread>

#include <fcntl.h>
#include <mqueue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include "ipc/codec.hpp"
#include "ipc/error.hpp"
#include "ipc/framing.hpp"
#include "ipc/mbox.hpp"
#include "ipc/mq.hpp"
#include "ipc/output.hpp"
#include "ipc/ring.hpp"
#include "ipc/rpc.hpp"
#include "ipc/sync.hpp"

namespace bench {

using ipc::deadline;
using ipc::unique_fd;

namespace {

// "cannot ACTION: strerror(errno)".
[[noreturn]] void fail(const std::string& action) { throw ipc::system_error(errno, action); }

std::int64_t mono_ns() {
    timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Waits for fd to be readable until the deadline; false on timeout. Without
// a deadline it does not wait: the read(2) that follows blocks by itself.
bool readable(int fd, const deadline& until) { return until.infinite() || ipc::wait_fd(fd, POLLIN, until) != 0; }

std::uint64_t read_u64(const std::string& path, std::uint64_t fallback) {
    std::ifstream in(path);
    std::uint64_t v = 0;
    return (in >> v) ? v : fallback;
}

// ---- byte streams: pipe, FIFO, Unix stream socket, TCP ----

// The two ends of a byte stream; finish() ends the stream for the peer.
class stream_ends : public conn {
public:
    stream_ends(unique_fd in, unique_fd out, bool socket) : in_(std::move(in)), out_(std::move(out)), socket_(socket) {}
    void finish() override {
        if (socket_) ::shutdown(out_.get(), SHUT_WR);
        else out_.reset();
    }

protected:
    unique_fd in_, out_;
    bool socket_;
};

// Bare system calls: write(2) until all is written, read(2) until `size`
// bytes are in.
class raw_stream : public stream_ends {
public:
    using stream_ends::stream_ends;
    void send(std::string_view m) override {
        std::size_t done = 0;
        while (done < m.size()) {
            ssize_t w = ::write(out_.get(), m.data() + done, m.size() - done);
            if (w < 0) {
                if (errno == EINTR) continue;
                fail("write");
            }
            done += static_cast<std::size_t>(w);
        }
    }
    got recv(std::string& buf, std::size_t size, const deadline& until) override {
        buf.resize(size);
        std::size_t done = 0;
        while (done < size) {
            if (!readable(in_.get(), until)) return got::timeout;
            ssize_t r = ::read(in_.get(), buf.data() + done, size - done);
            if (r < 0) {
                if (errno == EINTR) continue;
                fail("read");
            }
            if (r == 0) {
                if (done == 0) return got::end;
                throw ipc::error(ipc::exit_code::data, "stream ended inside a message", EPROTO);
            }
            done += static_cast<std::size_t>(r);
        }
        return got::message;
    }
};

// The toolkit's path: length-prefixed frames (ipc::framing), as ipc-pipe
// send --framed and recv --framed use them.
class framed_stream : public stream_ends {
public:
    framed_stream(unique_fd in, unique_fd out, bool socket, std::size_t size)
        : stream_ends(std::move(in), std::move(out), socket), reader_(in_.get(), ipc::framing::mode::framed, size) {}
    void send(std::string_view m) override {
        wire_.clear();
        ipc::framing::encode(ipc::framing::mode::framed, m, wire_);
        ipc::write_all(out_.get(), wire_, deadline::never(), "stream");
    }
    got recv(std::string& buf, std::size_t, const deadline& until) override {
        // Every message is for this reader, as with ipc-pipe recv --follow: the
        // reader may take several from the stream at once.
        auto r = reader_.next(until, ipc::framing::all);
        if (r.st == ipc::framing::status::eof) return got::end;
        if (r.st == ipc::framing::status::timeout) return got::timeout;
        buf = std::move(r.data);
        return got::message;
    }

private:
    ipc::framing::reader reader_;
    std::string wire_;
};

std::unique_ptr<conn> stream_conn(unique_fd in, unique_fd out, bool socket, std::size_t size, impl which) {
    if (which == impl::raw) return std::make_unique<raw_stream>(std::move(in), std::move(out), socket);
    return std::make_unique<framed_stream>(std::move(in), std::move(out), socket, size);
}

class pipe_link : public link {
public:
    pipe_link(std::size_t size, impl which) : size_(size), which_(which) {
        int a[2], b[2];
        if (::pipe2(a, O_CLOEXEC) < 0 || ::pipe2(b, O_CLOEXEC) < 0) fail("pipe");
        down_r_.reset(a[0]), down_w_.reset(a[1]), up_r_.reset(b[0]), up_w_.reset(b[1]);
    }
    std::unique_ptr<conn> side(bool child) override {
        if (child) {
            down_w_.reset(), up_r_.reset();
            return stream_conn(std::move(down_r_), std::move(up_w_), false, size_, which_);
        }
        down_r_.reset(), up_w_.reset();
        return stream_conn(std::move(up_r_), std::move(down_w_), false, size_, which_);
    }

private:
    std::size_t size_;
    impl which_;
    unique_fd down_r_, down_w_, up_r_, up_w_;
};

class fifo_link : public link {
public:
    fifo_link(std::size_t size, impl which) : size_(size), which_(which) {
        char tmpl[] = "/tmp/ipc-bench-XXXXXX";
        if (!::mkdtemp(tmpl)) fail("mkdtemp");
        dir_ = tmpl;
        if (::mkfifo((dir_ + "/down").c_str(), 0600) < 0 || ::mkfifo((dir_ + "/up").c_str(), 0600) < 0) {
            cleanup();
            fail("mkfifo");
        }
        owner_ = ::getpid();
    }
    ~fifo_link() override {
        if (::getpid() == owner_) cleanup();
    }
    std::unique_ptr<conn> side(bool child) override {
        // Both open "down" first, then "up": the blocking opens pair up.
        auto open = [&](const char* n, int flags) {
            unique_fd fd(::open((dir_ + "/" + n).c_str(), flags | O_CLOEXEC | O_NOFOLLOW));
            if (!fd) fail("open FIFO");
            return fd;
        };
        if (child) {
            auto in = open("down", O_RDONLY);
            auto out = open("up", O_WRONLY);
            return stream_conn(std::move(in), std::move(out), false, size_, which_);
        }
        auto out = open("down", O_WRONLY);
        auto in = open("up", O_RDONLY);
        return stream_conn(std::move(in), std::move(out), false, size_, which_);
    }

private:
    void cleanup() {
        ::unlink((dir_ + "/down").c_str());
        ::unlink((dir_ + "/up").c_str());
        ::rmdir(dir_.c_str());
    }
    std::size_t size_;
    impl which_;
    std::string dir_;
    pid_t owner_ = 0;
};

// A connected pair of sockets: socketpair(2), or TCP/UDP over loopback.
std::pair<unique_fd, unique_fd> socket_pair(int family, int type) {
    if (family == AF_UNIX) {
        int sv[2];
        if (::socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv) < 0) fail("socketpair");
        return {unique_fd(sv[0]), unique_fd(sv[1])};
    }
    sockaddr_in any{};
    any.sin_family = AF_INET;
    any.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof any;
    if (type == SOCK_STREAM) {
        unique_fd l(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!l || ::bind(l.get(), reinterpret_cast<sockaddr*>(&any), sizeof any) < 0 || ::listen(l.get(), 1) < 0)
            fail("listen on loopback");
        sockaddr_in at{};
        ::getsockname(l.get(), reinterpret_cast<sockaddr*>(&at), &len);
        unique_fd c(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!c || ::connect(c.get(), reinterpret_cast<sockaddr*>(&at), sizeof at) < 0) fail("connect on loopback");
        unique_fd a(::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!a) fail("accept");
        int one = 1;
        ::setsockopt(c.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        ::setsockopt(a.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        return {std::move(c), std::move(a)};
    }
    unique_fd x(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)), y(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!x || !y || ::bind(x.get(), reinterpret_cast<sockaddr*>(&any), sizeof any) < 0 ||
        ::bind(y.get(), reinterpret_cast<sockaddr*>(&any), sizeof any) < 0)
        fail("bind on loopback");
    sockaddr_in ax{}, ay{};
    len = sizeof ax;
    ::getsockname(x.get(), reinterpret_cast<sockaddr*>(&ax), &len);
    len = sizeof ay;
    ::getsockname(y.get(), reinterpret_cast<sockaddr*>(&ay), &len);
    if (::connect(x.get(), reinterpret_cast<sockaddr*>(&ay), sizeof ay) < 0 ||
        ::connect(y.get(), reinterpret_cast<sockaddr*>(&ax), sizeof ax) < 0)
        fail("connect on loopback");
    return {std::move(x), std::move(y)};
}

class stream_socket_link : public link {
public:
    stream_socket_link(int family, std::size_t size, impl which) : size_(size), which_(which) {
        auto [a, b] = socket_pair(family, SOCK_STREAM);
        parent_ = std::move(a), child_ = std::move(b);
    }
    std::unique_ptr<conn> side(bool child) override {
        unique_fd& mine = child ? child_ : parent_;
        (child ? parent_ : child_).reset();
        unique_fd dup(::fcntl(mine.get(), F_DUPFD_CLOEXEC, 0));
        return stream_conn(std::move(mine), std::move(dup), true, size_, which_);
    }

private:
    std::size_t size_;
    impl which_;
    unique_fd parent_, child_;
};

// ---- datagrams: Unix datagram and seqpacket sockets, UDP ----

// One send(2) per message, one recv(2); an empty datagram ends the stream.
class datagram_conn : public conn {
public:
    datagram_conn(unique_fd fd, bool lossy) : fd_(std::move(fd)), lossy_(lossy) {}
    void send(std::string_view m) override {
        while (::send(fd_.get(), m.data(), m.size(), 0) < 0) {
            if (errno == EINTR) continue;
            // UDP over loopback reports a full receive buffer now and then:
            // the datagram is lost, and --verify counts it.
            if (lossy_ && (errno == ENOBUFS || errno == ECONNREFUSED)) return;
            fail("send");
        }
    }
    got recv(std::string& buf, std::size_t size, const deadline& until) override {
        buf.resize(size);
        for (;;) {
            if (!readable(fd_.get(), until)) return got::timeout;
            ssize_t r = ::recv(fd_.get(), buf.data(), size, 0);
            if (r < 0) {
                if (errno == EINTR || (lossy_ && errno == ECONNREFUSED)) continue;
                fail("recv");
            }
            if (r == 0) return got::end;
            buf.resize(static_cast<std::size_t>(r));
            return got::message;
        }
    }
    void finish() override {
        for (int i = 0; i < (lossy_ ? 3 : 1); ++i) {
            if (::send(fd_.get(), "", 0, 0) < 0 && !lossy_) fail("send");
        }
    }

private:
    unique_fd fd_;
    bool lossy_;
};

class datagram_link : public link {
public:
    datagram_link(int family, int type) : lossy_(family == AF_INET) {
        auto [a, b] = socket_pair(family, type);
        parent_ = std::move(a), child_ = std::move(b);
        // Room for a few large messages either way.
        int buf = 4 << 20;
        for (int fd : {parent_.get(), child_.get()}) {
            ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
            ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
        }
    }
    std::unique_ptr<conn> side(bool child) override {
        (child ? parent_ : child_).reset();
        return std::make_unique<datagram_conn>(std::move(child ? child_ : parent_), lossy_);
    }

private:
    bool lossy_;
    unique_fd parent_, child_;
};

// ---- message queues ----

std::string unique_queue_name(const char* tag) {
    static int n = 0;
    return fmt::format("/ipc-bench-{}-{}-{}", ::getpid(), n++, tag);
}

// Data at priority 1, the end marker (empty) at 0: it arrives last.
class raw_posix_conn : public conn {
public:
    raw_posix_conn(mqd_t in, mqd_t out) : in_(in), out_(out) {}
    ~raw_posix_conn() override {
        ::mq_close(in_);
        ::mq_close(out_);
    }
    void send(std::string_view m) override {
        while (::mq_send(out_, m.data(), m.size(), 1) < 0)
            if (errno != EINTR) fail("mq_send");
    }
    got recv(std::string& buf, std::size_t size, const deadline& until) override {
        buf.resize(std::max<std::size_t>(size, 1));
        for (;;) {
            ssize_t r;
            if (until.infinite()) r = ::mq_receive(in_, buf.data(), buf.size(), nullptr);
            else {
                auto left = until.remaining().value_or(std::chrono::nanoseconds(0));
                timespec ts;
                ::clock_gettime(CLOCK_REALTIME, &ts);
                std::int64_t ns = ts.tv_nsec + left.count();
                ts.tv_sec += static_cast<time_t>(ns / 1'000'000'000);
                ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
                r = ::mq_timedreceive(in_, buf.data(), buf.size(), nullptr, &ts);
            }
            if (r < 0) {
                if (errno == EINTR) continue;
                if (errno == ETIMEDOUT) return got::timeout;
                fail("mq_receive");
            }
            if (r == 0) return got::end;
            buf.resize(static_cast<std::size_t>(r));
            return got::message;
        }
    }
    void finish() override {
        while (::mq_send(out_, "", 0, 0) < 0)
            if (errno != EINTR) fail("mq_send");
    }

private:
    mqd_t in_, out_;
};

class toolkit_posix_conn : public conn {
public:
    toolkit_posix_conn(ipc::mq::posix_queue in, ipc::mq::posix_queue out) : in_(std::move(in)), out_(std::move(out)) {}
    void send(std::string_view m) override { out_.send(m, 1, deadline::never()); }
    got recv(std::string& buf, std::size_t, const deadline& until) override {
        auto m = in_.receive(until);
        if (!m) return got::timeout;
        if (m->data.empty()) return got::end;
        buf = std::move(m->data);
        return got::message;
    }
    void finish() override { out_.send("", 0, deadline::never()); }

private:
    ipc::mq::posix_queue in_, out_;
};

class posix_mq_link : public link {
public:
    posix_mq_link(std::size_t size, impl which) : which_(which) {
        // Opened before the fork, unlinked at once: nothing is left behind,
        // also when a run is killed.
        long msg = static_cast<long>(std::max<std::size_t>(size, 1));
        down_name_ = unique_queue_name("down");
        up_name_ = unique_queue_name("up");
        if (which == impl::toolkit) {
            down_ = ipc::mq::posix_queue::create(down_name_, 10, msg, 0600, true);
            ipc::mq::posix_remove(down_name_);
            up_ = ipc::mq::posix_queue::create(up_name_, 10, msg, 0600, true);
            ipc::mq::posix_remove(up_name_);
            return;
        }
        mq_attr a{};
        a.mq_maxmsg = 10;
        a.mq_msgsize = msg;
        raw_down_ = ::mq_open(down_name_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600, &a);
        if (raw_down_ == static_cast<mqd_t>(-1)) fail("mq_open");
        ::mq_unlink(down_name_.c_str());
        raw_up_ = ::mq_open(up_name_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600, &a);
        if (raw_up_ == static_cast<mqd_t>(-1)) {
            ::mq_close(raw_down_);
            fail("mq_open");
        }
        ::mq_unlink(up_name_.c_str());
    }
    ~posix_mq_link() override {
        if (raw_down_ != static_cast<mqd_t>(-1)) ::mq_close(raw_down_);
        if (raw_up_ != static_cast<mqd_t>(-1)) ::mq_close(raw_up_);
    }
    std::unique_ptr<conn> side(bool child) override {
        if (which_ == impl::toolkit) {
            if (child) return std::make_unique<toolkit_posix_conn>(std::move(*down_), std::move(*up_));
            return std::make_unique<toolkit_posix_conn>(std::move(*up_), std::move(*down_));
        }
        mqd_t d = raw_down_, u = raw_up_;
        raw_down_ = raw_up_ = static_cast<mqd_t>(-1);
        return child ? std::make_unique<raw_posix_conn>(d, u) : std::make_unique<raw_posix_conn>(u, d);
    }

private:
    impl which_;
    std::string down_name_, up_name_;
    std::optional<ipc::mq::posix_queue> down_, up_;
    mqd_t raw_down_ = static_cast<mqd_t>(-1), raw_up_ = static_cast<mqd_t>(-1);
};

// One private System V queue: type 1 goes to the child, type 2 back; an
// empty message ends the stream.
class sysv_conn : public conn {
public:
    sysv_conn(int id, long in_type, long out_type, impl which)
        : id_(id), in_(in_type), out_(out_type), which_(which) {}
    void send(std::string_view m) override {
        if (which_ == impl::toolkit) {
            ipc::mq::sysv_send(id_, out_, m, deadline::never());
            return;
        }
        buf_.resize(sizeof(long) + m.size());
        std::memcpy(buf_.data(), &out_, sizeof(long));
        std::memcpy(buf_.data() + sizeof(long), m.data(), m.size());
        while (::msgsnd(id_, buf_.data(), m.size(), 0) < 0)
            if (errno != EINTR) fail("msgsnd");
    }
    got recv(std::string& buf, std::size_t size, const deadline& until) override {
        if (which_ == impl::toolkit) {
            auto m = ipc::mq::sysv_receive(id_, in_, until);
            if (!m) return got::timeout;
            if (m->data.empty()) return got::end;
            buf = std::move(m->data);
            return got::message;
        }
        buf_.resize(sizeof(long) + std::max<std::size_t>(size, 1));
        ssize_t r;
        while ((r = ::msgrcv(id_, buf_.data(), buf_.size() - sizeof(long), in_, 0)) < 0)
            if (errno != EINTR) fail("msgrcv");
        if (r == 0) return got::end;
        buf.assign(buf_.data() + sizeof(long), static_cast<std::size_t>(r));
        return got::message;
    }
    void finish() override { send(""); }

private:
    int id_;
    long in_, out_;
    impl which_;
    std::string buf_;
};

class sysv_mq_link : public link {
public:
    explicit sysv_mq_link(impl which) : which_(which), owner_(::getpid()) {
        id_ = ::msgget(IPC_PRIVATE, IPC_CREAT | 0600);
        if (id_ < 0) fail("msgget");
    }
    ~sysv_mq_link() override {
        if (::getpid() == owner_) ::msgctl(id_, IPC_RMID, nullptr);
    }
    std::unique_ptr<conn> side(bool child) override {
        return child ? std::make_unique<sysv_conn>(id_, 1, 2, which_) : std::make_unique<sysv_conn>(id_, 2, 1, which_);
    }

private:
    impl which_;
    pid_t owner_;
    int id_ = -1;
};

// ---- signals without data: eventfd, futex ----

// Each message adds 1 to the counter; a read takes all that accumulated
// (several sends may arrive as one read: last_count says how many). The end
// adds a large marker.
constexpr std::uint64_t eventfd_end = std::uint64_t{1} << 40;

class eventfd_conn : public conn {
public:
    eventfd_conn(unique_fd in, unique_fd out) : in_(std::move(in)), out_(std::move(out)) {}
    void send(std::string_view) override { add(1); }
    got recv(std::string& buf, std::size_t, const deadline& until) override {
        if (pending_end_) return got::end;
        if (!readable(in_.get(), until)) return got::timeout;
        std::uint64_t v = 0;
        while (::read(in_.get(), &v, sizeof v) < 0)
            if (errno != EINTR) fail("read eventfd");
        if (v >= eventfd_end) {
            v -= eventfd_end;
            pending_end_ = true;
            if (v == 0) return got::end;
        }
        buf.assign(reinterpret_cast<const char*>(&v), sizeof v);
        count_ = v;
        return got::message;
    }
    void finish() override { add(eventfd_end); }
    std::uint64_t count() const { return count_; }

private:
    void add(std::uint64_t n) {
        while (::write(out_.get(), &n, sizeof n) < 0)
            if (errno != EINTR) fail("write eventfd");
    }
    unique_fd in_, out_;
    bool pending_end_ = false;
    std::uint64_t count_ = 1;
};

class eventfd_link : public link {
public:
    eventfd_link() : down_(::eventfd(0, EFD_CLOEXEC)), up_(::eventfd(0, EFD_CLOEXEC)) {
        if (!down_ || !up_) fail("eventfd");
    }
    std::unique_ptr<conn> side(bool child) override {
        unique_fd d(::fcntl(down_.get(), F_DUPFD_CLOEXEC, 0)), u(::fcntl(up_.get(), F_DUPFD_CLOEXEC, 0));
        return child ? std::make_unique<eventfd_conn>(std::move(d), std::move(u))
                     : std::make_unique<eventfd_conn>(std::move(u), std::move(d));
    }

private:
    unique_fd down_, up_;
};

void* shared_memory(std::size_t bytes) {
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) fail("mmap");
    return p;
}

struct futex_words {
    alignas(64) std::atomic<std::uint32_t> down{0};
    alignas(64) std::atomic<std::uint32_t> up{0};
};

// A counter per direction: send increments it and wakes, recv sleeps on it
// with FUTEX_WAIT until it moves.
class futex_conn : public conn {
public:
    futex_conn(std::atomic<std::uint32_t>& in, std::atomic<std::uint32_t>& out) : in_(in), out_(out) {}
    void send(std::string_view) override {
        out_.fetch_add(1, std::memory_order_seq_cst);
        ipc::sync::futex_wake(out_, 1);
    }
    got recv(std::string& buf, std::size_t, const deadline& until) override {
        while (in_.load(std::memory_order_acquire) == seen_)
            if (!ipc::sync::futex_wait(in_, seen_, until) && until.expired()) return got::timeout;
        if (in_.load(std::memory_order_acquire) == end) return got::end;
        ++seen_;
        buf.assign(8, 'f');
        return got::message;
    }
    void finish() override {
        out_.store(end, std::memory_order_seq_cst);
        ipc::sync::futex_wake(out_, 1);
    }

private:
    static constexpr std::uint32_t end = UINT32_MAX;

public:

private:
    std::atomic<std::uint32_t>& in_;
    std::atomic<std::uint32_t>& out_;
    std::uint32_t seen_ = 0;
};

class futex_link : public link {
public:
    futex_link() : w_(new (shared_memory(sizeof(futex_words))) futex_words) {}
    ~futex_link() override { ::munmap(w_, sizeof(futex_words)); }
    std::unique_ptr<conn> side(bool child) override {
        return child ? std::make_unique<futex_conn>(w_->down, w_->up) : std::make_unique<futex_conn>(w_->up, w_->down);
    }

private:
    futex_words* w_;
};

// ---- shared memory ----

// The toolkit's channel (lib/ring), one per direction; an empty message ends.
class channel_conn : public conn {
public:
    channel_conn(std::span<std::byte> in, std::span<std::byte> out, ipc::sync::wait_mode mode)
        : in_(in), out_(out), mode_(mode) {}
    void send(std::string_view m) override { out_.send(m, deadline::never(), mode_); }
    got recv(std::string& buf, std::size_t, const deadline& until) override {
        if (!in_.receive_into(buf, until, mode_)) return got::timeout;
        return buf.empty() ? got::end : got::message;
    }
    void finish() override { out_.send("", deadline::never(), mode_); }

private:
    ipc::ring::channel in_, out_;
    ipc::sync::wait_mode mode_;
};

// The baseline: a bare single-producer single-consumer byte ring per
// direction, spinning (with a yield now and then, for one CPU): a 4-byte
// length and the payload, 8-byte aligned; length 0 ends, ~0 pads to the end.
struct spsc_control {
    alignas(64) std::atomic<std::uint64_t> head{0};
    alignas(64) std::atomic<std::uint64_t> tail{0};
};

class spsc_conn : public conn {
public:
    spsc_conn(spsc_control* in_c, char* in_d, spsc_control* out_c, char* out_d, std::uint64_t cap)
        : in_c_(in_c), in_d_(in_d), out_c_(out_c), out_d_(out_d), cap_(cap) {}
    void send(std::string_view m) override { put(m.data(), static_cast<std::uint32_t>(m.size())); }
    got recv(std::string& buf, std::size_t, const deadline& until) override {
        std::uint64_t h = in_c_->head.load(std::memory_order_relaxed);
        for (std::uint32_t i = 1; in_c_->tail.load(std::memory_order_acquire) == h; ++i) {
            pause(i);
            if (i % 1024 == 0 && until.expired()) return got::timeout;
        }
        std::uint32_t len;
        std::memcpy(&len, in_d_ + h % cap_, 4);
        if (len == UINT32_MAX) {  // padding: the record is at the start
            h += cap_ - h % cap_;
            std::memcpy(&len, in_d_, 4);
        }
        buf.assign(in_d_ + h % cap_ + 4, len);
        in_c_->head.store(h + rec(len), std::memory_order_release);
        return len ? got::message : got::end;
    }
    void finish() override { put("", 0); }

private:
    static std::uint64_t rec(std::uint32_t n) { return (4 + std::uint64_t{n} + 7) & ~std::uint64_t{7}; }
    static void pause(std::uint32_t i) {
        if (i % 4096 == 0) ::sched_yield();
        else ipc::sync::cpu_relax();
    }
    void put(const char* p, std::uint32_t n) {
        std::uint64_t t = out_c_->tail.load(std::memory_order_relaxed);
        std::uint64_t to_end = cap_ - t % cap_;
        std::uint64_t need = rec(n) + (to_end < rec(n) ? to_end : 0);
        for (std::uint32_t i = 1; cap_ - (t - out_c_->head.load(std::memory_order_acquire)) < need; ++i) pause(i);
        if (to_end < rec(n)) {
            std::uint32_t pad = UINT32_MAX;
            std::memcpy(out_d_ + t % cap_, &pad, 4);
            t += to_end;
        }
        std::memcpy(out_d_ + t % cap_, &n, 4);
        std::memcpy(out_d_ + t % cap_ + 4, p, n);
        out_c_->tail.store(t + rec(n), std::memory_order_release);
    }
    spsc_control *in_c_;
    char* in_d_;
    spsc_control* out_c_;
    char* out_d_;
    std::uint64_t cap_;
};

class shm_link : public link {
public:
    shm_link(std::size_t size, impl which, ipc::sync::wait_mode mode) : which_(which), mode_(mode) {
        cap_ = std::max<std::uint64_t>(1 << 20, 8 * ipc::ring::record_size(size));
        if (which == impl::toolkit) {
            one_ = ipc::ring::region_size(cap_);
            bytes_ = 2 * one_;
            base_ = static_cast<std::byte*>(shared_memory(bytes_));
            std::uint64_t max = std::max<std::uint64_t>(size, 64);
            ipc::ring::channel::format({base_, one_}, cap_, max);
            ipc::ring::channel::format({base_ + one_, one_}, cap_, max);
        } else {
            one_ = 4096 + cap_;
            bytes_ = 2 * one_;
            base_ = static_cast<std::byte*>(shared_memory(bytes_));
            new (base_) spsc_control;
            new (base_ + one_) spsc_control;
        }
    }
    ~shm_link() override { ::munmap(base_, bytes_); }
    std::unique_ptr<conn> side(bool child) override {
        std::byte* down = base_;
        std::byte* up = base_ + one_;
        std::byte* in = child ? down : up;
        std::byte* out = child ? up : down;
        if (which_ == impl::toolkit) return std::make_unique<channel_conn>(std::span(in, one_), std::span(out, one_), mode_);
        return std::make_unique<spsc_conn>(reinterpret_cast<spsc_control*>(in), reinterpret_cast<char*>(in + 4096),
                                           reinterpret_cast<spsc_control*>(out), reinterpret_cast<char*>(out + 4096), cap_);
    }

private:
    impl which_;
    ipc::sync::wait_mode mode_;
    std::uint64_t cap_ = 0;
    std::size_t one_ = 0, bytes_ = 0;
    std::byte* base_ = nullptr;
};

// ---- mailboxes ----

// A mailbox per direction, one group each; the end marker is a message with
// topic "end". The parent made both and removes them.
class mbox_conn : public conn {
public:
    mbox_conn(std::unique_ptr<ipc::mbox::mailbox> in, std::unique_ptr<ipc::mbox::mailbox> out)
        : in_(std::move(in)), out_(std::move(out)) {
        ro_.group.name = "bench";
    }
    void send(std::string_view m) override {
        o_.data.assign(m);
        o_.topic.clear();
        put();
    }
    got recv(std::string& buf, std::size_t, const deadline& until) override {
        ro_.until = until;
        got g = got::timeout;
        in_->recv(ro_, [&](ipc::mbox::message& m) {
            if (m.topic == "end") {
                g = got::end;
            } else {
                buf.swap(m.data);
                g = got::message;
            }
        });
        return g;
    }
    void finish() override {
        o_.data.clear();
        o_.topic = "end";
        put();
    }

private:
    void put() {
        if (out_->send(std::span(&o_, 1), so_).timed_out) throw ipc::temp_failure("mailbox send timed out");
    }
    std::unique_ptr<ipc::mbox::mailbox> in_, out_;
    ipc::mbox::outgoing o_;
    ipc::mbox::send_options so_;
    ipc::mbox::recv_options ro_;
};

class mbox_link : public link {
public:
    mbox_link(std::size_t size, std::string backend) : creator_(::getpid()) {
        static int n = 0;
        for (auto* l : {&down_, &up_}) {
            l->name = fmt::format("/ipc-bench-mbox-{}-{}-{}", ::getpid(), n++, l == &down_ ? "down" : "up");
            l->backend = backend;
            ipc::mbox::create_options c;
            c.lim.max_msgs = 4096;
            c.lim.max_msg_size = std::max<std::uint64_t>(size, 64);
            c.lim.max_bytes = std::max<std::uint64_t>(4u << 20, 8 * (c.lim.max_msg_size + 1024));
            c.exclusive = true;
            ipc::mbox::create(*l, c);
        }
    }
    ~mbox_link() override {
        if (::getpid() != creator_) return;
        for (auto* l : {&down_, &up_}) try {
                ipc::mbox::remove(*l);
            } catch (const std::exception&) {
            }
    }
    std::unique_ptr<conn> side(bool child) override {
        auto d = ipc::mbox::open(down_), u = ipc::mbox::open(up_);
        return child ? std::make_unique<mbox_conn>(std::move(d), std::move(u))
                     : std::make_unique<mbox_conn>(std::move(u), std::move(d));
    }

private:
    pid_t creator_;
    ipc::mbox::location down_, up_;
};

// ---- ipc-rpc ----

// A message travels as a JSON string whose code points are its bytes
// (Latin-1 as UTF-8): any bytes, --verify's binary header included, survive
// JSON text and CBOR alike, and the echo gives back exactly what was sent.
std::string bytes_as_text(std::string_view b) {
    std::string t;
    t.reserve(b.size() + 32);
    for (unsigned char c : b) {
        if (c < 0x80) t += static_cast<char>(c);
        else {
            t += static_cast<char>(0xC0 | (c >> 6));
            t += static_cast<char>(0x80 | (c & 0x3F));
        }
    }
    return t;
}

// The bytes back; a code point over 0xFF (nothing the echo should give) is
// kept as '?', which --verify then finds corrupted.
void text_as_bytes(std::string_view t, std::string& out) {
    out.clear();
    out.reserve(t.size());
    for (std::size_t i = 0; i < t.size(); ++i) {
        auto c = static_cast<unsigned char>(t[i]);
        if (c < 0x80) out += static_cast<char>(c);
        else if ((c & 0xFE) == 0xC2 && i + 1 < t.size()) out += static_cast<char>(((c & 0x03) << 6) | (t[++i] & 0x3F));
        else out += '?';
    }
}

using rpc_json = ipc::rpc::json;

// The server's side: ipc::rpc::server in a thread of the child, with one
// worker, so that notifications run in the order they were sent, as the
// other mechanisms deliver them. "echo" (a C++ handler, as a method of
// ipc::rpc::server_options) answers a round trip without the child's loop;
// the notifications "put" (a streamed message) and "end" come to recv().
class rpc_server_side : public conn {
public:
    rpc_server_side(ipc::rpc::listener l, std::size_t max_request) {
        ipc::rpc::server_options o;
        o.workers = 1;
        o.max_request = max_request;
        o.max_queued = std::size_t(1) << 20;  // a notification refused for want of room would be lost
        ipc::rpc::method echo;
        echo.name = "echo";
        echo.fn = [](ipc::rpc::call& c) { return c.req().params; };
        ipc::rpc::method put;
        put.name = "put";
        put.fn = [this](ipc::rpc::call& c) -> rpc_json {
            const auto& p = c.req().params;
            push(p.is_array() && !p.empty() && p[0].is_string() ? p[0].get<std::string>() : std::string(), false);
            return nullptr;
        };
        ipc::rpc::method end;
        end.name = "end";
        end.fn = [this](ipc::rpc::call&) -> rpc_json {
            push({}, true);
            return nullptr;
        };
        o.methods = {echo, put, end};
        // The measuring process gone without a word: stop too.
        o.on_disconnect = [this](std::uint64_t) { push({}, true); };
        server_ = std::make_unique<ipc::rpc::server>(std::move(l), std::move(o));
        thread_ = std::thread([this] {
            try {
                server_->run();
            } catch (const std::exception&) {
                push({}, true);
            }
        });
    }
    ~rpc_server_side() override {
        server_->stop();
        thread_.join();
    }
    void send(std::string_view) override {}  // the echo handler answers
    got recv(std::string& buf, std::size_t, const deadline& until) override {
        std::unique_lock lock(mu_);
        auto ready = [&] { return !queue_.empty(); };
        if (until.infinite()) cv_.wait(lock, ready);
        else if (!cv_.wait_for(lock, until.remaining().value_or(std::chrono::nanoseconds(0)), ready)) return got::timeout;
        auto [text, end] = std::move(queue_.front());
        queue_.pop_front();
        if (end) return got::end;
        lock.unlock();
        text_as_bytes(text, buf);
        return got::message;
    }
    void finish() override {}

private:
    void push(std::string text, bool end) {
        {
            std::lock_guard lock(mu_);
            queue_.emplace_back(std::move(text), end);
        }
        cv_.notify_one();
    }
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::pair<std::string, bool>> queue_;
    std::unique_ptr<ipc::rpc::server> server_;
    std::thread thread_;
};

// The measuring side: ipc::rpc::client. A round trip is one call of "echo";
// a stream is notifications ("put"), as RPC streams one way.
class rpc_client_side : public conn {
public:
    rpc_client_side(const ipc::parse::endpoint& ep, ipc::rpc::encoding enc, std::size_t max_reply)
        : client_(ep, [&] {
              ipc::rpc::client_options o;
              o.enc = enc;
              o.max_reply = max_reply;
              return o;
          }()) {}
    void one_way() override { one_way_ = true; }
    void send(std::string_view m) override {
        rpc_json params = rpc_json::array({bytes_as_text(m)});
        if (one_way_) {
            client_.notify("put", params);
            return;
        }
        rpc_json r = client_.call("echo", params);
        reply_ = r.is_array() && !r.empty() && r[0].is_string() ? r[0].get<std::string>() : std::string();
        answered_ = true;
    }
    got recv(std::string& buf, std::size_t, const deadline&) override {
        if (!answered_) return got::timeout;
        answered_ = false;
        text_as_bytes(reply_, buf);
        return got::message;
    }
    void finish() override { client_.notify("end"); }

private:
    ipc::rpc::client client_;
    bool one_way_ = false, answered_ = false;
    std::string reply_;
};

// A Unix socket in a private temporary directory, listening before the fork;
// the child serves it.
class rpc_link : public link {
public:
    rpc_link(std::size_t size, ipc::rpc::encoding enc) : enc_(enc), creator_(::getpid()) {
        char tmpl[] = "/tmp/ipc-bench-XXXXXX";
        if (!::mkdtemp(tmpl)) fail("mkdtemp");
        dir_ = tmpl;
        // Room for the message as JSON text: a byte over 0x7F takes two, a
        // control byte six (an escape).
        max_ = std::max<std::size_t>(1u << 20, 6 * size + 65536);
        ep_ = ipc::parse::socket_endpoint("unix:" + dir_ + "/rpc.sock");
        try {
            listener_.emplace(ep_, 0600);
        } catch (...) {
            ::rmdir(dir_.c_str());
            throw;
        }
    }
    ~rpc_link() override {
        if (::getpid() != creator_) return;
        listener_.reset();  // removes the socket file
        ::rmdir(dir_.c_str());
    }
    std::unique_ptr<conn> side(bool child) override {
        if (child) return std::make_unique<rpc_server_side>(std::move(*listener_), max_);
        return std::make_unique<rpc_client_side>(ep_, enc_, max_);
    }

private:
    ipc::rpc::encoding enc_;
    pid_t creator_;
    std::string dir_;
    std::size_t max_ = 0;
    ipc::parse::endpoint ep_;
    std::optional<ipc::rpc::listener> listener_;
};

std::string bench_redis() {
    const char* url = std::getenv("IPC_BENCH_REDIS");
    return url ? url : "";
}

// ---- availability ----

std::optional<std::string> posix_mq_unusable() {
    mq_attr a{};
    a.mq_maxmsg = 1;
    a.mq_msgsize = 16;
    auto name = unique_queue_name("check");
    mqd_t q = ::mq_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600, &a);
    if (q == static_cast<mqd_t>(-1)) return fmt::format("mq_open: {}", std::strerror(errno));
    ::mq_unlink(name.c_str());
    ::mq_close(q);
    return std::nullopt;
}

std::optional<std::string> sysv_mq_unusable() {
    int id = ::msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    if (id < 0) return fmt::format("msgget: {}", std::strerror(errno));
    ::msgctl(id, IPC_RMID, nullptr);
    return std::nullopt;
}

std::optional<std::string> loopback_unusable(int type) {
    try {
        socket_pair(AF_INET, type);
    } catch (const std::exception& e) {
        return std::string(e.what());
    }
    return std::nullopt;
}

std::optional<std::string> usable() { return std::nullopt; }

std::vector<mechanism> build() {
    using ipc::sync::wait_mode;
    std::vector<mechanism> v;
    auto add = [&](mechanism m) { v.push_back(std::move(m)); };
    std::uint64_t dgram_max = 65536;  // kept well inside the socket buffers set above
    add({"pipe", "anonymous pipe (pipe2); toolkit: length-prefixed frames", true, true, true, false, 0, usable,
         [](std::size_t size, impl w) { return std::make_unique<pipe_link>(size, w); }});
    add({"fifo", "named pipe (mkfifo) in a private temporary directory; toolkit: frames", true, true, true, false, 0,
         usable, [](std::size_t size, impl w) { return std::make_unique<fifo_link>(size, w); }});
    add({"unix-stream", "Unix stream socket pair; toolkit: frames", true, true, true, false, 0, usable,
         [](std::size_t size, impl w) { return std::make_unique<stream_socket_link>(AF_UNIX, size, w); }});
    add({"unix-dgram", "Unix datagram socket pair, one datagram per message", false, true, true, false, dgram_max, usable,
         [](std::size_t, impl) { return std::make_unique<datagram_link>(AF_UNIX, SOCK_DGRAM); }});
    add({"unix-seqpacket", "Unix seqpacket socket pair, one packet per message", false, true, true, false, dgram_max,
         usable, [](std::size_t, impl) { return std::make_unique<datagram_link>(AF_UNIX, SOCK_SEQPACKET); }});
    add({"tcp", "TCP over loopback, TCP_NODELAY; toolkit: frames", true, true, true, false, 0,
         [] { return loopback_unusable(SOCK_STREAM); },
         [](std::size_t size, impl w) { return std::make_unique<stream_socket_link>(AF_INET, size, w); }});
    add({"udp", "UDP over loopback, one datagram per message (may lose)", false, true, true, true, 65507,
         [] { return loopback_unusable(SOCK_DGRAM); },
         [](std::size_t, impl) { return std::make_unique<datagram_link>(AF_INET, SOCK_DGRAM); }});
    add({"posix-mq", "POSIX message queues (10 deep); toolkit: ipc::mq::posix_queue", true, true, true, false,
         read_u64("/proc/sys/fs/mqueue/msgsize_max", 8192), posix_mq_unusable,
         [](std::size_t size, impl w) { return std::make_unique<posix_mq_link>(size, w); }});
    add({"sysv-mq", "a System V message queue, one type per direction; toolkit: ipc::mq::sysv_send", true, true, true,
         false, read_u64("/proc/sys/kernel/msgmax", 8192), sysv_mq_unusable,
         [](std::size_t, impl w) { return std::make_unique<sysv_mq_link>(w); }});
    add({"eventfd", "eventfd counters: signals without data", false, false, true, false, 0, usable,
         [](std::size_t, impl) { return std::make_unique<eventfd_link>(); }});
    add({"futex", "futex wait/wake on shared counters: signals without data, round trips only", false, false, false,
         false, 0, usable, [](std::size_t, impl) { return std::make_unique<futex_link>(); }});
    add({"shm-spin", "ipc-shm channel, --wait spin; raw: a bare spinning SPSC ring", true, true, true, false, 0, usable,
         [](std::size_t size, impl w) { return std::make_unique<shm_link>(size, w, wait_mode::spin); }});
    add({"shm-adaptive", "ipc-shm channel, --wait adaptive; raw: a bare spinning SPSC ring", true, true, true, false, 0,
         usable, [](std::size_t size, impl w) { return std::make_unique<shm_link>(size, w, wait_mode::adaptive); }});
    add({"shm-block", "ipc-shm channel, --wait block (futex sleeps)", true, true, true, false, 0, usable,
         [](std::size_t size, impl) { return std::make_unique<shm_link>(size, impl::toolkit, wait_mode::block); }});
    add({"mbox", "ipc-mbox local mailbox, one per direction (one group each)", true, true, true, false, 0, usable,
         [](std::size_t size, impl) { return std::make_unique<mbox_link>(size, "local"); }});
    add({"mbox-redis", "ipc-mbox on the Redis server IPC_BENCH_REDIS names (redis://HOST:PORT)", true, true, true,
         false, 0,
         []() -> std::optional<std::string> {
             if (bench_redis().empty())
                 return std::string("set IPC_BENCH_REDIS=redis://HOST:PORT to measure it (no server is assumed)");
             try {
                 ipc::mbox::location l{"/ipc-bench-probe", bench_redis(), ""};
                 ipc::mbox::list(l);
             } catch (const std::exception& e) {
                 return std::string(e.what());
             }
             return std::nullopt;
         },
         [](std::size_t size, impl) { return std::make_unique<mbox_link>(size, bench_redis()); }});
    add({"rpc", "ipc-rpc echo call, JSON lines over a Unix socket; stream: notifications; raw: unix-stream", true,
         true, true, false, 0, usable, [](std::size_t size, impl w) -> std::unique_ptr<link> {
             if (w == impl::raw) return std::make_unique<stream_socket_link>(AF_UNIX, size, impl::raw);
             return std::make_unique<rpc_link>(size, ipc::rpc::encoding::json);
         }});
    add({"rpc-cbor", "ipc-rpc echo call, CBOR frames over a Unix socket; stream: notifications; raw: unix-stream",
         true, true, true, false, 0, usable, [](std::size_t size, impl w) -> std::unique_ptr<link> {
             if (w == impl::raw) return std::make_unique<stream_socket_link>(AF_UNIX, size, impl::raw);
             return std::make_unique<rpc_link>(size, ipc::rpc::encoding::cbor);
         }});
    for (auto& p : peer_mechanisms()) v.push_back(std::move(p));
    return v;
}

// ---- the measurement ----

// Fills a message for --verify: sequence number at 8, CRC-32C of bytes
// 8..end at 0.
void stamp(std::string& m, std::uint64_t seq) {
    std::memcpy(m.data() + 8, &seq, 8);
    std::uint32_t crc = ipc::codec::crc32c(std::string_view(m).substr(8));
    std::memcpy(m.data(), &crc, 4);
}

bool intact(const std::string& m, std::uint64_t& seq) {
    if (m.size() < verify_header) return false;
    std::uint32_t crc;
    std::memcpy(&crc, m.data(), 4);
    std::memcpy(&seq, m.data() + 8, 8);
    return crc == ipc::codec::crc32c(std::string_view(m).substr(8));
}

std::string payload(std::size_t size) {
    std::string m(size, '\0');
    for (std::size_t i = 0; i < size; ++i) m[i] = static_cast<char>('a' + (i * 7 + i / 26) % 26);
    return m;
}

bool pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return ::sched_setaffinity(0, sizeof set, &set) == 0;
}

// Runs body in a child, placed; the parent, placed too, gets the child's pid.
// The parent's own CPU mask is restored by the returned guard.
class placed_fork {
public:
    explicit placed_fork(const placement& where) : where_(where) {
        ::sched_getaffinity(0, sizeof saved_, &saved_);
        obtained_ = where.kind == placement::how::none ? "unpinned" : "";
    }
    ~placed_fork() { ::sched_setaffinity(0, sizeof saved_, &saved_); }
    template <class Child>
    pid_t start(Child&& body) {
        bool parent_ok = where_.kind == placement::how::none || pin(where_.parent_cpu);
        pid_t pid = ::fork();
        if (pid < 0) fail("fork");
        if (pid == 0) {
            if (where_.kind == placement::how::two_cpus) pin(where_.child_cpu);
            int status = 0;
            try {
                body();
            } catch (...) {
                status = 70;
            }
            ::_exit(status);
        }
        if (where_.kind != placement::how::none) {
            bool child_ok = true;
            cpu_set_t set;
            // The child pins itself at once; a short look confirms it could.
            if (where_.kind == placement::how::two_cpus) {
                for (int i = 0; i < 500; ++i) {
                    if (::sched_getaffinity(pid, sizeof set, &set) == 0 && CPU_COUNT(&set) == 1 &&
                        CPU_ISSET(where_.child_cpu, &set))
                        break;
                    ::usleep(100);
                }
                child_ok = ::sched_getaffinity(pid, sizeof set, &set) == 0 && CPU_COUNT(&set) == 1 &&
                           CPU_ISSET(where_.child_cpu, &set);
            }
            obtained_ = parent_ok && child_ok ? where_.describe() : "unpinned (could not pin)";
        }
        return pid;
    }
    const std::string& obtained() const { return obtained_; }

private:
    placement where_;
    cpu_set_t saved_;
    std::string obtained_;
};

int reap(pid_t pid, std::chrono::milliseconds grace) {
    int st = 0;
    auto end = std::chrono::steady_clock::now() + grace;
    while (::waitpid(pid, &st, WNOHANG) == 0) {
        if (std::chrono::steady_clock::now() >= end) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &st, 0);
            return -1;
        }
        ::usleep(200);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

std::size_t wire_size(const mechanism& m, std::size_t size) { return m.carries_data ? size : 8; }

} // namespace

const std::vector<mechanism>& mechanisms() {
    static const std::vector<mechanism> all = build();
    return all;
}

const mechanism* find(std::string_view name) {
    for (const auto& m : mechanisms())
        if (m.name == name) return &m;
    return nullptr;
}

std::string placement::describe() const {
    switch (kind) {
    case how::two_cpus: return fmt::format("CPUs {},{}", parent_cpu, child_cpu);
    case how::same_cpu: return fmt::format("CPU {} (both)", parent_cpu);
    case how::none: break;
    }
    return "unpinned";
}

placement parse_placement(const std::string& text) {
    placement p;
    if (text == "none") p.kind = placement::how::none;
    else if (text == "same") {
        p.kind = placement::how::same_cpu;
        p.parent_cpu = p.child_cpu = 0;
    } else {
        int a = -1, b = -1;
        char extra;
        if (std::sscanf(text.c_str(), "%d,%d%c", &a, &b, &extra) != 2 || a < 0 || b < 0 || a >= CPU_SETSIZE ||
            b >= CPU_SETSIZE)
            throw ipc::usage_error("--cpus takes A,B (two CPU numbers), same, or none; not '" + text + "'");
        p.parent_cpu = a, p.child_cpu = b;
        p.kind = a == b ? placement::how::same_cpu : placement::how::two_cpus;
    }
    return p;
}

namespace {

// Runs fn in a child process and returns its JSON result: for libraries that
// start threads (nng, ZeroMQ), which must never run in the process that goes
// on forking measurements.
ipc::out::json in_subprocess(const std::function<ipc::out::json()>& fn) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) < 0) fail("make a pipe");
    unique_fd r(p[0]), w(p[1]);
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) fail("fork");
    if (pid == 0) {
        r.reset();
        ipc::out::json out;
        try {
            out = fn();
        } catch (const std::exception& e) {
            out = {{"error", e.what()}};
        }
        std::string text = out.dump();
        ipc::write_all(w.get(), text, deadline::never(), "result");
        ::_exit(0);
    }
    w.reset();
    std::string text;
    char buf[65536];
    for (;;) {
        ssize_t k = ::read(r.get(), buf, sizeof buf);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        text.append(buf, static_cast<std::size_t>(k));
    }
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (!ipc::out::json::accept(text))
        throw ipc::error(ipc::exit_code::internal, "a measuring subprocess ended without a result", EPROTO);
    auto j = ipc::out::json::parse(text);
    if (j.contains("error")) throw ipc::error(ipc::exit_code::os, j["error"].get<std::string>(), EPROTO);
    return j;
}

ipc::out::json faults_json(const faults& f) {
    return {{"lost", f.lost}, {"duplicated", f.duplicated}, {"reordered", f.reordered}, {"corrupted", f.corrupted}};
}

faults faults_of(const ipc::out::json& j) {
    faults f;
    f.lost = j["lost"], f.duplicated = j["duplicated"], f.reordered = j["reordered"], f.corrupted = j["corrupted"];
    return f;
}

latency measure_latency_here(const mechanism& m, impl which, std::size_t size, const settings& s);
throughput measure_throughput_here(const mechanism& m, impl which, std::size_t size, const settings& s);

} // namespace

latency measure_latency(const mechanism& m, impl which, std::size_t size, const settings& s) {
    if (!m.peer) return measure_latency_here(m, which, size, s);
    auto j = in_subprocess([&] {
        auto l = measure_latency_here(m, which, size, s);
        return ipc::out::json{{"samples", l.samples_ns}, {"faults", faults_json(l.f)}, {"placement", l.placement}};
    });
    latency l;
    l.samples_ns = j["samples"].get<std::vector<std::int64_t>>();
    l.f = faults_of(j["faults"]);
    l.placement = j["placement"];
    return l;
}

throughput measure_throughput(const mechanism& m, impl which, std::size_t size, const settings& s) {
    if (!m.peer) return measure_throughput_here(m, which, size, s);
    auto j = in_subprocess([&] {
        auto t = measure_throughput_here(m, which, size, s);
        return ipc::out::json{{"sent", t.sent}, {"received", t.received}, {"elapsed_ns", t.elapsed_ns},
                              {"faults", faults_json(t.f)}, {"placement", t.placement}};
    });
    throughput t;
    t.sent = j["sent"], t.received = j["received"], t.elapsed_ns = j["elapsed_ns"];
    t.f = faults_of(j["faults"]);
    t.placement = j["placement"];
    return t;
}

namespace {

latency measure_latency_here(const mechanism& m, impl which, std::size_t size, const settings& s) {
    std::size_t n = wire_size(m, size);
    bool check = s.verify && m.carries_data && n >= verify_header;
    auto lk = m.make(n, which);
    placed_fork pf(s.where);
    pid_t pid = pf.start([&] {
        auto c = lk->side(true);
        std::string buf;
        for (;;) {
            if (c->recv(buf, n, deadline::never()) != got::message) return;
            c->send(buf);
        }
    });
    latency res;
    res.placement = pf.obtained();
    {
        auto c = lk->side(false);
        std::string msg = payload(n), buf;
        // A lost datagram must not stop the run: a round trip waits at most 1 s.
        deadline::clock::duration wait = std::chrono::seconds(1);
        res.samples_ns.reserve(static_cast<std::size_t>(s.iterations));
        // Warm-up: `warmup` round trips, or `duration`, whichever ends first;
        // then the measured ones, also for at most `duration`.
        auto start = std::chrono::steady_clock::now();
        std::uint64_t warm = s.warmup;
        std::uint64_t total = s.warmup + s.iterations;
        for (std::uint64_t i = 0; i < total; ++i) {
            if (check) stamp(msg, i);
            auto t0 = std::chrono::steady_clock::now();
            c->send(msg);
            got g = c->recv(buf, n, m.lossy ? deadline::after(wait) : deadline::never());
            std::uint64_t seq = 0;
            // A late answer to an earlier round trip: not this one's.
            while (check && g == got::message && intact(buf, seq) && seq < i) {
                ++res.f.reordered;
                g = c->recv(buf, n, m.lossy ? deadline::after(wait) : deadline::never());
            }
            auto t1 = std::chrono::steady_clock::now();
            if (g != got::message) {
                ++res.f.lost;
                if (g == got::end) break;
                continue;
            }
            if (check && !intact(buf, seq)) ++res.f.corrupted;
            if (i < warm) {
                if (t1 - start > s.duration) {
                    warm = i + 1;  // warm enough: measure from the next one
                    total = warm + s.iterations;
                    start = t1;
                } else if (i + 1 == warm) {
                    start = t1;
                }
                continue;
            }
            res.samples_ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
            if (t1 - start > s.duration) break;
        }
        c->finish();
    }
    // A child blocked in a mechanism without an end (a queue, a datagram) is
    // stopped here.
    reap(pid, std::chrono::milliseconds(m.lossy ? 50 : 200));
    return res;
}

namespace {

struct report {
    std::uint64_t received = 0;
    std::int64_t last_ns = 0;
    std::uint64_t distinct = 0, duplicated = 0, reordered = 0, corrupted = 0;
};

} // namespace

throughput measure_throughput_here(const mechanism& m, impl which, std::size_t size, const settings& s) {
    std::size_t n = wire_size(m, size);
    bool check = s.verify && m.carries_data && n >= verify_header;
    auto lk = m.make(n, which);
    int ctl[2], rep[2];
    if (::pipe2(ctl, O_CLOEXEC) < 0) fail("pipe");
    if (::pipe2(rep, O_CLOEXEC) < 0) fail("pipe");
    unique_fd ctl_r(ctl[0]), ctl_w(ctl[1]), rep_r(rep[0]), rep_w(rep[1]);
    placed_fork pf(s.where);
    pid_t pid = pf.start([&] {
        ctl_w.reset(), rep_r.reset();
        auto c = lk->side(true);
        auto* efd = dynamic_cast<eventfd_conn*>(c.get());
        std::string buf;
        report r;
        std::vector<bool> seen;
        std::uint64_t highest = 0;
        for (;;) {
            got g = c->recv(buf, n, m.lossy ? deadline::after(std::chrono::seconds(1)) : deadline::never());
            if (g != got::message) break;
            r.last_ns = mono_ns();
            r.received += efd ? efd->count() : 1;
            std::uint64_t seq;
            if (!check) continue;
            if (!intact(buf, seq)) {
                ++r.corrupted;
                continue;
            }
            if (seq >= seen.size()) seen.resize(std::max<std::size_t>(seq + 1, seen.size() * 2));
            if (seen[seq]) ++r.duplicated;
            else {
                seen[seq] = true;
                ++r.distinct;
                if (seq < highest) ++r.reordered;
            }
            highest = std::max(highest, seq);
        }
        ipc::write_all(rep_w.get(), std::string_view(reinterpret_cast<const char*>(&r), sizeof r), deadline::never(),
                       "report");
    });
    ctl_r.reset(), rep_w.reset();
    throughput res;
    res.placement = pf.obtained();
    std::int64_t t0;
    report r;
    bool complete = false;
    {
        auto c = lk->side(false);
        c->one_way();
        std::string msg = payload(n);
        t0 = mono_ns();
        std::int64_t end = t0 + s.duration.count();
        for (std::uint64_t i = 0;; ++i) {
            if (check) stamp(msg, i);
            c->send(msg);
            ++res.sent;
            if ((i & 15) == 15 && mono_ns() >= end) break;
        }
        c->finish();
        // The sending end stays open until the receiver has reported: a
        // library that queues messages in a thread of its own (ZeroMQ, nng)
        // would drop what is still queued when its socket closes.
        std::size_t have = 0;
        auto until = deadline::after(std::chrono::seconds(30));
        while (have < sizeof r) {
            if (!readable(rep_r.get(), until)) break;
            ssize_t k = ::read(rep_r.get(), reinterpret_cast<char*>(&r) + have, sizeof r - have);
            if (k <= 0) {
                if (k < 0 && errno == EINTR) continue;
                break;
            }
            have += static_cast<std::size_t>(k);
        }
        complete = have == sizeof r;
    }
    reap(pid, std::chrono::milliseconds(500));
    if (!complete)
        throw ipc::error(ipc::exit_code::internal, fmt::format("the {} receiver did not report", m.name), EPROTO);
    res.received = r.received;
    res.elapsed_ns = r.last_ns > t0 ? r.last_ns - t0 : 0;
    if (check) {
        res.f.lost = res.sent > r.distinct ? res.sent - r.distinct : 0;
        res.f.duplicated = r.duplicated;
        res.f.reordered = r.reordered;
        res.f.corrupted = r.corrupted;
    } else {
        res.f.lost = res.sent > r.received ? res.sent - r.received : 0;
        res.f.duplicated = r.received > res.sent ? r.received - res.sent : 0;
    }
    return res;
}

} // namespace

} // namespace bench
