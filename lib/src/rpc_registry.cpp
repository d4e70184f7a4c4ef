// SPDX-License-Identifier: MIT
// Binding: the registry daemon (entries live as long as the registrant's
// connection), a registration kept alive by a thread, the configured
// services file, and name resolution for clients.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "ipc/error.hpp"
#include "ipc/rpc.hpp"

namespace ipc::rpc::registry {

namespace {

inline constexpr int no_such_service = -32010;

bool identifier(std::string_view s) {
    if (s.empty() || s.size() > 64) return false;
    for (char c : s)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') return false;
    return true;
}

// Dotted numbers compared numerically ("1.10" > "1.9"); non-numeric parts as text.
bool version_less(const std::string& a, const std::string& b) {
    std::size_t i = 0, j = 0;
    while (i < a.size() || j < b.size()) {
        auto ea = a.find('.', i), eb = b.find('.', j);
        std::string_view pa = i < a.size() ? std::string_view(a).substr(i, ea == std::string::npos ? std::string::npos : ea - i) : "";
        std::string_view pb = j < b.size() ? std::string_view(b).substr(j, eb == std::string::npos ? std::string::npos : eb - j) : "";
        unsigned long na = 0, nb = 0;
        auto ra = std::from_chars(pa.data(), pa.data() + pa.size(), na);
        auto rb = std::from_chars(pb.data(), pb.data() + pb.size(), nb);
        bool numa = ra.ec == std::errc() && ra.ptr == pa.data() + pa.size();
        bool numb = rb.ec == std::errc() && rb.ptr == pb.data() + pb.size();
        if (numa && numb) {
            if (na != nb) return na < nb;
        } else if (pa != pb) return pa < pb;
        i = ea == std::string::npos ? a.size() : ea + 1;
        j = eb == std::string::npos ? b.size() : eb + 1;
    }
    return false;
}

std::string now_text() {
    auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

} // namespace

parse::endpoint default_endpoint() {
    if (const char* e = std::getenv("IPC_RPC_REGISTRY"); e && *e) return parse::socket_endpoint(e);
    return parse::socket_endpoint(fmt::format("unix:@ipc-rpc.registry.{}", ::geteuid()));
}

std::pair<std::string, std::string> split_service(std::string_view text) {
    auto at = text.find('@');
    std::string name(text.substr(0, at)), version(at == std::string_view::npos ? "" : text.substr(at + 1));
    if (!identifier(name)) throw usage_error(fmt::format("invalid service name '{}': letters, digits, '_', '-' and '.' only", name));
    if (at != std::string_view::npos && (version.empty() || version == "="))
        throw usage_error(fmt::format("'{}': empty version after '@'", text));
    return {name, version};
}

std::optional<json> best_match(const json& entries, const std::string& name, const std::string& want) {
    std::optional<json> best;
    for (const auto& e : entries) {
        if (!e.is_object() || e.value("name", "") != name) continue;
        std::string v = e.value("version", "0");
        if (!want.empty() && !version_satisfies(v, want)) continue;
        if (!best || version_less(best->value("version", "0"), v)) best = e;
    }
    return best;
}

void serve(listener l, server_options base) {
    struct state {
        std::mutex mu;
        std::multimap<std::uint64_t, json> by_conn;  // connection -> entry
    };
    auto st = std::make_shared<state>();
    auto all = [st] {
        json out = json::array();
        std::lock_guard lock(st->mu);
        for (const auto& [c, e] : st->by_conn) out.push_back(e);
        return out;
    };
    server_options o = std::move(base);
    o.methods.clear();
    o.interface_name = "ipc_rpc_registry";
    o.api_version = "1.0";
    // Registrants renew every 10 s; a silent connection is dropped, and its
    // entries with it.
    o.idle_timeout = std::chrono::seconds(35);
    o.on_disconnect = [st](std::uint64_t conn) {
        std::lock_guard lock(st->mu);
        st->by_conn.erase(conn);
    };
    method reg;
    reg.name = "registry.register";
    reg.params = json::array({{{"name", "name"}, {"type", "string"}}, {{"name", "version"}, {"type", "string?"}},
                              {{"name", "endpoint"}, {"type", "string"}}});
    reg.result = "json";
    reg.doc = "Binds a service name and version to an endpoint for as long as this connection stays open";
    reg.fn = [st](call& c) -> json {
        if (c.connection() == 0) throw remote_error(error_object(code::invalid_request, "register over a stream connection (unix: or tcp:)"));
        const auto& p = c.req().params;
        auto get = [&](const char* k, std::size_t i) -> json {
            if (p.is_object()) return p.contains(k) ? p[k] : json();
            return i < p.size() ? p[i] : json();
        };
        std::string name = get("name", 0), ep = get("endpoint", 2);
        json v = get("version", 1);
        std::string version = v.is_string() ? v.get<std::string>() : "0";
        if (!identifier(name)) throw remote_error(error_object(code::invalid_params, "the name must be 1-64 letters, digits, '_', '-' or '.'"));
        try {
            parse::socket_endpoint(ep);
        } catch (const error& e) {
            throw remote_error(error_object(code::invalid_params, fmt::format("invalid endpoint: {}", e.what())));
        }
        json e = {{"name", name}, {"version", version}, {"endpoint", ep}, {"since", now_text()}};
        if (c.transport() == "unix" && c.peer_pid() > 0) {
            e["pid"] = c.peer_pid();
            e["uid"] = c.peer_uid();
        }
        e["transport"] = std::string(c.transport());
        std::lock_guard lock(st->mu);
        st->by_conn.emplace(c.connection(), e);
        return e;
    };
    method look;
    look.name = "registry.lookup";
    look.params = json::array({{{"name", "name"}, {"type", "string"}}, {{"name", "version"}, {"type", "string?"}}});
    look.idempotent = true;
    look.doc = "The entry of the highest registered version of name that satisfies version";
    look.fn = [all](call& c) -> json {
        const auto& p = c.req().params;
        std::string name = p.is_object() ? p.value("name", "") : p[0].get<std::string>();
        json v = p.is_object() ? p.value("version", json()) : (p.size() > 1 ? p[1] : json());
        std::string want = v.is_string() ? v.get<std::string>() : "";
        auto m = best_match(all(), name, want);
        if (!m)
            throw remote_error(error_object(no_such_service, fmt::format("no service '{}{}{}' is registered", name, want.empty() ? "" : "@", want)));
        return *m;
    };
    method list;
    list.name = "registry.list";
    list.params = json::array();
    list.idempotent = true;
    list.doc = "Every registered entry";
    list.fn = [all](call&) -> json { return all(); };
    o.methods = {reg, look, list};
    server s(std::move(l), std::move(o));
    s.run();
}

struct registration::impl {
    parse::endpoint reg;
    std::string name, version, endpoint;
    unique_fd stop_r, stop_w;
    std::thread t;

    json request() const {
        return make_request("registry.register", json{{"name", name}, {"version", version}, {"endpoint", endpoint}}, json(1));
    }

    // Connects and registers; the connection then holds the entry.
    unique_fd enrol() {
        auto until = deadline::after(std::chrono::seconds(5));
        auto fd = connect(reg, until);
        send(fd.get(), request(), until);
        auto reply = receive(fd.get(), max_reply, until);
        if (!valid_response(reply)) throw error(exit_code::protocol, "the registry's reply is not JSON-RPC 2.0");
        if (reply.contains("error"))
            throw error(exit_code::protocol, fmt::format("the registry refused: {}", reply["error"].value("message", std::string("?"))));
        return fd;
    }

    void keep(unique_fd fd) {
        for (;;) {
            pollfd p[2] = {{stop_r.get(), POLLIN, 0}, {fd ? fd.get() : -1, POLLIN, 0}};
            int r = ::poll(p, 2, fd ? 10000 : 1000);
            if (r < 0 && errno == EINTR) continue;
            if (p[0].revents) return;
            if (!fd) {
                try {
                    fd = enrol();
                } catch (const std::exception&) {
                }
                continue;
            }
            if (r == 0) {
                try {
                    send(fd.get(), make_request("rpc.renew", nullptr, std::nullopt), deadline::after(std::chrono::seconds(5)));
                } catch (const std::exception&) {
                    fd.reset();
                }
                continue;
            }
            char buf[4096];
            ssize_t n = ::read(fd.get(), buf, sizeof buf);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) fd.reset();  // the registry went away: enrol again
        }
    }
};

registration::registration(parse::endpoint reg, std::string name, std::string version, std::string endpoint)
    : impl_(std::make_unique<impl>()) {
    impl_->reg = std::move(reg);
    impl_->name = std::move(name);
    impl_->version = version.empty() ? "0" : std::move(version);
    impl_->endpoint = std::move(endpoint);
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) throw last_system_error("create", "pipe", "registration");
    impl_->stop_r.reset(p[0]);
    impl_->stop_w.reset(p[1]);
    auto fd = impl_->enrol();
    impl_->t = std::thread([this, f = std::move(fd)]() mutable {
        // The registration thread takes no signals: they are the server's.
        sigset_t all;
        sigfillset(&all);
        ::pthread_sigmask(SIG_BLOCK, &all, nullptr);
        impl_->keep(std::move(f));
    });
}

registration::~registration() {
    char c = 1;
    [[maybe_unused]] auto r = ::write(impl_->stop_w.get(), &c, 1);
    if (impl_->t.joinable()) impl_->t.join();
}

std::string default_services_file() {
    if (const char* e = std::getenv("IPC_RPC_SERVICES"); e && *e) return e;
    if (const char* x = std::getenv("XDG_CONFIG_HOME"); x && *x) return std::string(x) + "/ipc-rpc/services";
    if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.config/ipc-rpc/services";
    return {};
}

json read_services(const std::string& path) {
    json out = json::array();
    if (path.empty()) return out;
    std::ifstream in(path);
    if (!in) {
        if (errno == ENOENT) return out;
        throw system_error(errno, "open", "services file", path);
    }
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
        if (auto h = line.find('#'); h != std::string::npos) line.erase(h);
        auto b = line.find_first_not_of(" \t\r");
        if (b == std::string::npos) continue;
        auto sp = line.find_first_of(" \t", b);
        auto e = sp == std::string::npos ? std::string::npos : line.find_first_not_of(" \t", sp);
        if (e == std::string::npos) throw data_error(fmt::format("{}:{}: expected NAME[@VERSION] ENDPOINT", path, n));
        auto end = line.find_last_not_of(" \t\r");
        std::string svc = line.substr(b, sp - b), ep = line.substr(e, end + 1 - e);
        try {
            auto [name, version] = split_service(svc);
            parse::socket_endpoint(ep);
            out.push_back({{"name", name}, {"version", version.empty() ? "0" : version}, {"endpoint", ep}, {"source", path}});
        } catch (const error& x) {
            throw data_error(fmt::format("{}:{}: {}", path, n, x.what()));
        }
    }
    return out;
}

parse::endpoint resolve(std::string_view target, const std::string& services_file, const parse::endpoint& reg,
                        std::optional<std::chrono::nanoseconds> timeout) {
    if (target.starts_with("unix:") || target.starts_with("tcp:") || target.starts_with("udp:")) return parse::socket_endpoint(target);
    auto [name, version] = split_service(target);
    if (auto m = best_match(read_services(services_file), name, version)) return parse::socket_endpoint((*m)["endpoint"].get<std::string>());
    client_options co;
    co.timeout = timeout ? std::min<std::chrono::nanoseconds>(*timeout, std::chrono::seconds(10)) : std::chrono::seconds(10);
    client c(reg, co);
    json p = {{"name", name}};
    if (!version.empty()) p["version"] = version;
    try {
        auto e = c.call("registry.lookup", p);
        return parse::socket_endpoint(e.at("endpoint").get<std::string>());
    } catch (const remote_error& e) {
        if (e.code() == no_such_service)
            throw error(exit_code::no_object, fmt::format("no service '{}' in {} or the registry at {}", target,
                                                          services_file.empty() ? "the services file" : services_file, reg.str()));
        throw error(exit_code::protocol, fmt::format("the registry at {} refused the lookup: {}", reg.str(), e.what()));
    } catch (const error& e) {
        if (e.code() == exit_code::unavailable)
            throw error(exit_code::unavailable, fmt::format("service '{}' is not in {} and the registry at {} cannot be reached",
                                                            target, services_file.empty() ? "the services file" : services_file, reg.str()));
        throw;
    } catch (const std::exception& e) {
        throw error(exit_code::protocol, fmt::format("the registry at {} answered a malformed entry", reg.str()));
    }
}

} // namespace ipc::rpc::registry
