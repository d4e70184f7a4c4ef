// SPDX-License-Identifier: MIT
// ipc-rpc: JSON-RPC 2.0 remote procedure calls from the shell over Unix and
// TCP sockets. Parses, calls lib/, emits.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <iterator>

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <fmt/format.h>

#include "ipc/cli.hpp"
#include "ipc/error.hpp"
#include "ipc/parse.hpp"
#include "ipc/rpc.hpp"

namespace {

using namespace ipc;
using rpc::json;

struct options {
    std::string endpoint;
    // serve
    std::vector<std::string> methods;
    unsigned workers = 4;
    std::string call_timeout = "1m";
    std::string max_request = "1M";
    unsigned max_connections = 64;
    std::string mode = "0600";
    std::vector<std::string> allow_uid, allow_gid;
    std::string api_version = "0";
    // call
    std::string method;
    std::vector<std::string> params;
    bool notify = false;
    bool batch = false;
    unsigned retries = 0;
    // wait
    std::string interval = "100ms";
    cli::wait_options wait;
};

parse::endpoint endpoint_of(const std::string& text) {
    auto ep = parse::socket_endpoint(text);
    if (ep.type == parse::endpoint::kind::udp) throw usage_error("udp endpoints are not supported yet: use unix: or tcp:");
    return ep;
}

std::string read_stdin() {
    std::string all((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    if (std::cin.bad()) throw system_error(errno, "read standard input");
    return all;
}

// A JSON value given by the user (argument or stdin): malformed is 65, and so
// is a number that would be rounded.
json user_json(std::string_view text, std::string_view what) {
    auto v = rpc::parse_json(text);
    if (!v) throw data_error(fmt::format("{} is not valid JSON", what));
    if (!rpc::numbers_exact(*v))
        throw data_error(fmt::format("{} holds a number of magnitude 2^53 or more that would be rounded; "
                                     "write it as a string",
                                     what));
    return *v;
}

// PARAMS: nothing, one JSON object or array, '-' (JSON on stdin), or
// key=value and key:=json pairs.
json params_of(const std::vector<std::string>& args) {
    if (args.empty()) return nullptr;
    if (args.size() == 1 && (args[0] == "-" || args[0].starts_with("{") || args[0].starts_with("["))) {
        json v = args[0] == "-" ? user_json(read_stdin(), "the params on stdin") : user_json(args[0], "PARAMS");
        if (!v.is_object() && !v.is_array()) throw data_error("params must be a JSON object or array");
        return v;
    }
    json obj = json::object();
    for (const auto& a : args) {
        auto eq = a.find('=');
        if (eq == std::string::npos || eq == 0 || (eq == 1 && a[0] == ':'))
            throw usage_error(fmt::format("invalid parameter '{}': expected KEY=VALUE, KEY:=JSON, or one JSON "
                                          "object or array",
                                          a));
        if (a[eq - 1] == ':') obj[a.substr(0, eq - 1)] = user_json(a.substr(eq + 1), fmt::format("the value of '{}'", a.substr(0, eq - 1)));
        else obj[a.substr(0, eq)] = a.substr(eq + 1);
    }
    return obj;
}

// The answer to one request, from its reply: prints the result (0) or the
// error object on stderr (1; 77 when the server refused this user).
int answer(const json& reply) {
    if (reply.contains("error")) {
        const auto& e = reply["error"];
        std::string text = rpc::dump(e) + "\n";
        std::fwrite(text.data(), 1, text.size(), stderr);
        return e["code"] == rpc::code::not_allowed ? static_cast<int>(exit_code::no_perm) : 1;
    }
    if (!cli::quiet()) out::stdout_stream().write(rpc::dump(reply["result"]) + "\n");
    return 0;
}

// One exchange with retries: connect (retried while unreachable), send, and
// read the reply unless none is expected. The request is retried only when it
// could not be delivered, so a call never runs twice.
std::optional<json> exchange(const options& o, const parse::endpoint& ep, const json& request, bool expect_reply) {
    auto pause = std::chrono::milliseconds(100);
    for (unsigned attempt = 0;; ++attempt) {
        auto until = o.wait.deadline();
        unique_fd fd;
        try {
            fd = rpc::connect(ep, until);
        } catch (const error& e) {
            bool again = e.code() == exit_code::unavailable || e.code() == exit_code::temp_fail;
            if (!again || attempt >= o.retries) throw;
            sleep_until(deadline::after(pause), pause);
            pause = std::min(pause * 2, std::chrono::milliseconds(2000));
            continue;
        }
        rpc::send(fd.get(), request, until);
        if (!expect_reply) return std::nullopt;
        return rpc::receive(fd.get(), rpc::max_reply, until);
    }
}

error malformed(const std::string& why) { return error(exit_code::protocol, "malformed reply: " + why); }

int do_call(const options& o) {
    auto ep = endpoint_of(o.endpoint);
    if (o.batch) {
        if (!o.method.empty() || !o.params.empty()) throw usage_error("--batch reads the requests from stdin: give no METHOD or PARAMS");
        if (o.notify) throw usage_error("choose --batch or --notify");
        json reqs = user_json(read_stdin(), "the batch on stdin");
        if (!reqs.is_array() || reqs.empty()) throw data_error("a batch is a non-empty JSON array of requests");
        bool expect = false;
        for (auto& r : reqs) {
            if (r.is_object() && !r.contains("jsonrpc")) r["jsonrpc"] = "2.0";
            if (!r.is_object() || r.contains("id")) expect = true;
        }
        auto reply = exchange(o, ep, reqs, expect);
        if (!reply) return 0;
        if (reply->is_object() && rpc::valid_response(*reply)) return answer(*reply);  // the batch itself was refused
        if (!reply->is_array()) throw malformed("expected an array of responses");
        int status = 0;
        for (const auto& r : *reply) {
            if (!rpc::valid_response(r)) throw malformed("an element is not a JSON-RPC 2.0 response");
            if (r.contains("error")) status = 1;
        }
        if (!cli::quiet()) out::stdout_stream().write(rpc::dump(*reply) + "\n");
        return status;
    }
    if (o.method.empty()) throw usage_error("missing METHOD (or --batch)");
    json params = params_of(o.params);
    json id = 1;
    auto request = rpc::make_request(o.method, params, o.notify ? std::nullopt : std::optional<json>(id));
    auto reply = exchange(o, ep, request, !o.notify);
    if (!reply) return 0;
    if (!rpc::valid_response(*reply)) throw malformed("not a JSON-RPC 2.0 response");
    // An error about a request the server could not read carries a null id.
    if ((*reply)["id"] != id && !((*reply)["id"].is_null() && reply->contains("error")))
        throw malformed(fmt::format("the id {} is not the request's", rpc::dump((*reply)["id"])));
    return answer(*reply);
}

json describe_of(const options& o, const parse::endpoint& ep) {
    auto reply = exchange(o, ep, rpc::make_request("rpc.describe", nullptr, json(1)), true);
    if (!rpc::valid_response(*reply)) throw malformed("not a JSON-RPC 2.0 response");
    if (reply->contains("error")) {
        int st = answer(*reply);
        throw error(static_cast<exit_code>(st), "rpc.describe failed");
    }
    return (*reply)["result"];
}

int do_describe(const options& o) {
    auto ep = endpoint_of(o.endpoint);
    json d = describe_of(o, ep);
    if (!d.is_object() || !d.contains("methods") || !d["methods"].is_array()) throw malformed("rpc.describe's result has no methods");
    std::vector<out::record> records;
    for (const auto& m : d["methods"]) {
        out::record r;
        auto text = [&](const char* k) { return m.contains(k) && m[k].is_string() ? out::json(m[k].get<std::string>()) : out::json(nullptr); };
        r.add("name", text("name")).add("params", text("params")).add("result", text("result"));
        r.add("interface_version", d.contains("version") ? out::json::parse(d["version"].dump()) : out::json(nullptr));
        records.push_back(std::move(r));
    }
    cli::emit("methods", records, out::layout::list);
    return 0;
}

int do_wait(const options& o) {
    auto ep = endpoint_of(o.endpoint);
    auto step = parse::positive_duration(o.interval, "interval");
    auto until = o.wait.deadline();
    std::string last = "no answer";
    for (;;) {
        // Each try gets what is left, at least 1 s (so that -n makes one real
        // try) and at most 5 s (so that a server that accepts but never
        // answers does not hold the wait long past its timeout).
        auto left = until.remaining();
        std::chrono::nanoseconds give = left ? std::clamp<std::chrono::nanoseconds>(*left, std::chrono::seconds(1), std::chrono::seconds(5))
                                             : std::chrono::seconds(5);
        auto attempt = deadline::after(give);
        try {
            auto fd = rpc::connect(ep, attempt);
            rpc::send(fd.get(), rpc::make_request("rpc.describe", nullptr, json(1)), attempt);
            auto reply = rpc::receive(fd.get(), rpc::max_reply, attempt);
            if (rpc::valid_response(reply)) {
                if (cli::format() != out::format::text) {
                    out::record r;
                    r.add("endpoint", ep.str()).add("answering", true);
                    cli::emit("servers", std::vector{r});
                }
                return 0;
            }
            last = "a reply that is not JSON-RPC 2.0";
        } catch (const interrupted&) {
            throw;
        } catch (const error& e) {
            if (e.code() == exit_code::usage) throw;
            last = e.what();
        }
        if (until.expired()) throw temp_failure(fmt::format("'{}' did not answer within the timeout ({})", ep.str(), last), ETIMEDOUT);
        sleep_until(until, step);
        if (until.expired()) throw temp_failure(fmt::format("'{}' did not answer within the timeout ({})", ep.str(), last), ETIMEDOUT);
    }
}

uid_t uid_of(const std::string& s) {
    if (!s.empty() && s.find_first_not_of("0123456789") == std::string::npos)
        return static_cast<uid_t>(parse::unsigned_number(s, "uid", UINT32_MAX - 1));
    if (auto* pw = ::getpwnam(s.c_str())) return pw->pw_uid;
    throw usage_error(fmt::format("unknown user '{}'", s));
}

gid_t gid_of(const std::string& s) {
    if (!s.empty() && s.find_first_not_of("0123456789") == std::string::npos)
        return static_cast<gid_t>(parse::unsigned_number(s, "gid", UINT32_MAX - 1));
    if (auto* gr = ::getgrnam(s.c_str())) return gr->gr_gid;
    throw usage_error(fmt::format("unknown group '{}'", s));
}

int do_serve(const options& o) {
    auto ep = endpoint_of(o.endpoint);
    rpc::server_options so;
    for (const auto& spec : o.methods) {
        auto eq = spec.find('=');
        if (eq == std::string::npos || eq == 0) throw usage_error(fmt::format("invalid --method '{}': expected NAME=COMMAND", spec));
        rpc::method m{spec.substr(0, eq), rpc::split_command(spec.substr(eq + 1))};
        if (m.name.starts_with("rpc.")) throw usage_error(fmt::format("invalid --method '{}': names beginning with 'rpc.' are reserved", m.name));
        if (m.argv.empty()) throw usage_error(fmt::format("invalid --method '{}': empty COMMAND", spec));
        for (const auto& other : so.methods)
            if (other.name == m.name) throw usage_error(fmt::format("method '{}' is given twice", m.name));
        so.methods.push_back(std::move(m));
    }
    if (o.workers == 0) throw usage_error("--workers must be at least 1");
    if (o.max_connections == 0) throw usage_error("--max-connections must be at least 1");
    so.workers = o.workers;
    so.max_connections = o.max_connections;
    so.call_timeout = parse::duration(o.call_timeout);
    if (so.call_timeout && so.call_timeout->count() <= 0) throw usage_error("--call-timeout must be above 0 (or inf)");
    so.max_request = parse::size(o.max_request);
    if (so.max_request == 0) throw usage_error("--max-request must be above 0");
    so.mode = parse::mode(o.mode);
    bool is_unix = ep.type != parse::endpoint::kind::tcp;
    if (!is_unix && (!o.allow_uid.empty() || !o.allow_gid.empty()))
        throw usage_error("--allow-uid and --allow-gid need a unix: endpoint (TCP peers have no credentials)");
    for (const auto& u : o.allow_uid) so.allow_uids.push_back(uid_of(u));
    for (const auto& g : o.allow_gid) so.allow_gids.push_back(gid_of(g));
    so.api_version = o.api_version;

    rpc::listener l(ep, so.mode);
    if (ep.type == parse::endpoint::kind::unix_abstract && o.mode != "0600")
        cli::warn("abstract sockets have no permissions: --mode has no effect; use --allow-uid");
    rpc::server s(std::move(l), std::move(so));
    // The endpoint as bound (the real port for tcp:HOST:0), once it accepts.
    if (!cli::quiet()) {
        if (cli::format() == out::format::text) out::stdout_stream().write(s.where().str() + "\n");
        else {
            out::record r;
            r.add("endpoint", s.where().str());
            cli::emit("servers", std::vector{r});
        }
        out::stdout_stream().flush();
    }
    s.run();
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    cli::app app("ipc-rpc", "JSON-RPC 2.0 remote procedure calls over Unix and TCP sockets: serve, call, describe, wait.");
    options o;

    auto* serve = app.verb("serve", "Serve methods, each run as a command per call", [&] { return do_serve(o); });
    serve->add_option("endpoint", o.endpoint, "unix:/path, unix:@name or tcp:HOST:PORT")->required()->type_name("ENDPOINT");
    serve->add_option("-M,--method", o.methods, "A method: NAME=COMMAND (repeatable)")->type_name("NAME=COMMAND");
    serve->add_option("-w,--workers", o.workers, "Calls run at once (default 4)")->type_name("N");
    serve->add_option("--call-timeout", o.call_timeout, "Time limit of one call; its command is killed (default 1m)")
        ->type_name("DUR");
    serve->add_option("--max-request", o.max_request, "Largest request line (default 1M)")->type_name("SIZE");
    serve->add_option("--max-connections", o.max_connections, "Connections served at once (default 64)")->type_name("N");
    serve->add_option("--allow-uid", o.allow_uid, "Admit this user too (repeatable; unix: only)")->type_name("UID");
    serve->add_option("--allow-gid", o.allow_gid, "Admit this group too (repeatable; unix: only)")->type_name("GID");
    serve->add_option("--api-version", o.api_version, "The interface version rpc.describe reports (default 0)")
        ->type_name("VER");
    app.add_mode(serve, o.mode);

    auto* call = app.verb("call", "Call a method and print its result", [&] { return do_call(o); });
    call->add_option("endpoint", o.endpoint, "unix:/path, unix:@name or tcp:HOST:PORT")->required()->type_name("ENDPOINT");
    call->add_option("method", o.method, "The method to call")->type_name("METHOD");
    call->add_option("params", o.params, "A JSON object or array, '-' (JSON on stdin), or KEY=VALUE and KEY:=JSON")
        ->type_name("PARAMS");
    call->add_flag("--notify", o.notify, "Send a notification: no reply, exit 0 once sent");
    call->add_flag("--batch", o.batch, "Send the JSON array of requests on stdin as one batch");
    call->add_option("-r,--retries", o.retries, "Connect again up to N times while unreachable (default 0)")
        ->type_name("N");
    app.add_wait(call, o.wait);

    auto* describe = app.verb("describe", "List a server's methods and its interface version", [&] { return do_describe(o); });
    describe->add_option("endpoint", o.endpoint, "unix:/path, unix:@name or tcp:HOST:PORT")->required()->type_name("ENDPOINT");
    app.add_wait(describe, o.wait);

    auto* wait = app.verb("wait", "Wait until a server answers", [&] { return do_wait(o); });
    wait->add_option("endpoint", o.endpoint, "unix:/path, unix:@name or tcp:HOST:PORT")->required()->type_name("ENDPOINT");
    wait->add_option("--interval", o.interval, "How often to try (default 100ms)")->type_name("DUR");
    app.add_wait(wait, o.wait);

    // CLI11 splits an argument "[a,b]" on its commas; a JSON array given as
    // PARAMS must stay whole, and a trailing blank is still the same JSON.
    std::vector<std::string> bracketed;
    bracketed.reserve(static_cast<std::size_t>(argc));
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a.size() >= 2 && a.front() == '[' && a.back() == ']') {
            bracketed.emplace_back(std::string(a) + " ");
            argv[i] = bracketed.back().data();
        }
    }
    return app.run(argc, argv);
}
