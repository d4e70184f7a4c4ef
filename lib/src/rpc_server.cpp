// SPDX-License-Identifier: MIT
// The JSON-RPC server core: listening sockets, the accept loop, per-connection
// line buffers, peer checks, and a pool of workers that run one command per
// call with a time limit.
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include "ipc/error.hpp"
#include "ipc/rpc.hpp"

namespace ipc::rpc {

// ---- listener ---------------------------------------------------------------

namespace {

socklen_t unix_address(const parse::endpoint& ep, sockaddr_un& sa) {
    sa = {};
    sa.sun_family = AF_UNIX;
    if (ep.type == parse::endpoint::kind::unix_abstract) {
        std::memcpy(sa.sun_path + 1, ep.path.data(), ep.path.size());
        return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + ep.path.size());
    }
    std::memcpy(sa.sun_path, ep.path.data(), ep.path.size());
    return static_cast<socklen_t>(sizeof sa);
}

// Whether some process accepts connections on the Unix socket at path.
bool someone_listens(const sockaddr_un& sa, socklen_t len) {
    unique_fd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!probe) return true;
    int r = ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&sa), len);
    return r == 0 || errno == EAGAIN || errno == EINPROGRESS;
}

} // namespace

listener::listener(const parse::endpoint& ep, mode_t mode) : bound_(ep) {
    using kind = parse::endpoint::kind;
    if (ep.type == kind::udp) throw usage_error("udp endpoints are not supported yet: use unix: or tcp:");
    if (ep.type == kind::unix_path || ep.type == kind::unix_abstract) {
        fd_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
        if (!fd_) throw last_system_error("create", "socket", ep.str());
        sockaddr_un sa;
        socklen_t len = unix_address(ep, sa);
        auto bind_now = [&] {
            // The socket file is made with the mode asked for, never wider.
            mode_t old = ::umask(0777 & ~mode);
            int r = ::bind(fd_.get(), reinterpret_cast<sockaddr*>(&sa), len);
            int err = errno;
            ::umask(old);
            errno = err;
            return r;
        };
        if (bind_now() != 0) {
            int err = errno;
            if (err != EADDRINUSE) throw system_error(err, "bind", "socket", ep.str());
            if (ep.type == kind::unix_abstract)
                throw error(exit_code::exists, fmt::format("cannot bind socket '{}': in use by another server", ep.str()), err);
            struct stat st{};
            if (::lstat(ep.path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode))
                throw error(exit_code::exists, fmt::format("cannot bind socket '{}': the path exists and is not a socket", ep.str()), err);
            if (someone_listens(sa, len))
                throw error(exit_code::exists, fmt::format("cannot bind socket '{}': in use by another server", ep.str()), err);
            // A stale socket a server left behind: replace it.
            if (::unlink(ep.path.c_str()) != 0 && errno != ENOENT) throw last_system_error("remove stale socket", "", ep.path);
            if (bind_now() != 0) throw last_system_error("bind", "socket", ep.str());
        }
        if (ep.type == kind::unix_path) {
            if (::chmod(ep.path.c_str(), mode) != 0) throw last_system_error("set the mode of", "socket", ep.str());
            struct stat st{};
            if (::lstat(ep.path.c_str(), &st) == 0) owned_ = std::make_pair(st.st_dev, st.st_ino);
        }
    } else {
        auto res = resolve(ep, true);
        int last = EADDRNOTAVAIL;
        for (auto* a = res.get(); a; a = a->ai_next) {
            unique_fd fd(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol));
            if (!fd) {
                last = errno;
                continue;
            }
            int one = 1;
            ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            if (::bind(fd.get(), a->ai_addr, a->ai_addrlen) != 0) {
                last = errno;
                continue;
            }
            fd_ = std::move(fd);
            break;
        }
        if (!fd_) {
            if (last == EADDRINUSE)
                throw error(exit_code::exists, fmt::format("cannot bind '{}': address in use", ep.str()), last);
            throw system_error(last, "bind", "", ep.str());
        }
        sockaddr_storage ss{};
        socklen_t sl = sizeof ss;
        if (::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&ss), &sl) == 0)
            bound_.port = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                                         : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    }
    if (::listen(fd_.get(), 128) != 0) throw last_system_error("listen on", "socket", ep.str());
}

listener::listener(listener&& other) noexcept
    : fd_(std::move(other.fd_)), bound_(std::move(other.bound_)), owned_(std::exchange(other.owned_, std::nullopt)) {}

listener& listener::operator=(listener&& other) noexcept {
    if (this != &other) {
        this->~listener();
        new (this) listener(std::move(other));
    }
    return *this;
}

listener::~listener() {
    if (!owned_) return;
    struct stat st{};
    // Only the socket this listener made: not one a later server put there.
    if (::lstat(bound_.path.c_str(), &st) == 0 && st.st_dev == owned_->first && st.st_ino == owned_->second)
        ::unlink(bound_.path.c_str());
}

// ---- server -----------------------------------------------------------------

namespace {

// One client connection. The main loop reads; workers write whole lines.
struct conn {
    unique_fd fd;
    line_reader reader;
    bool discarding = false;  // refused or over the size limit: input is dropped
    std::mutex wmu;
    bool broken = false;  // under wmu

    conn(unique_fd f, std::size_t max) : fd(std::move(f)), reader(max) {}

    // Writes one message; a peer that does not read for 10 s is dropped.
    void write(const json& message) {
        std::string line = dump(message) + "\n";
        std::lock_guard lock(wmu);
        if (broken) return;
        auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        std::size_t done = 0;
        while (done < line.size()) {
            ssize_t n = ::send(fd.get(), line.data() + done, line.size() - done, MSG_NOSIGNAL);
            if (n > 0) {
                done += static_cast<std::size_t>(n);
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EAGAIN) {
                auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
                pollfd p{fd.get(), POLLOUT, 0};
                if (left.count() > 0 && ::poll(&p, 1, static_cast<int>(left.count())) >= 0 && (p.revents & POLLOUT))
                    continue;
                if (left.count() > 0 && errno == EINTR) continue;
            }
            broken = true;
            ::shutdown(fd.get(), SHUT_RDWR);
            return;
        }
    }
};

// The responses of one batch, sent as one array when the last call ends.
struct batch {
    std::mutex mu;
    json responses = json::array();
    std::size_t pending = 0;
};

struct job {
    std::shared_ptr<conn> c;
    std::shared_ptr<batch> b;
    const method* m = nullptr;
    request req;
};

std::string env_name(const std::string& key) {
    std::string n = "IPC_RPC_PARAM_";
    for (unsigned char ch : key) n += std::isalnum(ch) ? static_cast<char>(std::toupper(ch)) : '_';
    return n;
}

std::string arg_text(const json& v) { return v.is_string() ? v.get<std::string>() : dump(v); }

} // namespace

struct server::impl {
    listener l;
    server_options o;
    unique_fd stop_r, stop_w;
    std::mutex qmu;
    std::condition_variable qcv;
    std::deque<job> queue;
    bool quit = false;
    std::vector<std::thread> threads;
    std::vector<std::shared_ptr<conn>> conns;
    std::chrono::steady_clock::time_point accept_paused_until{};

    impl(listener li, server_options opts) : l(std::move(li)), o(std::move(opts)) {
        int p[2];
        if (::pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) throw last_system_error("create", "pipe", "stop");
        stop_r.reset(p[0]);
        stop_w.reset(p[1]);
        if (o.workers == 0) o.workers = 1;
    }

    void stop() {
        char c = 1;
        [[maybe_unused]] auto r = ::write(stop_w.get(), &c, 1);
    }

    json describe() const {
        json methods = json::array();
        for (const auto& m : o.methods)
            methods.push_back({{"name", m.name},
                               {"params", "an array (its elements are appended to the command's arguments) or an "
                                          "object (as IPC_RPC_PARAM_<KEY> variables); all of it as JSON on stdin"},
                               {"result", "the command's standard output: JSON when it parses, else a string"}});
        methods.push_back({{"name", "rpc.describe"}, {"params", "none"}, {"result", "this description"}});
        return {{"server", "ipc-rpc"}, {"protocol", "JSON-RPC 2.0"}, {"version", o.api_version}, {"methods", methods}};
    }

    void deliver(const std::shared_ptr<conn>& c, const std::shared_ptr<batch>& b, json response) {
        if (b) {
            std::lock_guard lock(b->mu);
            if (!response.is_null()) b->responses.push_back(std::move(response));
            if (--b->pending == 0 && !b->responses.empty()) c->write(b->responses);
            return;
        }
        if (!response.is_null()) c->write(response);
    }

    const method* find(const std::string& name) const {
        for (const auto& m : o.methods)
            if (m.name == name) return &m;
        return nullptr;
    }

    void dispatch(const std::shared_ptr<conn>& c, const std::shared_ptr<batch>& b, const json& v) {
        auto checked = validate_request(v);
        if (auto* err = std::get_if<json>(&checked)) return deliver(c, b, std::move(*err));
        auto& q = std::get<request>(checked);
        if (q.method == "rpc.describe") {
            if (!q.params.is_null() && !q.params.empty())
                return deliver(c, b, q.notification() ? json() : error_response(*q.id, code::invalid_params, "rpc.describe takes no params"));
            return deliver(c, b, q.notification() ? json() : result_response(*q.id, describe()));
        }
        const method* m = find(q.method);
        if (!m)
            return deliver(c, b, q.notification() ? json() : error_response(*q.id, code::method_not_found,
                                                                             fmt::format("Method not found: '{}'", q.method)));
        {
            std::lock_guard lock(qmu);
            if (queue.size() < o.max_queued) {
                queue.push_back(job{c, b, m, std::move(q)});
                qcv.notify_one();
                return;
            }
        }
        deliver(c, b, q.notification() ? json() : error_response(*q.id, code::server_busy, fmt::format("Server busy: {} calls are waiting", o.max_queued)));
    }

    void handle_line(const std::shared_ptr<conn>& c, const std::string& line) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) return;
        auto v = parse_json(line);
        if (!v) return deliver(c, nullptr, error_response(nullptr, code::parse_error, "Parse error: the request is not JSON"));
        if (v->is_array()) {
            if (v->empty()) return deliver(c, nullptr, error_response(nullptr, code::invalid_request, "an empty batch"));
            auto b = std::make_shared<batch>();
            b->pending = v->size();
            for (const auto& e : *v) dispatch(c, b, e);
            return;
        }
        dispatch(c, nullptr, *v);
    }

    // Runs one call's command: returns its response (for a notification too;
    // the caller drops it).
    json execute(const method& m, const request& q) {
        json id = q.id ? *q.id : json();
        auto fail = [&](int c, std::string msg, json data = nullptr) { return error_response(id, c, std::move(msg), std::move(data)); };
        int in[2], out[2], err[2];
        if (::pipe2(in, O_CLOEXEC) != 0) return fail(code::internal_error, "cannot create a pipe");
        unique_fd in_r(in[0]), in_w(in[1]);
        if (::pipe2(out, O_CLOEXEC) != 0) return fail(code::internal_error, "cannot create a pipe");
        unique_fd out_r(out[0]), out_w(out[1]);
        if (::pipe2(err, O_CLOEXEC) != 0) return fail(code::internal_error, "cannot create a pipe");
        unique_fd err_r(err[0]), err_w(err[1]);

        std::vector<std::string> args = m.argv;
        if (q.params.is_array())
            for (const auto& e : q.params) args.push_back(arg_text(e));
        std::vector<std::string> env;
        for (char** e = environ; *e; ++e)
            if (!std::string_view(*e).starts_with("IPC_RPC_")) env.emplace_back(*e);
        env.push_back("IPC_RPC_METHOD=" + q.method);
        if (q.id) env.push_back("IPC_RPC_ID=" + dump(*q.id));
        env.push_back("IPC_RPC_PARAMS=" + dump(q.params));
        if (q.params.is_object())
            for (auto it = q.params.begin(); it != q.params.end(); ++it)
                env.push_back(env_name(it.key()) + "=" + arg_text(it.value()));
        std::vector<char*> argv, envp;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        for (auto& e : env) envp.push_back(e.data());
        envp.push_back(nullptr);

        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        ::posix_spawn_file_actions_init(&fa);
        ::posix_spawn_file_actions_adddup2(&fa, in_r.get(), 0);
        ::posix_spawn_file_actions_adddup2(&fa, out_w.get(), 1);
        ::posix_spawn_file_actions_adddup2(&fa, err_w.get(), 2);
        ::posix_spawnattr_init(&attr);
        // Its own process group (so the time limit kills all of it), no
        // blocked signals, and default dispositions for those the server changes.
        ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        ::posix_spawnattr_setpgroup(&attr, 0);
        sigset_t none, defaults;
        sigemptyset(&none);
        sigemptyset(&defaults);
        for (int s : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD}) sigaddset(&defaults, s);
        ::posix_spawnattr_setsigmask(&attr, &none);
        ::posix_spawnattr_setsigdefault(&attr, &defaults);
        pid_t pid = -1;
        int rc = ::posix_spawnp(&pid, argv[0], &fa, &attr, argv.data(), envp.data());
        ::posix_spawn_file_actions_destroy(&fa);
        ::posix_spawnattr_destroy(&attr);
        if (rc != 0)
            return fail(code::command_failed, fmt::format("cannot run '{}': {}", m.argv[0], std::strerror(rc)),
                        {{"exit_status", 127}, {"stderr", ""}});
        in_r.reset();
        out_w.reset();
        err_w.reset();
        set_nonblocking(in_w.get(), true);
        set_nonblocking(out_r.get(), true);
        set_nonblocking(err_r.get(), true);

        std::string input = dump(q.params) + "\n", output, errors;
        std::size_t written = 0;
        constexpr std::size_t max_stderr = 64 * 1024;
        auto until = deadline::from(o.call_timeout);
        enum class end { normal, timed_out, too_large, stopped } how = end::normal;
        char buf[65536];
        while (out_r || err_r) {
            pollfd p[4] = {{stop_r.get(), POLLIN, 0}, {out_r.get(), POLLIN, 0}, {err_r.get(), POLLIN, 0},
                           {in_w.get(), POLLOUT, 0}};
            auto left = until.remaining();
            int ms = left ? static_cast<int>(std::min<long long>(
                                std::chrono::duration_cast<std::chrono::milliseconds>(*left).count() + 1, 1000))
                          : 1000;
            int r = ::poll(p, in_w ? 4 : 3, ms);
            if (r < 0 && errno != EINTR) break;
            if (p[0].revents) {
                how = end::stopped;
                break;
            }
            if (until.expired()) {
                how = end::timed_out;
                break;
            }
            auto drain = [&](unique_fd& fd, std::string& into, short rev, std::size_t cap) {
                if (!rev) return;
                ssize_t n = ::read(fd.get(), buf, sizeof buf);
                if (n > 0) {
                    std::size_t room = into.size() < cap ? cap - into.size() : 0;
                    into.append(buf, std::min<std::size_t>(room, static_cast<std::size_t>(n)));
                    if (into.size() >= cap && &into == &output) how = end::too_large;
                } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                    fd.reset();
                }
            };
            drain(out_r, output, p[1].revents, o.max_output + 1);
            drain(err_r, errors, p[2].revents, max_stderr);
            if (how == end::too_large) break;
            if (in_w && p[3].revents) {
                ssize_t n = ::write(in_w.get(), input.data() + written, input.size() - written);
                if (n > 0) written += static_cast<std::size_t>(n);
                else if (n < 0 && errno != EAGAIN && errno != EINTR) in_w.reset();
                if (written == input.size()) in_w.reset();
            }
        }
        in_w.reset();
        out_r.reset();
        err_r.reset();
        int status = 0;
        if (how == end::normal) {
            // Output is closed; the command has until the limit to exit.
            for (;;) {
                pid_t w = ::waitpid(pid, &status, WNOHANG);
                if (w == pid) break;
                if (w < 0 && errno != EINTR) break;
                pollfd sp{stop_r.get(), POLLIN, 0};
                if (::poll(&sp, 1, 10) > 0) {
                    how = end::stopped;
                    break;
                }
                if (until.expired()) {
                    how = end::timed_out;
                    break;
                }
            }
        }
        if (how != end::normal) {
            ::kill(-pid, SIGKILL);
            while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
        }
        switch (how) {
        case end::timed_out: {
            auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*o.call_timeout).count();
            return fail(code::timed_out, fmt::format("method '{}' ran past its time limit of {} ms and was killed", m.name, ms),
                        {{"timeout_ms", ms}, {"stderr", errors}});
        }
        case end::too_large:
            return fail(code::output_too_large,
                        fmt::format("method '{}' wrote more than {} bytes and was killed", m.name, o.max_output),
                        {{"max_output_bytes", o.max_output}});
        case end::stopped: return fail(code::internal_error, "the server is shutting down");
        case end::normal: break;
        }
        if (WIFSIGNALED(status))
            return fail(code::command_failed, fmt::format("method '{}' was killed by signal {}", m.name, WTERMSIG(status)),
                        {{"signal", WTERMSIG(status)}, {"stderr", errors}});
        int st = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
        if (st != 0)
            return fail(code::command_failed, fmt::format("method '{}' failed with exit status {}", m.name, st),
                        {{"exit_status", st}, {"stderr", errors}});
        if (output.find_first_not_of(" \t\r\n") == std::string::npos) return result_response(id, nullptr);
        if (auto v = parse_json(output); v && numbers_exact(*v)) return result_response(id, std::move(*v));
        if (output.ends_with('\n')) output.pop_back();
        return result_response(id, output);
    }

    void worker() {
        for (;;) {
            job j;
            {
                std::unique_lock lock(qmu);
                qcv.wait(lock, [&] { return quit || !queue.empty(); });
                if (quit) return;
                j = std::move(queue.front());
                queue.pop_front();
            }
            json r = execute(*j.m, j.req);
            deliver(j.c, j.b, j.req.notification() ? json() : std::move(r));
        }
    }

    // A path socket's mode decides who may connect, unless --allow-uid or
    // --allow-gid is given; an abstract socket has no mode, so without them
    // it admits the server's own user only.
    bool admitted(int fd, json& refusal) {
        bool abstract = l.where().type == parse::endpoint::kind::unix_abstract;
        if (o.allow_uids.empty() && o.allow_gids.empty() && !abstract) return true;
        ucred cr{};
        socklen_t len = sizeof cr;
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0) {
            refusal = error_response(nullptr, code::not_allowed, "Not allowed: the peer's credentials are unknown");
            return false;
        }
        if (cr.uid == ::geteuid()) return true;
        for (auto u : o.allow_uids)
            if (u == cr.uid) return true;
        for (auto g : o.allow_gids)
            if (g == cr.gid) return true;
        refusal = error_response(nullptr, code::not_allowed,
                                 fmt::format("Not allowed: uid {} gid {} may not call this server", cr.uid, cr.gid),
                                 {{"uid", cr.uid}, {"gid", cr.gid}});
        return false;
    }

    // Stops reading requests from c: tells the peer why, ends the writing
    // side, and drops what it sends until it closes (closing with unread
    // input would reset the connection and lose the answer).
    void refuse(const std::shared_ptr<conn>& c, const json& why) {
        c->write(why);
        c->discarding = true;
        ::shutdown(c->fd.get(), SHUT_WR);
    }

    void accept_all() {
        bool is_unix = l.where().type == parse::endpoint::kind::unix_path ||
                       l.where().type == parse::endpoint::kind::unix_abstract;
        while (conns.size() < o.max_connections) {
            unique_fd fd(::accept4(l.fd(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
            if (!fd) {
                // Out of descriptors or memory: the connection stays queued
                // and the listener stays readable; look again in 100 ms
                // rather than spin. (EAGAIN, or a connection that went away:
                // nothing to do.)
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                    accept_paused_until = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
                return;
            }
            if (!is_unix) {
                int one = 1;
                ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            }
            auto c = std::make_shared<conn>(std::move(fd), o.max_request);
            json refusal;
            if (is_unix && !admitted(c->fd.get(), refusal)) refuse(c, refusal);
            conns.push_back(std::move(c));
        }
    }

    // Reads what c has; false when it is done (closed or failed).
    bool read_from(const std::shared_ptr<conn>& c) {
        char buf[65536];
        ssize_t n = ::read(c->fd.get(), buf, sizeof buf);
        if (n < 0) return errno == EAGAIN || errno == EINTR;
        if (c->discarding) return n > 0;
        if (n == 0) {
            // A last request without its newline is still a request.
            std::string rest = c->reader.rest();
            if (rest.size() > o.max_request)
                c->write(error_response(nullptr, code::request_too_large, fmt::format("Request over {} bytes", o.max_request)));
            else handle_line(c, rest);
            return false;
        }
        c->reader.feed(buf, static_cast<std::size_t>(n));
        std::string line;
        for (;;) {
            auto st = c->reader.next(line);
            if (st == line_reader::status::need_more) return true;
            if (st == line_reader::status::too_long) {
                refuse(c, error_response(nullptr, code::request_too_large,
                                         fmt::format("Request over {} bytes", o.max_request),
                                         {{"max_request_bytes", o.max_request}}));
                c->reader.rest();
                return true;
            }
            handle_line(c, line);
        }
    }

    void run() {
        sigset_t block, old;
        sigemptyset(&block);
        sigaddset(&block, SIGINT);
        sigaddset(&block, SIGTERM);
        ::pthread_sigmask(SIG_BLOCK, &block, &old);
        // Workers also block SIGPIPE: a command that exits without reading
        // its stdin makes the write fail with EPIPE, not kill the server.
        sigset_t with_pipe = block, before_workers;
        sigaddset(&with_pipe, SIGPIPE);
        ::pthread_sigmask(SIG_BLOCK, &with_pipe, &before_workers);
        struct restore {
            sigset_t* old;
            ~restore() { ::pthread_sigmask(SIG_SETMASK, old, nullptr); }
        } restore_mask{&old};
        // Workers inherit the blocked mask: signals go to this thread only.
        for (unsigned i = 0; i < o.workers; ++i) threads.emplace_back([this] { worker(); });
        ::pthread_sigmask(SIG_SETMASK, &before_workers, nullptr);
        int signo = 0;
        std::vector<pollfd> fds;
        for (;;) {
            if ((signo = pending_interrupt()) != 0) break;
            fds.clear();
            fds.push_back({stop_r.get(), POLLIN, 0});
            auto now = std::chrono::steady_clock::now();
            bool paused = now < accept_paused_until;
            bool room = conns.size() < o.max_connections && !paused;
            fds.push_back({room ? l.fd() : -1, POLLIN, 0});
            for (const auto& c : conns) fds.push_back({c->fd.get(), POLLIN, 0});
            timespec pause_left{};
            if (paused) {
                auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(accept_paused_until - now).count();
                pause_left.tv_sec = ns / 1000000000;
                pause_left.tv_nsec = ns % 1000000000;
            }
            int r = ::ppoll(fds.data(), fds.size(), paused ? &pause_left : nullptr, &old);
            if (r < 0) {
                if (errno == EINTR) continue;
                break;
            }
            if (fds[0].revents) break;
            std::vector<std::shared_ptr<conn>> keep;
            for (std::size_t i = 0; i < conns.size(); ++i) {
                if (fds[i + 2].revents == 0 || read_from(conns[i])) keep.push_back(std::move(conns[i]));
            }
            conns = std::move(keep);
            if (fds[1].revents) accept_all();
        }
        shutdown();
        if (signo) throw interrupted(signo);
    }

    void shutdown() {
        {
            std::lock_guard lock(qmu);
            quit = true;
            queue.clear();
        }
        qcv.notify_all();
        stop();  // commands still running are killed
        for (auto& t : threads) t.join();
        threads.clear();
        conns.clear();
    }

    ~impl() {
        if (!threads.empty()) shutdown();
    }
};

server::server(listener l, server_options o) : impl_(std::make_unique<impl>(std::move(l), std::move(o))) {}
server::~server() = default;
void server::run() { impl_->run(); }
void server::stop() { impl_->stop(); }
json server::describe() const { return impl_->describe(); }
const parse::endpoint& server::where() const { return impl_->l.where(); }

} // namespace ipc::rpc
