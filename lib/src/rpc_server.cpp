// SPDX-License-Identifier: MIT
// The JSON-RPC server core: listening sockets (stream and datagram), the
// accept loop, per-connection framing in the encoding the client chose, peer
// checks, the reply store (deduplication and exactly-once), leases and
// disconnection (orphaned calls are cancelled), and a pool of workers that
// run a handler or a command per call.
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include "ipc/error.hpp"
#include "ipc/rpc.hpp"
#include "rpc_store.hpp"

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
            if (ep.type == kind::tcp) ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
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
    if (ep.type != kind::udp && ::listen(fd_.get(), 128) != 0) throw last_system_error("listen on", "socket", ep.str());
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

using clock = std::chrono::steady_clock;

// What a call in flight shares with whoever may cancel it. Its eventfd is
// made when first asked for (a command's call, or a handler that waits on
// cancel_fd()): most handler calls never need one, and two system calls a
// call are a good part of a small call's cost.
struct call_state {
    std::atomic<bool> cancelled{false};
    std::atomic<clock::rep> renewed{clock::now().time_since_epoch().count()};
    std::optional<std::chrono::milliseconds> lease;
    bool to_completion = false;

    void renew() { renewed = clock::now().time_since_epoch().count(); }
    void cancel() {
        if (cancelled.exchange(true)) return;
        std::lock_guard lock(fmu);
        if (!efd) return;  // made readable when it is made
        std::uint64_t one = 1;
        [[maybe_unused]] auto r = ::write(efd.get(), &one, sizeof one);
    }
    // Readable once cancelled; -1 when no eventfd can be made.
    int fd() {
        std::lock_guard lock(fmu);
        if (!efd) efd.reset(::eventfd(cancelled.load() ? 1 : 0, EFD_CLOEXEC | EFD_NONBLOCK));
        return efd.get();
    }
    bool lease_expired(clock::time_point now) const {
        return lease && now - clock::time_point(clock::duration(renewed.load())) > *lease;
    }

private:
    std::mutex fmu;
    unique_fd efd;  // under fmu
};

// Where a call's reply goes: a stream connection or a datagram peer.
struct link {
    virtual ~link() = default;
    virtual void send(const json& message) = 0;
    virtual std::string_view transport() const = 0;
    /// Sends a request to the caller and waits for its response (stream
    /// connections only).
    virtual json call_back(const std::string&, const json&, std::chrono::nanoseconds, const call_state&) {
        throw error(exit_code::unavailable, "callbacks need a stream connection (unix: or tcp:), not UDP");
    }
    /// Takes a response the caller sent (to a callback); false when none waits for it.
    virtual bool take_response(const json&) { return false; }
    std::uint64_t number = 0;  // stream connections only
    pid_t pid = 0;
    uid_t uid = static_cast<uid_t>(-1);
};

// One client connection: a thread of its own reads it (blocking reads: a
// small call costs the same system calls as a raw ping-pong); workers and
// that thread write whole messages.
struct conn : link {
    unique_fd fd;  // blocking; writes say MSG_DONTWAIT and wait with poll
    frame_reader reader;
    bool tcp;
    bool discarding = false;  // refused or over the size limit: input is dropped
    bool eof = false;         // the client sent all it will send
    std::atomic<clock::rep> heard{clock::now().time_since_epoch().count()};
    std::thread thread;       // the reader; joined by the server

    clock::time_point last_heard() const { return clock::time_point(clock::duration(heard.load(std::memory_order_relaxed))); }
    std::mutex wmu;
    bool broken = false;  // under wmu
    std::mutex cmu;
    std::vector<std::weak_ptr<call_state>> calls;  // under cmu: calls in flight

    conn(unique_fd f, std::size_t max, bool is_tcp) : fd(std::move(f)), reader(max), tcp(is_tcp) {}

    std::string_view transport() const override { return tcp ? "tcp" : "unix"; }

    // Writes one message; a peer that does not read for 10 s is dropped.
    void send(const json& message) override {
        std::string bytes = frame(message, reader.enc().value_or(encoding::json));
        std::lock_guard lock(wmu);
        if (broken) return;
        auto until = clock::now() + std::chrono::seconds(10);
        std::size_t done = 0;
        while (done < bytes.size()) {
            ssize_t n = ::send(fd.get(), bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                done += static_cast<std::size_t>(n);
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EAGAIN) {
                auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - clock::now());
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

    std::mutex pmu;
    std::map<std::string, std::shared_ptr<std::promise<json>>> pending;  // under pmu: callbacks sent
    std::uint64_t next_callback = 0;                                       // under pmu

    json call_back(const std::string& name, const json& params, std::chrono::nanoseconds timeout, const call_state& st) override {
        auto p = std::make_shared<std::promise<json>>();
        auto f = p->get_future();
        std::string id;
        {
            std::lock_guard lock(pmu);
            id = fmt::format("callback-{}", ++next_callback);
            pending[id] = p;
        }
        struct forget {
            conn& c;
            std::string id;
            ~forget() {
                std::lock_guard lock(c.pmu);
                c.pending.erase(id);
            }
        } cleanup{*this, id};
        send(make_request(name, params, json(id)));
        auto until = clock::now() + timeout;
        while (f.wait_for(std::chrono::milliseconds(50)) != std::future_status::ready) {
            if (st.cancelled) throw error(exit_code::unknown_outcome, fmt::format("callback '{}': the caller is gone", name));
            if (clock::now() >= until) throw temp_failure(fmt::format("callback '{}': no answer within the time limit", name), ETIMEDOUT);
        }
        json r = f.get();
        if (r.contains("error")) throw remote_error(r["error"]);
        return r.value("result", json());
    }

    bool take_response(const json& r) override {
        if (!r.contains("id") || !r["id"].is_string()) return false;
        std::lock_guard lock(pmu);
        auto it = pending.find(r["id"].get<std::string>());
        if (it == pending.end()) return false;
        it->second->set_value(r);
        pending.erase(it);
        return true;
    }

    void track(const std::shared_ptr<call_state>& st) {
        std::lock_guard lock(cmu);
        std::erase_if(calls, [](const auto& w) { return w.expired(); });
        calls.push_back(st);
    }
    std::size_t in_flight() {
        std::lock_guard lock(cmu);
        std::erase_if(calls, [](const auto& w) { return w.expired(); });
        return calls.size();
    }
    // The client is gone: its calls become orphans and are cancelled,
    // except those of methods that run to completion.
    void gone() {
        std::lock_guard lock(cmu);
        for (auto& w : calls)
            if (auto st = w.lock(); st && !st->to_completion) st->cancel();
    }
};

// A UDP client: replies go back to the address the request came from.
struct datagram_peer : link {
    int fd;
    sockaddr_storage addr{};
    socklen_t len = 0;
    encoding enc = encoding::json;

    explicit datagram_peer(int f) : fd(f) {}
    std::string_view transport() const override { return "udp"; }
    void send(const json& message) override {
        std::string d = datagram(message, enc);
        if (d.size() > 65507) {
            json id = message.is_object() && message.contains("id") ? message["id"] : json();
            d = datagram(error_response(id, code::output_too_large,
                                        fmt::format("the reply is {} bytes: over the 65507 a UDP datagram holds", d.size())),
                         enc);
        }
        ::sendto(fd, d.data(), d.size(), MSG_DONTWAIT | MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&addr), len);
    }
};

// The responses of one batch, sent as one array when the last call ends.
struct batch {
    std::mutex mu;
    json responses = json::array();
    std::size_t pending = 0;
};

struct job {
    std::shared_ptr<link> l;
    std::shared_ptr<batch> b;
    const method* m = nullptr;
    request req;
    extension x;
    std::shared_ptr<call_state> st;
    bool keyed = false;  // recorded under (client, id)
    std::vector<std::string> callbacks;  // procedures of the caller its params name
};

// A recorded call in flight, and the other links that asked for it since.
struct inflight {
    std::shared_ptr<call_state> st;
    std::vector<std::shared_ptr<link>> waiters;
};

std::string env_name(const std::string& key) {
    std::string n = "IPC_RPC_PARAM_";
    for (unsigned char ch : key) n += std::isalnum(ch) ? static_cast<char>(std::toupper(ch)) : '_';
    return n;
}

std::string arg_text(const json& v) { return v.is_string() ? v.get<std::string>() : dump(v); }

std::string record_key(const std::string& client, const json& id) { return client + '\0' + dump(id); }

// Checks params against an interface's typed list: an object with those
// names, or an array in their order. Empty when they fit, else why not.
// A value of type t, or a reference standing for a string.
bool fits(const json& v, const std::string& t) {
    if (type_matches(v, t)) return true;
    std::string_view base = t;
    if (base.ends_with('?')) base.remove_suffix(1);
    return (base == "string" || base == "json") && ref_of(v).has_value();
}

std::string params_mismatch(const method& m, const json& params) {
    if (!m.params.is_array()) return {};
    const auto& spec = m.params;
    auto optional = [](const json& p) { return p["type"].get<std::string>().ends_with('?'); };
    if (params.is_null()) {
        for (const auto& p : spec)
            if (!optional(p)) return fmt::format("missing param '{}'", p["name"].get<std::string>());
        return {};
    }
    if (params.is_array()) {
        if (params.size() > spec.size()) return fmt::format("{} params given, {} expected", params.size(), spec.size());
        for (std::size_t i = 0; i < spec.size(); ++i) {
            std::string n = spec[i]["name"], t = spec[i]["type"];
            if (i >= params.size()) {
                if (!optional(spec[i])) return fmt::format("missing param '{}'", n);
                continue;
            }
            if (!fits(params[i], t)) return fmt::format("param '{}' must be of type {}", n, t);
        }
        return {};
    }
    for (auto it = params.begin(); it != params.end(); ++it) {
        bool known = false;
        for (const auto& p : spec) known = known || p["name"] == it.key();
        if (!known) return fmt::format("unknown param '{}'", it.key());
    }
    for (const auto& p : spec) {
        std::string n = p["name"], t = p["type"];
        auto it = params.find(n);
        if (it == params.end()) {
            if (!optional(p)) return fmt::format("missing param '{}'", n);
            continue;
        }
        if (!fits(*it, t)) return fmt::format("param '{}' must be of type {}", n, t);
    }
    return {};
}

} // namespace

struct server_access {
    static call make(const request& q, const extension& x, std::shared_ptr<call_state> st, const std::shared_ptr<link>& l,
                     const std::vector<std::string>& callbacks) {
        call c;
        c.link_ = l;
        c.callbacks_ = callbacks;
        c.req_ = &q;
        c.client_ = x.client;
        c.state_ = std::move(st);
        c.pid_ = l->pid;
        c.uid_ = l->uid;
        c.transport_ = l->transport();
        c.conn_ = l->number;
        return c;
    }
};

json callback_ref::operator()(const json& params) const { return call_->call_back(name_, params); }

json call::call_back(const std::string& name, const json& params, std::chrono::nanoseconds timeout) const {
    if (std::find(callbacks_.begin(), callbacks_.end(), name) == callbacks_.end())
        throw usage_error(fmt::format("the caller named no callback '{}' in its params", name));
    auto* l = static_cast<link*>(link_.get());
    return l->call_back(name, params, timeout, *static_cast<call_state*>(state_.get()));
}

bool call::cancelled() const { return state_ && static_cast<call_state*>(state_.get())->cancelled.load(); }
int call::cancel_fd() const { return state_ ? static_cast<call_state*>(state_.get())->fd() : -1; }

struct server::impl {
    listener l;
    server_options o;
    bool udp;
    unique_fd stop_r, stop_w;
    detail::reply_store store;
    std::mutex qmu;
    std::condition_variable qcv;
    std::deque<job> queue;
    bool quit = false;
    std::vector<std::thread> threads;
    std::mutex lmu;
    std::vector<std::shared_ptr<conn>> conns;  // under lmu: connections being read
    std::vector<std::thread> finished;          // under lmu: readers done, to join
    std::uint64_t next_conn = 0;
    clock::time_point accept_paused_until{};
    std::mutex imu;
    std::map<std::string, inflight> running;                 // under imu: recorded calls in flight
    std::vector<std::weak_ptr<call_state>> leased;           // under imu: calls with a lease

    impl(listener li, server_options opts)
        : l(std::move(li)), o(std::move(opts)), udp(l.where().type == parse::endpoint::kind::udp),
          store(o.state_dir, o.reply_cache) {
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
        for (const auto& m : o.methods) {
            json d = {{"name", m.name}};
            if (m.params.is_array()) d["params"] = m.params;
            else if (!m.argv.empty())
                d["params"] = "an array (its elements are appended to the command's arguments) or an object (as "
                              "IPC_RPC_PARAM_<KEY> variables); all of it as JSON on stdin";
            else d["params"] = "any";
            if (m.result.is_string()) d["result"] = m.result;
            else if (!m.argv.empty()) d["result"] = "the command's standard output: JSON when it parses, else a string";
            else d["result"] = "any";
            d["idempotent"] = m.idempotent;
            d["run_to_completion"] = m.run_to_completion;
            if (!m.doc.empty()) d["doc"] = m.doc;
            methods.push_back(std::move(d));
        }
        methods.push_back({{"name", "rpc.describe"}, {"params", "none"}, {"result", "this description"}, {"idempotent", true}, {"run_to_completion", false}});
        json d = {{"server", "ipc-rpc"}, {"protocol", "JSON-RPC 2.0"}, {"version", o.api_version}, {"methods", methods}};
        if (!o.interface_name.empty()) d["interface"] = o.interface_name;
        d["encodings"] = json::array({"json", "cbor", "msgpack"});
        d["durable"] = store.durable();
        return d;
    }

    void deliver(const std::shared_ptr<link>& c, const std::shared_ptr<batch>& b, json response) {
        if (b) {
            std::lock_guard lock(b->mu);
            if (!response.is_null()) b->responses.push_back(std::move(response));
            if (--b->pending == 0 && !b->responses.empty()) c->send(b->responses);
            return;
        }
        if (!response.is_null()) c->send(response);
    }

    const method* find(const std::string& name) const {
        for (const auto& m : o.methods)
            if (m.name == name) return &m;
        return nullptr;
    }

    // rpc.renew: over a stream any message renews the connection's calls;
    // over UDP it names the calls ({"client", "ids"}).
    void renew(const json& params) {
        if (!params.is_object() || !params.contains("client") || !params["client"].is_string() || !params.contains("ids") ||
            !params["ids"].is_array())
            return;
        std::lock_guard lock(imu);
        for (const auto& id : params["ids"])
            if (auto it = running.find(record_key(params["client"], id)); it != running.end()) it->second.st->renew();
    }

    void dispatch(const std::shared_ptr<link>& c, const std::shared_ptr<batch>& b, const json& v) {
        auto checked = validate_request(v);
        if (auto* err = std::get_if<json>(&checked)) return deliver(c, b, std::move(*err));
        auto& q = std::get<request>(checked);
        auto reply = [&](json r) { deliver(c, b, q.notification() ? json() : std::move(r)); };
        auto refuse = [&](int code, std::string msg, json data = nullptr) {
            reply(error_response(q.id ? *q.id : json(), code, std::move(msg), std::move(data)));
        };
        if (q.method == "rpc.describe") {
            if (!q.params.is_null() && !q.params.empty()) return refuse(code::invalid_params, "rpc.describe takes no params");
            return reply(result_response(*q.id, describe()));
        }
        if (q.method == "rpc.renew") {
            renew(q.params);
            return reply(q.id ? result_response(*q.id, nullptr) : json());
        }
        if (q.method == "rpc.replies") {
            if (!q.params.is_object() || !q.params.contains("client") || !q.params["client"].is_string())
                return refuse(code::invalid_params, "rpc.replies takes {\"client\": ID}");
            return reply(q.id ? result_response(*q.id, store.of_client(q.params["client"])) : json());
        }
        const method* m = find(q.method);
        if (!m) return refuse(code::method_not_found, fmt::format("Method not found: '{}'", q.method));
        if (auto why = params_mismatch(*m, q.params); !why.empty()) return refuse(code::invalid_params, "Invalid params: " + why);
        // With an interface, positional params are named by it: a command
        // always finds IPC_RPC_PARAM_<NAME> and an object on stdin.
        if (m->params.is_array() && q.params.is_array()) {
            json named = json::object();
            for (std::size_t i = 0; i < q.params.size(); ++i) named[m->params[i]["name"].get<std::string>()] = q.params[i];
            q.params = std::move(named);
        }
        auto x = extension_of(v);
        if (x.durable && !store.durable())
            return refuse(code::no_durable_store, "exactly-once needs a server that records replies durably (serve --state DIR)");
        auto st = std::make_shared<call_state>();
        st->lease = x.lease;
        st->to_completion = m->run_to_completion;
        bool keyed = !x.client.empty() && q.id.has_value();
        if (keyed) {
            std::unique_lock lock(imu);
            auto k = record_key(x.client, *q.id);
            if (auto it = running.find(k); it != running.end()) {
                // A resend of a call still running: it renews the call's
                // lease, and the reply goes here too.
                it->second.st->renew();
                if (!b && it->second.waiters.end() == std::find(it->second.waiters.begin(), it->second.waiters.end(), c))
                    it->second.waiters.push_back(c);
                if (b) deliver(c, b, json());
                return;
            }
            detail::reply_store::found f;
            try {
                f = store.begin(x.client, *q.id, q.method, x.durable);
            } catch (const detail::reply_store::full& e) {
                lock.unlock();
                return refuse(code::store_full, std::string("Server busy: ") + e.what());
            } catch (const std::exception& e) {
                lock.unlock();
                return refuse(code::internal_error, std::string("cannot record the call: ") + e.what());
            }
            switch (f.st) {
            case detail::reply_store::state::done:
                lock.unlock();
                if (f.reply.is_object()) f.reply["id"] = *q.id;
                return reply(std::move(f.reply));
            case detail::reply_store::state::unknown:
            case detail::reply_store::state::running:
                lock.unlock();
                return refuse(code::outcome_unknown,
                              "Outcome unknown: this call started before the server stopped and its reply was never "
                              "recorded; it is not run again");
            case detail::reply_store::state::fresh: break;
            }
            running[k] = inflight{st, {}};
        }
        // A notification has no caller waiting for it: nothing orphans it.
        if (st->lease && q.id) {
            std::lock_guard lock(imu);
            std::erase_if(leased, [](const auto& w) { return w.expired(); });
            leased.push_back(st);
        }
        std::vector<std::string> callbacks;
        if (q.params.is_object() || q.params.is_array())
            for (const auto& e : q.params)
                if (auto cb = callback_of(e)) callbacks.push_back(*cb);
        if (m->fn && m->quick && callbacks.empty()) {
            // A handler that never blocks: run here, with no worker woken.
            // (One with callbacks waits for answers that only this thread
            // reads: it goes to a worker.)
            job j{c, b, m, std::move(q), std::move(x), std::move(st), keyed, {}};
            return complete(j);
        }
        if (auto* sc = dynamic_cast<conn*>(c.get()); sc && q.id) sc->track(st);
        {
            std::unique_lock lock(qmu);
            if (queue.size() < o.max_queued) {
                queue.push_back(job{c, b, m, std::move(q), std::move(x), std::move(st), keyed, std::move(callbacks)});
                // Woken after the unlock: a worker woken under the lock
                // would block on it at once (two more system calls a call).
                lock.unlock();
                qcv.notify_one();
                return;
            }
        }
        if (keyed) {
            std::lock_guard lock(imu);
            running.erase(record_key(x.client, *q.id));
            store.abandon(x.client, *q.id);
        }
        refuse(code::server_busy, fmt::format("Server busy: {} calls are waiting", o.max_queued));
    }

    void handle_message(const std::shared_ptr<link>& c, const std::optional<json>& v) {
        // A response from the caller answers a callback.
        if (v && v->is_object() && !v->contains("method") && (v->contains("result") || v->contains("error")) && c->take_response(*v))
            return;
        if (!v) return deliver(c, nullptr, error_response(nullptr, code::parse_error, "Parse error: the request is not valid JSON, CBOR or MessagePack"));
        if (v->is_array()) {
            if (v->empty()) return deliver(c, nullptr, error_response(nullptr, code::invalid_request, "an empty batch"));
            auto b = std::make_shared<batch>();
            b->pending = v->size();
            for (const auto& e : *v) dispatch(c, b, e);
            return;
        }
        dispatch(c, nullptr, *v);
    }

    void handle_payload(const std::shared_ptr<conn>& c, const std::string& payload) {
        auto enc = c->reader.enc().value_or(encoding::json);
        if (enc == encoding::json && payload.find_first_not_of(" \t\r") == std::string::npos) return;
        handle_message(c, decode_binary(payload, enc));
    }

    // Runs one call's command: returns its response (for a notification too;
    // the caller drops it).
    // Opens the by-reference params of a call: for a command, each becomes
    // a descriptor it inherits (from 3 up) and the path /dev/fd/N; for a C++
    // handler, its bytes. A string: why they cannot be had.
    std::string take_refs(job& j, std::vector<unique_fd>& fds) {
        auto one = [&](json& v) -> std::string {
            auto r = ref_of(v);
            if (!r) return {};
            if (j.l->transport() != "unix" || j.l->uid == static_cast<uid_t>(-1))
                return "by-reference params need a caller on a Unix socket (its uid must own the segment)";
            try {
                auto fd = open_ref(*r, j.l->uid);
                if (j.m->fn) v = read_ref(fd.get());
                else {
                    v["path"] = fmt::format("/dev/fd/{}", 3 + fds.size());
                    fds.push_back(std::move(fd));
                }
            } catch (const std::exception& e) {
                return e.what();
            }
            return {};
        };
        auto& p = j.req.params;
        if (p.is_object() || p.is_array())
            for (auto& v : p)
                if (auto why = one(v); !why.empty()) return why;
        return {};
    }

    // Relays one request from a call's command (ipc-rpc call
    // "$IPC_RPC_CALLBACK" NAME ...) to the caller, and its answer back.
    void relay_callback(int fd, const job& j) {
        try {
            auto until = deadline::after(std::chrono::seconds(60));
            json v = receive(fd, o.max_request, until);
            auto checked = validate_request(v);
            if (auto* err = std::get_if<json>(&checked)) return send(fd, *err, until);
            auto& q = std::get<request>(checked);
            json id = q.id ? *q.id : json();
            json reply;
            if (std::find(j.callbacks.begin(), j.callbacks.end(), q.method) == j.callbacks.end())
                reply = error_response(id, code::method_not_found, fmt::format("the caller named no callback '{}'", q.method));
            else {
                try {
                    reply = result_response(id, j.l->call_back(q.method, q.params, std::chrono::seconds(60), *j.st));
                } catch (const remote_error& e) {
                    reply = json{{"jsonrpc", "2.0"}, {"error", e.object()}, {"id", id}};
                } catch (const std::exception& e) {
                    reply = error_response(id, code::internal_error, e.what());
                }
            }
            if (q.id) send(fd, reply, until);
        } catch (const std::exception&) {
            // The command went away or sent garbage: nothing to answer.
        }
    }

    json execute(job& j, std::vector<unique_fd>& refs) {
        const method& m = *j.m;
        const request& q = j.req;
        call_state& st = *j.st;
        json id = q.id ? *q.id : json();
        auto fail = [&](int c, std::string msg, json data = nullptr) { return error_response(id, c, std::move(msg), std::move(data)); };
        int in[2], out[2], err[2];
        if (::pipe2(in, O_CLOEXEC) != 0) return fail(code::internal_error, "cannot create a pipe");
        unique_fd in_r(in[0]), in_w(in[1]);
        if (::pipe2(out, O_CLOEXEC) != 0) return fail(code::internal_error, "cannot create a pipe");
        unique_fd out_r(out[0]), out_w(out[1]);
        if (::pipe2(err, O_CLOEXEC) != 0) return fail(code::internal_error, "cannot create a pipe");
        unique_fd err_r(err[0]), err_w(err[1]);

        // A reference is its path; a value over 64 KiB is not put in the
        // environment (the kernel refuses one string over 128 KiB): the
        // command reads it from its standard input.
        auto text = [](const json& v) {
            if (auto cb = callback_of(v)) return *cb;  // a callback is its name
            return ref_of(v) ? v["path"].get<std::string>() : arg_text(v);
        };
        std::vector<std::string> args = m.argv;
        if (q.params.is_array())
            for (const auto& e : q.params) args.push_back(text(e));
        std::vector<std::string> env;
        // The server's environment, less the variables it sets per call.
        for (char** e = environ; *e; ++e) {
            std::string_view v = *e;
            bool ours = v.starts_with("IPC_RPC_PARAM") || v.starts_with("IPC_RPC_METHOD=") || v.starts_with("IPC_RPC_ID=") ||
                        v.starts_with("IPC_RPC_CALLBACK=");
            if (!ours) env.emplace_back(v);
        }
        env.push_back("IPC_RPC_METHOD=" + q.method);
        if (q.id) env.push_back("IPC_RPC_ID=" + dump(*q.id));
        // Callbacks: a private socket the command calls through.
        unique_fd relay;
        if (!j.callbacks.empty()) {
            static std::atomic<unsigned> relays{0};
            auto ep = parse::socket_endpoint(fmt::format("unix:@ipc-rpc.callback.{}.{}", ::getpid(), ++relays));
            try {
                listener l(ep, 0600);
                relay.reset(::fcntl(l.fd(), F_DUPFD_CLOEXEC, 0));
            } catch (const std::exception& e) {
                return fail(code::internal_error, fmt::format("cannot make the callback socket: {}", e.what()));
            }
            env.push_back("IPC_RPC_CALLBACK=" + ep.str());
        }
        std::vector<std::thread> relays;
        std::vector<int> relay_fds;
        struct join_relays {
            std::vector<std::thread>& t;
            std::vector<int>& fds;
            ~join_relays() {
                for (int fd : fds) ::shutdown(fd, SHUT_RDWR);
                for (auto& x : t) x.join();
                for (int fd : fds) ::close(fd);
            }
        } joiner{relays, relay_fds};
        std::string input = dump(q.params) + "\n";  // made once: for a large value, the costliest step
        if (input.size() <= 64 * 1024) env.push_back("IPC_RPC_PARAMS=" + input.substr(0, input.size() - 1));
        if (q.params.is_object())
            for (auto it = q.params.begin(); it != q.params.end(); ++it) {
                if (it.value().is_null()) continue;
                auto t = text(it.value());
                if (t.size() <= 64 * 1024) env.push_back(env_name(it.key()) + "=" + t);
            }
        std::vector<char*> argv, envp;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        for (auto& e : env) envp.push_back(e.data());
        envp.push_back(nullptr);

        // fork and exec rather than posix_spawn, for what the children set
        // up themselves. The server's child is a guardian: it leads a new
        // process group (so the time limit and cancellation kill all of
        // it), forks the command into that group, and waits. When the
        // server dies, even by SIGKILL, the kernel sends the guardian SIGTERM
        // (PR_SET_PDEATHSIG) and it kills its whole group, the processes the
        // command started included; the command ending, it ends the same
        // way (exit status or signal). The command itself gets no blocked
        // signals, default dispositions, and death with the guardian. Only
        // async-signal-safe calls after fork.
        int ep[2];
        if (::pipe2(ep, O_CLOEXEC) != 0) return fail(code::internal_error, "cannot create a pipe");
        unique_fd exec_r(ep[0]), exec_w(ep[1]);
        // What the child moves to 3, 4... must not sit there already.
        auto high = [](unique_fd& fd) {
            int h = ::fcntl(fd.get(), F_DUPFD_CLOEXEC, 64);
            if (h >= 0) fd.reset(h);
        };
        high(exec_w);
        for (auto& r : refs) high(r);
        pid_t parent = ::getpid();
        pid_t pid = ::fork();
        if (pid < 0) return fail(code::internal_error, fmt::format("cannot start '{}': {}", m.argv[0], std::strerror(errno)));
        if (pid == 0) {
            ::setpgid(0, 0);
            sigset_t watch;
            sigemptyset(&watch);
            sigaddset(&watch, SIGTERM);
            sigaddset(&watch, SIGCHLD);
            ::sigprocmask(SIG_BLOCK, &watch, nullptr);
            ::prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (::getppid() != parent) ::_exit(127);
            pid_t guardian = ::getpid();
            pid_t cmd = ::fork();
            if (cmd == 0) {
                ::prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (::getppid() != guardian) ::_exit(127);
                struct sigaction dfl{};
                dfl.sa_handler = SIG_DFL;
                for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD}) ::sigaction(sig, &dfl, nullptr);
                sigset_t none;
                sigemptyset(&none);
                ::sigprocmask(SIG_SETMASK, &none, nullptr);
                if (::dup2(in_r.get(), 0) < 0 || ::dup2(out_w.get(), 1) < 0 || ::dup2(err_w.get(), 2) < 0) ::_exit(127);
                for (std::size_t i = 0; i < refs.size(); ++i)
                    if (::dup2(refs[i].get(), static_cast<int>(3 + i)) < 0) ::_exit(127);
                ::execvpe(argv[0], argv.data(), envp.data());
                int e = errno;
                [[maybe_unused]] auto w = ::write(exec_w.get(), &e, sizeof e);
                ::_exit(127);
            }
            if (cmd < 0) {
                int e = errno;
                [[maybe_unused]] auto w = ::write(exec_w.get(), &e, sizeof e);
                ::_exit(127);
            }
            guard(cmd);
        }
        exec_w.reset();
        // Readable when the command exits (Linux 5.3 and later; without it,
        // its exit is looked for every 10 ms).
        unique_fd exited(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
        int cancel_fd = st.fd();
        int rc = 0;
        if (::read(exec_r.get(), &rc, sizeof rc) == static_cast<ssize_t>(sizeof rc)) {
            int ignored;
            while (::waitpid(pid, &ignored, 0) < 0 && errno == EINTR) {
            }
            return fail(code::command_failed, fmt::format("cannot run '{}': {}", m.argv[0], std::strerror(rc)),
                        {{"exit_status", 127}, {"stderr", ""}});
        }
        in_r.reset();
        out_w.reset();
        err_w.reset();
        set_nonblocking(in_w.get(), true);
        set_nonblocking(out_r.get(), true);
        set_nonblocking(err_r.get(), true);

        std::string output, errors;
        std::size_t written = 0;
        constexpr std::size_t max_stderr = 64 * 1024;
        auto until = deadline::from(o.call_timeout);
        enum class end { normal, timed_out, too_large, stopped, cancelled } how = end::normal;
        char buf[65536];
        auto interrupted_by = [&](const pollfd& stop, const pollfd& cancel) {
            if (stop.revents) how = end::stopped;
            else if (cancel.revents) how = end::cancelled;
            return how != end::normal;
        };
        while (out_r || err_r) {
            pollfd p[6] = {{stop_r.get(), POLLIN, 0}, {cancel_fd, POLLIN, 0}, {out_r.get(), POLLIN, 0},
                           {err_r.get(), POLLIN, 0}, {relay ? relay.get() : -1, POLLIN, 0}, {in_w.get(), POLLOUT, 0}};
            auto left = until.remaining();
            int ms = left ? static_cast<int>(std::min<long long>(
                                std::chrono::duration_cast<std::chrono::milliseconds>(*left).count() + 1, 1000))
                          : 1000;
            int r = ::poll(p, in_w ? 6 : 5, ms);
            if (r < 0 && errno != EINTR) break;
            if (interrupted_by(p[0], p[1])) break;
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
            drain(out_r, output, p[2].revents, o.max_output + 1);
            drain(err_r, errors, p[3].revents, max_stderr);
            if (how == end::too_large) break;
            if (p[4].revents) {
                int c = ::accept4(relay.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
                ucred cr{};
                socklen_t cl = sizeof cr;
                // Only this server's user: its commands.
                if (c >= 0 && ::getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0 && cr.uid == ::geteuid()) {
                    relay_fds.push_back(c);
                    relays.emplace_back([this, c, &j] { relay_callback(c, j); });
                } else if (c >= 0) ::close(c);
            }
            if (in_w && p[5].revents) {
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
                pollfd sp[3] = {{stop_r.get(), POLLIN, 0}, {cancel_fd, POLLIN, 0}, {exited.get(), POLLIN, 0}};
                int ms = 10;
                if (exited) {
                    auto left = until.remaining();
                    ms = left ? static_cast<int>(std::min<long long>(
                                    std::chrono::duration_cast<std::chrono::milliseconds>(*left).count() + 1, 1000))
                              : 1000;
                }
                if (::poll(sp, 3, ms) > 0 && interrupted_by(sp[0], sp[1])) break;
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
        case end::stopped:
            return fail(code::outcome_unknown, "Outcome unknown: the server stopped while the call ran; its command was killed");
        case end::cancelled:
            return fail(code::outcome_unknown,
                        "Outcome unknown: the caller went away while the call ran; its command was killed");
        case end::normal: break;
        }
        if (WIFSIGNALED(status))
            return fail(code::command_failed, fmt::format("method '{}' was killed by signal {}", m.name, WTERMSIG(status)),
                        {{"signal", WTERMSIG(status)}, {"stderr", errors}});
        int stc = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
        if (stc != 0)
            return fail(code::command_failed, fmt::format("method '{}' failed with exit status {}", m.name, stc),
                        {{"exit_status", stc}, {"stderr", errors}});
        if (output.find_first_not_of(" \t\r\n") == std::string::npos) return result_response(id, nullptr);
        if (auto v = parse_json(output); v && numbers_exact(*v)) return result_response(id, std::move(*v));
        if (output.ends_with('\n')) output.pop_back();
        return result_response(id, output);
    }

    // The guardian's part (a forked child of a multithreaded process: only
    // async-signal-safe calls). It holds none of the server's descriptors,
    // so that no pipe or socket stays open because of it.
    [[noreturn]] static void guard(pid_t cmd) {
        if (::syscall(SYS_close_range, 0u, ~0u, 0u) != 0)
            for (int fd = 0; fd < 65536; ++fd) ::close(fd);
        ::prctl(PR_SET_DUMPABLE, 0);  // a command's crash is mirrored without a second core
        sigset_t watch;
        sigemptyset(&watch);
        sigaddset(&watch, SIGTERM);
        sigaddset(&watch, SIGCHLD);
        for (;;) {
            int sig = ::sigwaitinfo(&watch, nullptr);
            if (sig == SIGTERM) {
                // The server is gone (or the group was told to stop): all of it goes.
                ::kill(0, SIGKILL);
                ::_exit(137);
            }
            if (sig != SIGCHLD) continue;
            int st = 0;
            pid_t w = ::waitpid(cmd, &st, WNOHANG);
            if (w != cmd) continue;
            if (WIFEXITED(st)) ::_exit(WEXITSTATUS(st));
            if (WIFSIGNALED(st)) {
                int s = WTERMSIG(st);
                struct sigaction dfl{};
                dfl.sa_handler = SIG_DFL;
                ::sigaction(s, &dfl, nullptr);
                sigset_t only;
                sigemptyset(&only);
                sigaddset(&only, s);
                ::sigprocmask(SIG_UNBLOCK, &only, nullptr);
                ::kill(::getpid(), s);
                ::_exit(128 + s);
            }
        }
    }

    json run_handler(const job& j) {
        json id = j.req.id ? *j.req.id : json();
        auto c = server_access::make(j.req, j.x, j.st, j.l, j.callbacks);
        try {
            json result = j.m->fn(c);
            if (!numbers_exact(result)) return error_response(id, code::internal_error, "the result holds a number that would be rounded");
            return result_response(id, std::move(result));
        } catch (const remote_error& e) {
            json obj = e.object();
            return json{{"jsonrpc", "2.0"}, {"error", obj}, {"id", id}};
        } catch (const std::exception& e) {
            return error_response(id, code::internal_error, e.what());
        }
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
            complete(j);
        }
    }

    // Runs a call and answers it (a worker's job, or a quick method's on the
    // thread that read it).
    void complete(job& j) {
        std::vector<unique_fd> refs;
        json r;
        if (auto why = take_refs(j, refs); !why.empty())
            r = error_response(j.req.id ? *j.req.id : json(), code::invalid_params, "Invalid params: " + why);
        else r = j.m->fn ? run_handler(j) : execute(j, refs);
        refs.clear();
        std::vector<std::shared_ptr<link>> waiters;
        if (j.keyed) {
            try {
                store.finish(j.x.client, *j.req.id, r);
            } catch (const std::exception& e) {
                r = error_response(*j.req.id, code::outcome_unknown,
                                   fmt::format("Outcome unknown: the call ran but its reply could not be recorded: {}", e.what()));
            }
            std::lock_guard lock(imu);
            auto it = running.find(record_key(j.x.client, *j.req.id));
            if (it != running.end()) {
                waiters = std::move(it->second.waiters);
                running.erase(it);
            }
        }
        if (!j.req.notification())
            for (const auto& w : waiters) w->send(r);
        deliver(j.l, j.b, j.req.notification() ? json() : std::move(r));
    }

    // A path socket's mode decides who may connect, unless --allow-uid or
    // --allow-gid is given; an abstract socket has no mode, so without them
    // it admits the server's own user only.
    bool admitted(conn& c, json& refusal) {
        bool abstract = l.where().type == parse::endpoint::kind::unix_abstract;
        ucred cr{};
        socklen_t len = sizeof cr;
        bool known = ::getsockopt(c.fd.get(), SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0;
        if (known) {
            c.pid = cr.pid;
            c.uid = cr.uid;
        }
        if (o.allow_uids.empty() && o.allow_gids.empty() && !abstract) return true;
        if (!known) {
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
        c->send(why);
        c->discarding = true;
        ::shutdown(c->fd.get(), SHUT_WR);
    }

    void accept_all() {
        bool is_unix = l.where().type == parse::endpoint::kind::unix_path ||
                       l.where().type == parse::endpoint::kind::unix_abstract;
        for (;;) {
            {
                std::lock_guard lock(lmu);
                if (conns.size() >= o.max_connections) return;
            }
            unique_fd fd(::accept4(l.fd(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
            if (!fd) {
                // Out of descriptors or memory: the connection stays queued
                // and the listener stays readable; look again in 100 ms
                // rather than spin. (EAGAIN, or a connection that went away:
                // nothing to do.)
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                    accept_paused_until = clock::now() + std::chrono::milliseconds(100);
                return;
            }
            // The reader blocks in recv(2); writers pass MSG_DONTWAIT.
            try {
                set_nonblocking(fd.get(), false);
            } catch (const std::exception&) {
                continue;  // the connection is closed
            }
            if (!is_unix) {
                int one = 1;
                ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            }
            auto c = std::make_shared<conn>(std::move(fd), o.max_request, !is_unix);
            c->number = ++next_conn;
            json refusal;
            if (is_unix && !admitted(*c, refusal)) refuse(c, refusal);
            std::lock_guard lock(lmu);
            conns.push_back(c);
            try {
                c->thread = std::thread([this, c] { read_conn(c); });
            } catch (const std::system_error&) {
                // No thread to be had: the connection is closed.
                conns.pop_back();
                return;
            }
        }
    }

    // A connection's reader: blocking reads until the client is done, then
    // it leaves the list and its thread waits to be joined.
    void read_conn(const std::shared_ptr<conn>& c) {
        sigset_t pipe_only;
        sigemptyset(&pipe_only);
        sigaddset(&pipe_only, SIGPIPE);
        ::pthread_sigmask(SIG_BLOCK, &pipe_only, nullptr);  // SIGINT and SIGTERM are blocked already
        std::vector<char> buf(65536);
        for (;;) {
            if (c->eof) {
                // Half-closed: kept only to see the client leave while its
                // calls run (a Unix peer that closes says POLLHUP).
                if (c->in_flight() == 0) break;
                pollfd p{c->fd.get(), 0, 0};
                if (::poll(&p, 1, 100) > 0 && (p.revents & (POLLHUP | POLLERR))) {
                    c->gone();
                    break;
                }
                continue;
            }
            ssize_t n = ::recv(c->fd.get(), buf.data(), buf.size(), 0);
            if (n < 0 && errno == EINTR) continue;
            short revents = 0;
            if (n == 0 && !c->tcp) {
                pollfd p{c->fd.get(), 0, 0};
                if (::poll(&p, 1, 0) > 0) revents = p.revents;
            }
            if (!took(c, buf.data(), n, revents)) break;
        }
        {
            std::lock_guard lock(lmu);
            std::erase(conns, c);
            finished.push_back(std::move(c->thread));
        }
        if (o.on_disconnect) o.on_disconnect(c->number);
    }

    // Takes the result of one read (n bytes, 0 at the end, < 0 an error
    // with errno); false when the connection is done.
    bool took(const std::shared_ptr<conn>& c, const char* buf, ssize_t n, short revents) {
        if (n < 0) {
            if (errno == EAGAIN) return true;
            c->gone();
            return false;
        }
        c->heard.store(clock::now().time_since_epoch().count(), std::memory_order_relaxed);
        if (c->discarding) return n > 0;
        if (n == 0) {
            // Over TCP a close and a half-close look alike: either way the
            // client sends no more, and its calls are orphans (a client that
            // waits for replies keeps its side open). Over a Unix socket
            // only POLLHUP says the peer closed.
            if (c->tcp || (revents & POLLHUP)) c->gone();
            // A last request without its newline is still a request; a
            // half-sent binary frame is dropped.
            std::string rest = c->reader.rest();
            auto enc = c->reader.enc().value_or(encoding::json);
            if (enc == encoding::json) {
                if (rest.size() > o.max_request)
                    c->send(error_response(nullptr, code::request_too_large, fmt::format("Request over {} bytes", o.max_request)));
                else handle_payload(c, rest);
            }
            c->eof = true;
            return !c->tcp && !(revents & POLLHUP) && c->in_flight() > 0;
        }
        c->reader.feed(buf, static_cast<std::size_t>(n));
        std::string payload;
        for (;;) {
            auto st = c->reader.next(payload);
            if (st == frame_reader::status::need_more) return true;
            if (st == frame_reader::status::too_long) {
                refuse(c, error_response(nullptr, code::request_too_large,
                                         fmt::format("Request over {} bytes", o.max_request),
                                         {{"max_request_bytes", o.max_request}}));
                c->reader.rest();
                return true;
            }
            handle_payload(c, payload);
        }
    }

    void read_datagrams() {
        std::vector<char> buf(65536);
        for (int i = 0; i < 64; ++i) {
            auto peer = std::make_shared<datagram_peer>(l.fd());
            peer->len = sizeof peer->addr;
            ssize_t n = ::recvfrom(l.fd(), buf.data(), buf.size(), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&peer->addr), &peer->len);
            if (n < 0) return;
            if (static_cast<std::size_t>(n) > o.max_request) {
                peer->send(error_response(nullptr, code::request_too_large, fmt::format("Request over {} bytes", o.max_request)));
                continue;
            }
            auto v = from_datagram(std::string_view(buf.data(), static_cast<std::size_t>(n)), peer->enc);
            handle_message(peer, v);
        }
    }

    // Leases, idle connections, readers to join: looked at every 100 ms.
    void housekeeping() {
        auto now = clock::now();
        std::vector<std::shared_ptr<conn>> list;
        std::vector<std::thread> done;
        {
            std::lock_guard lock(lmu);
            list = conns;
            done.swap(finished);
        }
        for (auto& t : done) t.join();
        // A stream connection's traffic renews its calls.
        for (auto& c : list) {
            auto heard = c->last_heard();
            std::lock_guard lock(c->cmu);
            for (auto& w : c->calls)
                if (auto st = w.lock(); st && st->lease && now - heard < *st->lease) st->renew();
        }
        {
            std::lock_guard lock(imu);
            std::erase_if(leased, [&](const std::weak_ptr<call_state>& w) {
                auto st = w.lock();
                if (!st) return true;
                if (st->lease_expired(now) && !st->to_completion) {
                    st->cancel();
                    return true;
                }
                return false;
            });
        }
        if (!o.idle_timeout) return;
        // Closed under its reader, which then leaves (and says so).
        for (auto& c : list)
            if (now - c->last_heard() >= *o.idle_timeout && c->in_flight() == 0) ::shutdown(c->fd.get(), SHUT_RDWR);
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
        // Workers and readers inherit the blocked mask: signals go to this thread only.
        for (unsigned i = 0; i < o.workers; ++i) threads.emplace_back([this] { worker(); });
        ::pthread_sigmask(SIG_SETMASK, &before_workers, nullptr);
        int signo = 0;
        auto next_chores = clock::now();
        for (;;) {
            if ((signo = pending_interrupt()) != 0) break;
            auto now = clock::now();
            if (now >= next_chores) {
                housekeeping();
                next_chores = now + std::chrono::milliseconds(100);
            }
            bool paused = now < accept_paused_until;
            bool room = udp;
            if (!udp && !paused) {
                std::lock_guard lock(lmu);
                room = conns.size() < o.max_connections;
            }
            pollfd fds[2] = {{stop_r.get(), POLLIN, 0}, {room ? l.fd() : -1, POLLIN, 0}};
            auto wake = next_chores;
            if (paused) wake = std::min(wake, accept_paused_until);
            auto ns = std::max<long long>(0, std::chrono::duration_cast<std::chrono::nanoseconds>(wake - now).count());
            timespec left{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
            int r = ::ppoll(fds, 2, &left, &old);
            if (r < 0) {
                if (errno == EINTR) continue;
                break;
            }
            if (fds[0].revents) break;
            if (fds[1].revents) {
                if (udp) read_datagrams();
                else accept_all();
            }
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
        // Then the readers: each wakes at the end of its input and leaves.
        std::vector<std::thread> readers;
        {
            std::lock_guard lock(lmu);
            for (auto& c : conns) ::shutdown(c->fd.get(), SHUT_RDWR);
        }
        for (;;) {
            {
                std::lock_guard lock(lmu);
                for (auto& t : finished) readers.push_back(std::move(t));
                finished.clear();
                if (conns.empty()) break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        for (auto& t : readers) t.join();
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
