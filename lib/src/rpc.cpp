// SPDX-License-Identifier: MIT
// JSON-RPC 2.0: the message model, validation, line framing and the client.
#include "ipc/rpc.hpp"

#include <cerrno>
#include <cmath>
#include <cstring>

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <fmt/format.h>

#include "ipc/error.hpp"

namespace ipc::rpc {

std::string_view message_of(int c) noexcept {
    switch (c) {
    case code::parse_error: return "Parse error";
    case code::invalid_request: return "Invalid Request";
    case code::method_not_found: return "Method not found";
    case code::invalid_params: return "Invalid params";
    case code::internal_error: return "Internal error";
    case code::command_failed: return "Command failed";
    case code::timed_out: return "Timed out";
    case code::request_too_large: return "Request too large";
    case code::not_allowed: return "Not allowed";
    case code::output_too_large: return "Output too large";
    case code::server_busy: return "Server busy";
    default: return "Server error";
    }
}

namespace {

// Whether text nests arrays and objects deeper than max_depth: one pass over
// the bytes (brackets inside strings do not count), so that the parser that
// follows needs no per-token callback and nothing recurses deeper later.
bool too_deep(std::string_view text) {
    std::size_t depth = 0;
    bool in_string = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (in_string) {
            if (c == '\\') ++i;
            else if (c == '"') in_string = false;
        } else if (c == '"') in_string = true;
        else if (c == '[' || c == '{') {
            if (++depth > max_depth) return true;
        } else if ((c == ']' || c == '}') && depth > 0) --depth;
    }
    return false;
}

} // namespace

std::optional<json> parse_json(std::string_view text) {
    if (too_deep(text)) return std::nullopt;
    json v = json::parse(text.begin(), text.end(), nullptr, false);
    if (v.is_discarded()) return std::nullopt;
    return v;
}

bool numbers_exact(const json& v) {
    switch (v.type()) {
    case json::value_t::number_float: {
        double d = v.get<double>();
        return std::isfinite(d) && std::fabs(d) < exact_limit;
    }
    case json::value_t::array:
    case json::value_t::object:
        for (const auto& e : v)
            if (!numbers_exact(e)) return false;
        return true;
    default: return true;
    }
}

std::string dump(const json& v) { return v.dump(-1, ' ', false, json::error_handler_t::replace); }

json error_object(int c, std::string message, json data) {
    json e = {{"code", c}, {"message", message.empty() ? std::string(message_of(c)) : std::move(message)}};
    if (!data.is_null()) e["data"] = std::move(data);
    return e;
}

json error_response(json id, int c, std::string message, json data) {
    return json{{"jsonrpc", "2.0"}, {"error", error_object(c, std::move(message), std::move(data))}, {"id", std::move(id)}};
}

json result_response(json id, json result) {
    return json{{"jsonrpc", "2.0"}, {"result", std::move(result)}, {"id", std::move(id)}};
}

json make_request(const std::string& method, const json& params, std::optional<json> id) {
    json r = {{"jsonrpc", "2.0"}, {"method", method}};
    if (!params.is_null()) r["params"] = params;
    if (id) r["id"] = std::move(*id);
    return r;
}

namespace {

// An id the spec allows: a string, a number (integers here: a fractional id
// SHOULD NOT be used, and is refused), or null.
bool valid_id(const json& id) { return id.is_string() || id.is_number_integer() || id.is_null(); }

} // namespace

std::variant<request, json> validate_request(const json& v) {
    if (!v.is_object()) return error_response(nullptr, code::invalid_request, "a request must be a JSON object");
    json id = nullptr;
    auto idp = v.find("id");
    if (idp != v.end()) {
        if (!valid_id(*idp))
            return error_response(nullptr, code::invalid_request, "\"id\" must be a string, an integer or null");
        id = *idp;
    }
    auto invalid = [&](const std::string& why) { return error_response(id, code::invalid_request, why); };
    auto ver = v.find("jsonrpc");
    if (ver == v.end() || *ver != "2.0") return invalid("\"jsonrpc\" must be \"2.0\"");
    auto m = v.find("method");
    if (m == v.end() || !m->is_string()) return invalid("\"method\" must be a string");
    request r;
    r.method = m->get<std::string>();
    if (auto p = v.find("params"); p != v.end()) {
        if (!p->is_object() && !p->is_array()) return invalid("\"params\" must be an object or an array");
        r.params = *p;
    }
    for (auto it = v.begin(); it != v.end(); ++it)
        if (it.key() != "jsonrpc" && it.key() != "method" && it.key() != "params" && it.key() != "id" && it.key() != "ipc")
            return invalid(fmt::format("unknown member \"{}\"", it.key()));
    if (auto x = v.find("ipc"); x != v.end()) {
        if (!x->is_object()) return invalid("\"ipc\" must be an object");
        for (auto it = x->begin(); it != x->end(); ++it) {
            const auto& k = it.key();
            const auto& e = it.value();
            if (k == "client") {
                if (!e.is_string() || e.get<std::string>().empty() || e.get<std::string>().size() > max_client_id)
                    return invalid(fmt::format("\"ipc.client\" must be a string of 1 to {} bytes", max_client_id));
            } else if (k == "durable") {
                if (!e.is_boolean()) return invalid("\"ipc.durable\" must be true or false");
            } else if (k == "lease_ms") {
                if (!e.is_number_unsigned() || e.get<std::uint64_t>() == 0 || e.get<std::uint64_t>() > 86400000)
                    return invalid("\"ipc.lease_ms\" must be an integer from 1 to 86400000");
            } else return invalid(fmt::format("unknown member \"ipc.{}\"", k));
        }
        if (x->contains("durable") && (*x)["durable"] == true && !x->contains("client"))
            return invalid("\"ipc.durable\" needs \"ipc.client\"");
        if (x->contains("client") && idp != v.end() && dump(id).size() > max_record_id)
            return invalid(fmt::format("an id recorded for a client must be at most {} bytes of JSON", max_record_id));
    }
    if (!numbers_exact(v))
        return invalid("a number of magnitude 2^53 or more is not an exact 64-bit integer; send it as a string");
    if (idp != v.end()) r.id = id;
    return r;
}

extension extension_of(const json& v) {
    extension x;
    if (!v.is_object()) return x;
    auto it = v.find("ipc");
    if (it == v.end() || !it->is_object()) return x;
    if (auto c = it->find("client"); c != it->end() && c->is_string()) x.client = c->get<std::string>();
    if (auto d = it->find("durable"); d != it->end() && d->is_boolean()) x.durable = d->get<bool>();
    if (auto l = it->find("lease_ms"); l != it->end() && l->is_number_unsigned())
        x.lease = std::chrono::milliseconds(l->get<std::uint64_t>());
    return x;
}

bool valid_response(const json& v) {
    if (!v.is_object()) return false;
    auto ver = v.find("jsonrpc");
    if (ver == v.end() || *ver != "2.0") return false;
    auto id = v.find("id");
    if (id == v.end() || !valid_id(*id)) return false;
    bool has_result = v.contains("result"), has_error = v.contains("error");
    if (has_result == has_error) return false;
    if (has_error) {
        const auto& e = v["error"];
        if (!e.is_object() || !e.contains("code") || !e["code"].is_number_integer() || !e.contains("message") ||
            !e["message"].is_string())
            return false;
    }
    for (auto it = v.begin(); it != v.end(); ++it)
        if (it.key() != "jsonrpc" && it.key() != "id" && it.key() != "result" && it.key() != "error") return false;
    return true;
}

line_reader::status line_reader::next(std::string& line) {
    // Only the bytes not looked at yet are searched: a long line arriving in
    // many pieces costs its length, not its length squared.
    auto nl = buf_.find('\n', scanned_);
    // One byte of slack for a '\r' that a newline will follow.
    if (nl == std::string::npos) {
        scanned_ = buf_.size();
        return buf_.size() > max_ + 1 ? status::too_long : status::need_more;
    }
    line.assign(buf_, 0, nl);
    buf_.erase(0, nl + 1);
    scanned_ = 0;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return line.size() > max_ ? status::too_long : status::line;
}

// ---- client -----------------------------------------------------------------

namespace {

error connect_error(int err, const parse::endpoint& ep) {
    exit_code c = (err == EACCES || err == EPERM) ? exit_code::no_perm
                  : (err == ETIMEDOUT)            ? exit_code::temp_fail
                                                  : exit_code::unavailable;
    return error(c, fmt::format("cannot connect to '{}': {}", ep.str(), std::strerror(err)), err);
}

// A non-blocking connect finished by the deadline; returns 0 or the errno.
int connect_fd(int fd, const sockaddr* sa, socklen_t len, const deadline& until) {
    if (::connect(fd, sa, len) == 0) return 0;
    if (errno != EINPROGRESS && errno != EINTR && errno != EAGAIN) return errno;
    short ev = wait_fd(fd, POLLOUT, until);
    if (ev == 0) return ETIMEDOUT;
    int err = 0;
    socklen_t l = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0) return errno;
    return err;
}

} // namespace

void addrinfo_free::operator()(struct ::addrinfo* a) const noexcept { ::freeaddrinfo(a); }

addrinfo_list resolve(const parse::endpoint& ep, bool passive) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = ep.type == parse::endpoint::kind::udp ? SOCK_DGRAM : SOCK_STREAM;
    if (passive) hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    std::string port = std::to_string(ep.port);
    int rc = ::getaddrinfo(ep.host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0)
        throw error(exit_code::unavailable, fmt::format("cannot resolve '{}': {}", ep.host, ::gai_strerror(rc)));
    return addrinfo_list(res);
}

unique_fd connect(const parse::endpoint& ep, const deadline& until) {
    using kind = parse::endpoint::kind;
    if (ep.type == kind::udp) throw usage_error("udp endpoints are not supported yet: use unix: or tcp:");
    if (ep.type == kind::unix_path || ep.type == kind::unix_abstract) {
        unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
        if (!fd) throw last_system_error("create", "socket", ep.str());
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        socklen_t len;
        if (ep.type == kind::unix_abstract) {
            std::memcpy(sa.sun_path + 1, ep.path.data(), ep.path.size());
            len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + ep.path.size());
        } else {
            std::memcpy(sa.sun_path, ep.path.data(), ep.path.size());
            len = static_cast<socklen_t>(sizeof sa);
        }
        // A Unix connect to a full backlog says EAGAIN: try again until the deadline.
        for (;;) {
            int err = connect_fd(fd.get(), reinterpret_cast<sockaddr*>(&sa), len, until);
            if (err == 0) return fd;
            if (err == EAGAIN && !until.expired()) {
                sleep_until(until, std::chrono::milliseconds(10));
                continue;
            }
            throw connect_error(err == EAGAIN ? ETIMEDOUT : err, ep);
        }
    }
    auto res = resolve(ep, false);
    int last = ECONNREFUSED;
    for (auto* a = res.get(); a; a = a->ai_next) {
        unique_fd fd(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol));
        if (!fd) {
            last = errno;
            continue;
        }
        int err = connect_fd(fd.get(), a->ai_addr, a->ai_addrlen, until);
        if (err == 0) {
            int one = 1;
            ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            return fd;
        }
        last = err;
        if (err == ETIMEDOUT) break;
    }
    throw connect_error(last, ep);
}

void send(int fd, const json& message, const deadline& until) { send_bytes(fd, dump(message) + "\n", until); }

void send_bytes(int fd, std::string_view line, const deadline& until) {
    std::size_t done = 0;
    while (done < line.size()) {
        // MSG_NOSIGNAL: a peer that is gone is EPIPE here, not a SIGPIPE.
        // MSG_DONTWAIT: the deadline holds on a blocking socket too.
        ssize_t n = retry([&] { return ::send(fd, line.data() + done, line.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT); });
        if (n >= 0) {
            done += static_cast<std::size_t>(n);
            continue;
        }
        if (errno != EAGAIN) {
            if (errno == EPIPE || errno == ECONNRESET)
                throw error(exit_code::protocol, "the server closed the connection before taking the request", errno);
            throw system_error(errno, "send the request");
        }
        if (wait_fd(fd, POLLOUT, until) == 0) throw temp_failure("timed out sending the request", ETIMEDOUT);
    }
}

json receive(int fd, std::size_t max, const deadline& until) {
    // Takes exactly one line off the socket (peeking for its end first), so
    // that replies after it stay for the next call.
    std::string line;
    char buf[65536];
    for (;;) {
        short ev = wait_fd(fd, POLLIN, until);
        if (ev == 0) throw temp_failure("no reply within the timeout", ETIMEDOUT);
        ssize_t n = retry([&] { return ::recv(fd, buf, sizeof buf, MSG_PEEK); });
        if (n < 0) {
            if (errno == EAGAIN) continue;
            if (errno == ECONNRESET) throw error(exit_code::protocol, "the server reset the connection before replying", errno);
            throw system_error(errno, "read the reply");
        }
        if (n == 0) {
            if (!line.empty()) throw error(exit_code::protocol, "the server closed the connection in the middle of a reply");
            throw error(exit_code::protocol, "the server closed the connection without replying");
        }
        auto* nl = static_cast<char*>(std::memchr(buf, '\n', static_cast<std::size_t>(n)));
        std::size_t take = nl ? static_cast<std::size_t>(nl - buf) + 1 : static_cast<std::size_t>(n);
        ssize_t got = retry([&] { return ::recv(fd, buf, take, 0); });
        if (got != static_cast<ssize_t>(take)) throw error(exit_code::protocol, "the reply could not be read whole");
        line.append(buf, nl ? take - 1 : take);
        if (line.size() > max + 1) throw error(exit_code::protocol, fmt::format("the reply is over {} bytes", max));
        if (!nl) continue;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.size() > max) throw error(exit_code::protocol, fmt::format("the reply is over {} bytes", max));
        if (line.find_first_not_of(" \t") == std::string::npos) {
            line.clear();
            continue;
        }
        break;
    }
    auto v = parse_json(line);
    if (!v) throw error(exit_code::protocol, "the reply is not JSON");
    if (!numbers_exact(*v))
        throw error(exit_code::protocol, "the reply holds a number of magnitude 2^53 or more that would be rounded");
    return *v;
}

std::vector<std::string> split_command(std::string_view text) {
    std::vector<std::string> words;
    std::string cur;
    bool in_word = false;
    char quote = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (quote == '\'') {
            if (c == '\'') quote = 0;
            else cur += c;
        } else if (quote == '"') {
            if (c == '"') quote = 0;
            else if (c == '\\' && i + 1 < text.size() && std::strchr("\"\\$`", text[i + 1])) cur += text[++i];
            else cur += c;
        } else if (c == ' ' || c == '\t' || c == '\n') {
            if (in_word) words.push_back(std::exchange(cur, {}));
            in_word = false;
        } else {
            in_word = true;
            if (c == '\'' || c == '"') quote = c;
            else if (c == '\\') {
                if (i + 1 >= text.size()) throw usage_error(fmt::format("command '{}' ends with a backslash", text));
                cur += text[++i];
            } else cur += c;
        }
    }
    if (quote) throw usage_error(fmt::format("command '{}' has an unclosed {} quote", text, quote == '"' ? "double" : "single"));
    if (in_word) words.push_back(cur);
    return words;
}

} // namespace ipc::rpc
