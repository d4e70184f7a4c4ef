// SPDX-License-Identifier: MIT
// What users would otherwise pick: nng (pair0) and ZeroMQ (ZMQ_PAIR) over
// ipc:// (Unix sockets), when the build found those libraries. Both start
// threads, so their sockets are made only after the fork, in each process,
// and ipc-bench measures them in a subprocess of its own (see probe.cpp).
#include "peers.hpp"

#include <cerrno>
#include <cstring>

#include <unistd.h>

#include <fmt/format.h>

#include "ipc/error.hpp"

#if IPC_BENCH_NNG
#include <nng/nng.h>
#include <nng/protocol/pair0/pair.h>
#endif
#if IPC_BENCH_ZMQ
#include <zmq.h>
#endif

namespace bench {

using ipc::deadline;

namespace {

// A private directory for the ipc:// socket file, removed by its creator.
class socket_dir {
public:
    socket_dir() : owner_(::getpid()) {
        char tmpl[] = "/tmp/ipc-bench-peer-XXXXXX";
        if (!::mkdtemp(tmpl)) throw ipc::system_error(errno, "make a temporary directory");
        dir_ = tmpl;
    }
    ~socket_dir() {
        if (::getpid() != owner_) return;
        ::unlink(path().c_str());
        ::rmdir(dir_.c_str());
    }
    std::string path() const { return dir_ + "/peer.ipc"; }
    std::string url() const { return "ipc://" + path(); }

private:
    pid_t owner_;
    std::string dir_;
};

int timeout_ms(const deadline& until) {
    if (until.infinite()) return -1;
    auto left = until.remaining().value_or(std::chrono::nanoseconds(0));
    return static_cast<int>(std::max<std::int64_t>(0, left.count() / 1'000'000));
}

#if IPC_BENCH_NNG
[[noreturn]] void nng_fail(const char* what, int rv) {
    throw ipc::error(ipc::exit_code::os, fmt::format("nng: cannot {}: {}", what, nng_strerror(rv)), EPROTO);
}

class nng_conn : public conn {
public:
    nng_conn(const std::string& url, bool listen) {
        if (int rv = nng_pair0_open(&s_)) nng_fail("open a pair socket", rv);
        nng_socket_set_size(s_, NNG_OPT_RECVMAXSZ, 0);  // no limit: sizes up to what run allows
        int rv = listen ? nng_listen(s_, url.c_str(), nullptr, 0) : nng_dial(s_, url.c_str(), nullptr, NNG_FLAG_NONBLOCK);
        if (rv) nng_fail(listen ? "listen" : "dial", rv);
    }
    ~nng_conn() override { nng_close(s_); }
    void send(std::string_view m) override {
        if (int rv = nng_send(s_, const_cast<char*>(m.data()), m.size(), 0)) nng_fail("send", rv);
    }
    got recv(std::string& buf, std::size_t, const deadline& until) override {
        int ms = timeout_ms(until);
        if (ms != last_ms_) {
            nng_socket_set_ms(s_, NNG_OPT_RECVTIMEO, ms < 0 ? NNG_DURATION_INFINITE : ms);
            last_ms_ = ms;
        }
        char* p = nullptr;
        std::size_t n = 0;
        int rv = nng_recv(s_, &p, &n, NNG_FLAG_ALLOC);
        if (rv == NNG_ETIMEDOUT) return got::timeout;
        if (rv) nng_fail("receive", rv);
        buf.assign(p, n);
        nng_free(p, n);
        return n ? got::message : got::end;
    }
    void finish() override { send(""); }

private:
    nng_socket s_{};
    int last_ms_ = -2;
};

class nng_link : public link {
public:
    std::unique_ptr<conn> side(bool child) override { return std::make_unique<nng_conn>(dir_.url(), !child); }

private:
    socket_dir dir_;
};
#endif

#if IPC_BENCH_ZMQ
[[noreturn]] void zmq_fail(const char* what) {
    throw ipc::error(ipc::exit_code::os, fmt::format("zmq: cannot {}: {}", what, zmq_strerror(zmq_errno())), EPROTO);
}

class zmq_conn : public conn {
public:
    zmq_conn(const std::string& url, bool bind) : ctx_(zmq_ctx_new()) {
        if (!ctx_) zmq_fail("make a context");
        s_ = zmq_socket(ctx_, ZMQ_PAIR);
        if (!s_) zmq_fail("open a pair socket");
        int zero = 0;
        zmq_setsockopt(s_, ZMQ_LINGER, &zero, sizeof zero);
        if ((bind ? zmq_bind(s_, url.c_str()) : zmq_connect(s_, url.c_str())) != 0) zmq_fail(bind ? "bind" : "connect");
        zmq_msg_init(&msg_);
    }
    ~zmq_conn() override {
        zmq_msg_close(&msg_);
        zmq_close(s_);
        zmq_ctx_term(ctx_);
    }
    void send(std::string_view m) override {
        while (zmq_send(s_, m.data(), m.size(), 0) < 0)
            if (zmq_errno() != EINTR) zmq_fail("send");
    }
    got recv(std::string& buf, std::size_t, const deadline& until) override {
        int ms = timeout_ms(until);
        if (ms != last_ms_) {
            zmq_setsockopt(s_, ZMQ_RCVTIMEO, &ms, sizeof ms);
            last_ms_ = ms;
        }
        for (;;) {
            if (zmq_msg_recv(&msg_, s_, 0) >= 0) break;
            if (zmq_errno() == EAGAIN) return got::timeout;
            if (zmq_errno() != EINTR) zmq_fail("receive");
        }
        std::size_t n = zmq_msg_size(&msg_);
        buf.assign(static_cast<const char*>(zmq_msg_data(&msg_)), n);
        return n ? got::message : got::end;
    }
    void finish() override { send(""); }

private:
    void* ctx_;
    void* s_ = nullptr;
    zmq_msg_t msg_;
    int last_ms_ = -2;
};

class zmq_link : public link {
public:
    std::unique_ptr<conn> side(bool child) override { return std::make_unique<zmq_conn>(dir_.url(), !child); }

private:
    socket_dir dir_;
};
#endif

std::optional<std::string> usable() { return std::nullopt; }

} // namespace

std::vector<mechanism> peer_mechanisms() {
    std::vector<mechanism> v;
#if IPC_BENCH_NNG
    {
        mechanism m{"nng-pair", "nng pair0 over ipc:// (libnng), for comparison", false, true, true, false, 0, usable,
                    [](std::size_t, impl) { return std::make_unique<nng_link>(); }};
        m.peer = true;
        v.push_back(std::move(m));
    }
#endif
#if IPC_BENCH_ZMQ
    {
        mechanism m{"zmq-pair", "ZeroMQ ZMQ_PAIR over ipc:// (libzmq), for comparison", false, true, true, false, 0,
                    usable, [](std::size_t, impl) { return std::make_unique<zmq_link>(); }};
        m.peer = true;
        v.push_back(std::move(m));
    }
#endif
    return v;
}

std::vector<std::string> peers_missing() {
    std::vector<std::string> v;
#if !IPC_BENCH_NNG
    v.push_back("nng-pair (libnng was not found when ipc-bench was built; Debian package libnng-dev)");
#endif
#if !IPC_BENCH_ZMQ
    v.push_back("zmq-pair (libzmq was not found when ipc-bench was built; Debian package libzmq3-dev)");
#endif
    return v;
}

} // namespace bench
