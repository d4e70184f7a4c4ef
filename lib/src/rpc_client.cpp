// SPDX-License-Identifier: MIT
// The RPC client: one endpoint, a kept connection, the chosen encoding, and
// the failure semantics (what is resent after a failure, and what is
// reported as an unknown outcome).
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include <fmt/format.h>

#include "ipc/error.hpp"
#include "ipc/rpc.hpp"

namespace ipc::rpc {

std::string_view name_of(semantics s) noexcept {
    switch (s) {
    case semantics::at_least_once: return "at-least-once";
    case semantics::exactly_once: return "exactly-once";
    case semantics::at_most_once: break;
    }
    return "at-most-once";
}

semantics semantics_named(std::string_view name) {
    if (name == "at-most-once") return semantics::at_most_once;
    if (name == "at-least-once") return semantics::at_least_once;
    if (name == "exactly-once") return semantics::exactly_once;
    throw usage_error(fmt::format("unknown semantics '{}': expected at-most-once, at-least-once or exactly-once", name));
}

remote_error::remote_error(json error_object)
    : std::runtime_error(error_object.is_object() && error_object.contains("message") && error_object["message"].is_string()
                             ? error_object["message"].get<std::string>()
                             : std::string("error answer")),
      code_(error_object.is_object() && error_object.contains("code") && error_object["code"].is_number_integer()
                ? error_object["code"].get<int>()
                : code::internal_error),
      obj_(std::move(error_object)) {}

namespace {

std::string random_hex(std::size_t bytes) {
    std::vector<unsigned char> b(bytes);
    if (::getrandom(b.data(), b.size(), 0) != static_cast<ssize_t>(b.size())) {
        std::random_device rd;
        for (auto& c : b) c = static_cast<unsigned char>(rd());
    }
    std::string s;
    for (auto c : b) s += fmt::format("{:02x}", c);
    return s;
}

error unknown_outcome(const std::string& why) {
    return error(exit_code::unknown_outcome, fmt::format("outcome unknown: {}: the call may or may not have run", why));
}

// Something failed after the request (or part of it) may have reached the
// server.
struct after_send {
    error cause;
};

// The server answered, with something that is no reply: 76, never resent.
struct bad_answer {
    error cause;
};

} // namespace

struct client::impl {
    parse::endpoint ep;
    client_options o;
    unique_fd fd;
    frame_reader reader{max_reply};
    std::int64_t counter;
    bool udp;
    // Replies read by a blocking recv(2) bounded by SO_RCVTIMEO (the
    // per-attempt timeout), with no poll(2) first: without a lease to renew
    // or signal handlers to honour.
    bool blocking_reads = false;

    impl(parse::endpoint e, client_options opts) : ep(std::move(e)), o(std::move(opts)), udp(ep.type == parse::endpoint::kind::udp) {
        if (o.client_id.empty() && (o.sem == semantics::exactly_once || udp)) o.client_id = random_hex(8);
        if (o.client_id.size() > max_client_id) throw usage_error(fmt::format("a client id is at most {} bytes", max_client_id));
        // Ids from the clock, so that a client restarted with the same
        // client id does not reuse an id whose reply is still recorded.
        counter = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count() << 12;
    }

    void drop() {
        fd.reset();
        reader = frame_reader(o.max_reply);
    }

    void open(const deadline& until) {
        if (fd) return;
        if (udp) {
            fd = connect_datagram(ep);
            return;
        }
        fd = connect(ep, until);
        blocking_reads = false;
        if (!o.lease && !signal_handlers_installed() && (!o.timeout || *o.timeout >= std::chrono::milliseconds(20))) {
            // Writes pass MSG_DONTWAIT (send_bytes); reads block up to the
            // timeout. (Not in a program that handles SIGINT: a signal just
            // before recv(2) would go unseen until the reply.)
            timeval tv{};
            if (o.timeout) {
                auto us = std::chrono::duration_cast<std::chrono::microseconds>(*o.timeout).count();
                tv.tv_sec = static_cast<time_t>(us / 1000000);
                tv.tv_usec = static_cast<suseconds_t>(us % 1000000);
            }
            if (::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0) {
                set_nonblocking(fd.get(), false);
                blocking_reads = true;
            }
        }
        reader = frame_reader(o.max_reply);
        reader.expect(o.enc);
        if (o.enc != encoding::json) {
            char marker = static_cast<char>(o.enc == encoding::cbor ? cbor_marker : msgpack_marker);
            write_all(std::string(1, marker), until);
        }
    }

    void write_all(const std::string& bytes, const deadline& until) { send_bytes(fd.get(), bytes, until); }

    // Reads the next message from the stream; renews the lease meanwhile.
    json read_message(const deadline& until) {
        std::string payload;
        char buf[65536];
        auto renew_every = o.lease ? std::max<std::chrono::nanoseconds>(*o.lease / 3, std::chrono::milliseconds(1))
                                   : std::chrono::nanoseconds(0);
        for (;;) {
            switch (reader.next(payload)) {
            case frame_reader::status::message: {
                if (payload.find_first_not_of(" \t\r") == std::string::npos && o.enc == encoding::json) continue;
                auto v = decode_binary(payload, o.enc);
                if (!v) throw bad_answer{error(exit_code::protocol, fmt::format("malformed reply: not valid {}", name_of(o.enc)))};
                if (!numbers_exact(*v))
                    throw bad_answer{error(exit_code::protocol, "malformed reply: it holds a number of magnitude 2^53 or more that would be rounded")};
                return *v;
            }
            case frame_reader::status::too_long:
                throw bad_answer{error(exit_code::protocol, fmt::format("malformed reply: over {} bytes", o.max_reply))};
            case frame_reader::status::need_more: break;
            }
            // Most of the attempt left: one blocking read, which returns by
            // the deadline give or take 10 ms. Else (a reply in pieces, a
            // lease to renew) poll first.
            if (blocking_reads && (until.infinite() || *until.remaining() + std::chrono::milliseconds(10) >= *o.timeout)) {
                ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
                if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                    if (until.expired()) throw temp_failure("no reply within the timeout", ETIMEDOUT);
                    continue;
                }
                if (n > 0) {
                    reader.feed(buf, static_cast<std::size_t>(n));
                    continue;
                }
                // The end or an error: reported below as always.
                if (n == 0) {
                    if (!reader.rest().empty()) throw error(exit_code::protocol, "the server closed the connection in the middle of a reply");
                    throw error(exit_code::protocol, "the server closed the connection without replying");
                }
                if (errno == ECONNRESET) throw error(exit_code::protocol, "the server reset the connection before replying", errno);
                throw system_error(errno, "read the reply");
            }
            deadline step = until;
            if (o.lease) {
                auto renew = deadline::after(renew_every);
                if (until.infinite() || renew.remaining() < until.remaining()) step = renew;
            }
            short ev = wait_fd(fd.get(), POLLIN, step);
            if (ev == 0) {
                if (until.expired()) throw temp_failure("no reply within the timeout", ETIMEDOUT);
                write_all(frame(make_request("rpc.renew", nullptr, std::nullopt), o.enc), until);
                continue;
            }
            ssize_t n = retry([&] { return ::recv(fd.get(), buf, sizeof buf, 0); });
            if (n < 0) {
                if (errno == EAGAIN) continue;
                if (errno == ECONNRESET) throw error(exit_code::protocol, "the server reset the connection before replying", errno);
                throw system_error(errno, "read the reply");
            }
            if (n == 0) {
                if (!reader.rest().empty()) throw error(exit_code::protocol, "the server closed the connection in the middle of a reply");
                throw error(exit_code::protocol, "the server closed the connection without replying");
            }
            reader.feed(buf, static_cast<std::size_t>(n));
        }
    }

    // The server calls a procedure of ours (a callback) while our call runs.
    void serve_callback(const json& message, const deadline& until) {
        auto checked = validate_request(message);
        if (auto* err = std::get_if<json>(&checked)) return write_all(frame(*err, o.enc), until);
        auto& q = std::get<request>(checked);
        json id = q.id ? *q.id : json();
        json reply;
        auto it = o.callbacks.find(q.method);
        if (it == o.callbacks.end())
            reply = error_response(id, code::method_not_found, fmt::format("this client has no callback '{}'", q.method));
        else {
            try {
                reply = result_response(id, it->second(q.params));
            } catch (const remote_error& e) {
                reply = json{{"jsonrpc", "2.0"}, {"error", e.object()}, {"id", id}};
            } catch (const std::exception& e) {
                reply = error_response(id, code::internal_error, e.what());
            }
        }
        if (q.id) write_all(frame(reply, o.enc), until);
    }

    static bool answers(const json& reply, const json& request) {
        if (request.is_array()) return reply.is_array() || (reply.is_object() && reply.contains("id") && reply["id"].is_null());
        if (!reply.is_object() || !reply.contains("id")) return false;
        return reply["id"] == request["id"] || (reply["id"].is_null() && reply.contains("error"));
    }

    // One attempt over a stream connection.
    std::optional<json> attempt_stream(const json& request, bool expect_reply, const deadline& until) {
        bool reused = static_cast<bool>(fd);
        open(until);
        try {
            write_all(frame(request, o.enc), until);
        } catch (const error&) {
            drop();
            if (!reused) throw;  // not delivered: a line or frame counts only when whole
            // A kept connection the server closed meanwhile (its idle
            // limit): connect again, once.
            open(until);
            try {
                write_all(frame(request, o.enc), until);
            } catch (const error&) {
                drop();
                throw;
            }
        }
        if (!expect_reply) return std::nullopt;
        try {
            for (;;) {
                json reply = read_message(until);
                if (reply.is_object() && reply.contains("method")) {
                    serve_callback(reply, until);
                    continue;
                }
                if (answers(reply, request)) return reply;
                // (After a failure the connection is dropped: no reply to an
                // earlier request can come here.)
                throw bad_answer{error(exit_code::protocol, fmt::format("malformed reply: the id {} is not the request's",
                                                                        reply.is_object() && reply.contains("id") ? dump(reply["id"]) : "(none)"))};
            }
        } catch (const bad_answer& b) {
            drop();
            throw b.cause;
        } catch (const interrupted&) {
            drop();
            throw;  // SIGINT/SIGTERM: 130/143, whatever the call's fate
        } catch (const error& e) {
            drop();
            throw after_send{e};
        }
    }

    static unique_fd connect_datagram(const parse::endpoint& ep) {
        parse::endpoint tcp = ep;
        tcp.type = parse::endpoint::kind::tcp;
        auto res = resolve(tcp, false);
        int last = ECONNREFUSED;
        for (auto* a = res.get(); a; a = a->ai_next) {
            unique_fd fd(::socket(a->ai_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
            if (!fd) {
                last = errno;
                continue;
            }
            if (::connect(fd.get(), a->ai_addr, a->ai_addrlen) == 0) return fd;
            last = errno;
        }
        throw error(exit_code::unavailable, fmt::format("cannot reach '{}': {}", ep.str(), std::strerror(last)), last);
    }

    // One attempt over UDP: the datagram is sent again (the server's reply
    // cache drops duplicates) every 200 ms, doubling up to 1 s, unless the
    // semantics forbid resending; then only a lease renewal is sent.
    std::optional<json> attempt_udp(const json& request, bool expect_reply, const deadline& until) {
        open(until);
        std::string d = datagram(request, o.enc);
        if (d.size() > 65507) throw data_error(fmt::format("the request is {} bytes: over the 65507 a UDP datagram holds", d.size()));
        auto send_it = [&](const std::string& bytes) {
            if (retry([&] { return ::send(fd.get(), bytes.data(), bytes.size(), 0); }) < 0) {
                int err = errno;
                if (err == ECONNREFUSED) throw error(exit_code::unavailable, fmt::format("nobody answers at '{}'", ep.str()), err);
                if (err != EAGAIN) throw system_error(err, "send the request");
            }
        };
        send_it(d);
        if (!expect_reply) return std::nullopt;
        bool resend = o.sem != semantics::at_most_once;
        json renew;
        if (!resend && o.lease && !request.is_array())
            renew = make_request("rpc.renew", json{{"client", o.client_id}, {"ids", json::array({request["id"]})}}, std::nullopt);
        auto gap = std::chrono::milliseconds(200);
        if (o.lease) gap = std::min<std::chrono::milliseconds>(gap, std::max<std::chrono::milliseconds>(*o.lease / 3, std::chrono::milliseconds(1)));
        bool heard = false;
        std::vector<char> buf(65536);
        for (;;) {
            auto step = deadline::after(gap);
            deadline w = (!until.infinite() && until.remaining() < step.remaining()) ? until : step;
            short ev = wait_fd(fd.get(), POLLIN, w);
            if (ev == 0) {
                if (until.expired()) {
                    if (!resend) throw after_send{unknown_outcome("no reply within the timeout (over UDP a request or its reply can be lost)")};
                    throw after_send{temp_failure("no reply within the timeout", ETIMEDOUT)};
                }
                if (resend) send_it(d);
                else if (!renew.is_null()) send_it(datagram(renew, o.enc));
                if (resend) gap = std::min<std::chrono::milliseconds>(gap * 2, std::chrono::milliseconds(1000));
                continue;
            }
            ssize_t n = ::recv(fd.get(), buf.data(), buf.size(), 0);
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR) continue;
                if (errno == ECONNREFUSED && !heard) {
                    // Nobody listens: the request was not taken.
                    throw error(exit_code::unavailable, fmt::format("nobody answers at '{}'", ep.str()), ECONNREFUSED);
                }
                continue;
            }
            heard = true;
            encoding e;
            auto v = from_datagram(std::string_view(buf.data(), static_cast<std::size_t>(n)), e);
            if (!v) continue;  // garbage on a datagram socket: not a reply
            if (answers(*v, request)) {
                if (!numbers_exact(*v))
                    throw error(exit_code::protocol, "malformed reply: it holds a number of magnitude 2^53 or more that would be rounded");
                return *v;
            }
        }
    }

    std::optional<json> exchange(json request, bool expect_reply) {
        // The extension member, only when a guarantee needs the server's help.
        auto extend = [&](json& r) {
            if (!r.is_object() || !r.contains("id")) return;
            json x = json::object();
            if (!o.client_id.empty() && (o.sem != semantics::at_most_once || udp)) x["client"] = o.client_id;
            if (o.sem == semantics::exactly_once) x["durable"] = true;
            if (o.lease) x["lease_ms"] = static_cast<std::uint64_t>(o.lease->count());
            if (!x.empty()) r["ipc"] = std::move(x);
        };
        if (request.is_array())
            for (auto& r : request) extend(r);
        else extend(request);

        auto pause = std::chrono::milliseconds(100);
        bool resend_allowed = o.sem != semantics::at_most_once;
        for (unsigned attempt = 0;; ++attempt) {
            auto until = deadline::from(o.timeout);
            try {
                auto reply = udp ? attempt_udp(request, expect_reply, until) : attempt_stream(request, expect_reply, until);
                if (reply && reply->is_object() && reply->contains("error") && (*reply)["error"].is_object() &&
                    (*reply)["error"].value("code", 0) == code::outcome_unknown)
                {
                    std::string why = (*reply)["error"].value("message", std::string("the server lost the reply"));
                    if (why.starts_with("Outcome unknown: ")) why.erase(0, 17);
                    throw error(exit_code::unknown_outcome, "outcome unknown: " + why);
                }
                return reply;
            } catch (const after_send& a) {
                // The request may have reached the server.
                if (!resend_allowed) {
                    if (a.cause.code() == exit_code::temp_fail || a.cause.code() == exit_code::unknown_outcome) throw a.cause;
                    throw unknown_outcome(a.cause.what());
                }
                if (attempt >= o.retries) {
                    if (a.cause.code() == exit_code::temp_fail) throw a.cause;
                    throw unknown_outcome(fmt::format("{} (after {} attempts)", a.cause.what(), attempt + 1));
                }
            } catch (const error& e) {
                // Not delivered (cannot connect, or the request was not sent
                // whole): trying again never makes it run twice.
                bool again = e.code() == exit_code::unavailable || e.code() == exit_code::temp_fail;
                if (!again || attempt >= o.retries) throw;
            }
            sleep_until(deadline::after(pause), pause);
            pause = std::min(pause * 2, std::chrono::milliseconds(2000));
        }
    }
};

client::client(parse::endpoint ep, client_options o) : impl_(std::make_unique<impl>(std::move(ep), std::move(o))) {}
client::~client() = default;
client::client(client&&) noexcept = default;
client& client::operator=(client&&) noexcept = default;

const std::string& client::client_id() const { return impl_->o.client_id; }
std::int64_t client::next_id() { return ++impl_->counter; }
void client::on_callback(const std::string& name, std::function<json(const json&)> fn) { impl_->o.callbacks[name] = std::move(fn); }

std::optional<json> client::exchange(json request, bool expect_reply) { return impl_->exchange(std::move(request), expect_reply); }

json client::call(const std::string& method, const json& params) {
    json id = next_id();
    // Large strings by reference: the segments live until the call ends.
    std::vector<outgoing_ref> refs;
    const json* sent = &params;
    json swapped;
    bool local = impl_->ep.type == parse::endpoint::kind::unix_path || impl_->ep.type == parse::endpoint::kind::unix_abstract;
    if (impl_->o.by_reference_from > 0 && local && (params.is_object() || params.is_array())) {
        swapped = params;
        for (auto& v : swapped)
            if (v.is_string() && v.get_ref<const std::string&>().size() >= impl_->o.by_reference_from) {
                refs.push_back(outgoing_ref::from_bytes(v.get_ref<const std::string&>(), false));
                v = refs.back().value();
            }
        sent = &swapped;
    }
    auto reply = impl_->exchange(make_request(method, *sent, id), true);
    if (!reply || !valid_response(*reply)) throw error(exit_code::protocol, "malformed reply: not a JSON-RPC 2.0 response");
    if (reply->contains("error")) throw remote_error((*reply)["error"]);
    return (*reply)["result"];
}

void client::notify(const std::string& method, const json& params) {
    auto saved = impl_->o.sem;
    impl_->o.sem = semantics::at_most_once;
    try {
        impl_->exchange(make_request(method, params, std::nullopt), false);
    } catch (...) {
        impl_->o.sem = saved;
        throw;
    }
    impl_->o.sem = saved;
}

json client::describe() { return call("rpc.describe"); }

void client::check_interface(const std::string& name, const std::string& version) {
    json d = describe();
    std::string have_name = d.is_object() && d.contains("interface") && d["interface"].is_string() ? d["interface"].get<std::string>() : "";
    std::string have_ver = d.is_object() && d.contains("version") && d["version"].is_string() ? d["version"].get<std::string>() : "";
    if (have_name != name || !version_satisfies(have_ver, version))
        throw error(exit_code::protocol,
                    fmt::format("interface mismatch: the server offers '{}' version {}, this client needs '{}' version {}",
                                have_name.empty() ? "(none)" : have_name, have_ver.empty() ? "(none)" : have_ver, name, version));
}

} // namespace ipc::rpc
