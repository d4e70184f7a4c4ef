// SPDX-License-Identifier: MIT
// ipc-rpc: JSON-RPC 2.0 remote procedure calls from the shell over Unix and
// TCP sockets. Parses, calls lib/, emits.
#include <algorithm>
#include <fstream>
#include <sstream>
#include <cstdio>
#include <iostream>
#include <iterator>

#include <grp.h>
#include <pwd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include "ipc/cli.hpp"
#include "ipc/error.hpp"
#include "ipc/parse.hpp"
#include "ipc/rpc.hpp"

#include "gen.hpp"

namespace {

using namespace ipc;
using rpc::json;

struct options {
    std::string endpoint;
    // serve
    std::vector<std::string> methods;
    std::string interface_file;
    unsigned workers = 4;
    std::string call_timeout = "1m";
    std::string max_request = "1M";
    unsigned max_connections = 64;
    std::string mode = "0600";
    std::vector<std::string> allow_uid, allow_gid;
    std::string api_version;
    std::string state_dir;
    std::size_t reply_cache = 4096;
    std::string idle_timeout = "5m";
    std::string register_as;
    // binding
    std::string registry;
    std::string services;
    // call
    std::string method;
    std::vector<std::string> params;
    bool notify = false;
    bool batch = false;
    std::optional<unsigned> retries;
    std::string semantics = "at-most-once";
    std::string client_id;
    std::string id;
    std::string encoding = "json";
    std::string lease;
    bool by_value = false;
    std::vector<std::string> callbacks;
    // gen
    std::string lang = "cpp";
    std::string output;
    // wait
    std::string interval = "100ms";
    cli::wait_options wait;
};

parse::endpoint registry_of(const options& o) {
    return o.registry.empty() ? rpc::registry::default_endpoint() : parse::socket_endpoint(o.registry);
}

std::string services_of(const options& o) { return o.services.empty() ? rpc::registry::default_services_file() : o.services; }

// ENDPOINT or SERVICE[@VERSION]: endpoints as they are, names through the
// services file and the registry.
parse::endpoint target_of(const options& o, const std::string& text) {
    return rpc::registry::resolve(text, services_of(o), registry_of(o), o.wait.value());
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

// Params given as KEY=@FILE: passed by reference (a shared-memory segment)
// to a server on a Unix socket, else inline as the file's text.
struct file_params {
    bool by_reference = false;
    std::vector<rpc::outgoing_ref> refs;
    std::vector<std::pair<std::string, std::size_t>> inout;  // FILE, index in refs
};

json file_value(const std::string& spec, file_params& fp) {
    std::string path = spec;
    bool inout = false;
    if (path.ends_with(":inout")) {
        inout = true;
        path.resize(path.size() - 6);
    } else if (path.ends_with(":in")) path.resize(path.size() - 3);
    if (path.empty()) throw usage_error(fmt::format("'@{}': no file name", spec));
    if (fp.by_reference) {
        fp.refs.push_back(rpc::outgoing_ref::from_file(path, inout));
        if (inout) fp.inout.emplace_back(path, fp.refs.size() - 1);
        return fp.refs.back().value();
    }
    if (inout) throw usage_error(fmt::format("'@{}': :inout needs a server on a Unix socket (by reference)", spec));
    std::ifstream in(path, std::ios::binary);
    if (!in) throw system_error(errno, "open", "", path);
    std::ostringstream all;
    all << in.rdbuf();
    std::string text = std::move(all).str();
    try {
        (void)json(text).dump();  // strict: valid UTF-8 only
    } catch (const json::exception&) {
        throw data_error(fmt::format("'{}' is not UTF-8 text: pass it by reference, to a server on a Unix socket", path));
    }
    return text;
}

// PARAMS: nothing, one JSON object or array, '-' (JSON on stdin), or
// key=value, key=@FILE and key:=json pairs.
json params_of(const std::vector<std::string>& args, file_params& fp) {
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
            throw usage_error(fmt::format("invalid parameter '{}': expected KEY=VALUE, KEY=@FILE, KEY:=JSON, or one JSON "
                                          "object or array",
                                          a));
        if (a[eq - 1] == ':') obj[a.substr(0, eq - 1)] = user_json(a.substr(eq + 1), fmt::format("the value of '{}'", a.substr(0, eq - 1)));
        else if (a.compare(eq + 1, 1, "@") == 0) obj[a.substr(0, eq)] = file_value(a.substr(eq + 2), fp);
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

error malformed(const std::string& why) { return error(exit_code::protocol, "malformed reply: " + why); }

// A callback's command, run as the server runs a method's: params as extra
// arguments (array) or IPC_RPC_PARAM_<KEY> variables (object), all of them as
// JSON on stdin; its output is the result, a failure an error answer.
json run_callback(const std::vector<std::string>& command, const std::string& name, const json& params) {
    auto text = [](const json& v) { return v.is_string() ? v.get<std::string>() : rpc::dump(v); };
    std::vector<std::string> args = command, env;
    if (params.is_array())
        for (const auto& e : params) args.push_back(text(e));
    for (char** e = environ; *e; ++e)
        if (!std::string_view(*e).starts_with("IPC_RPC_")) env.emplace_back(*e);
    env.push_back("IPC_RPC_METHOD=" + name);
    env.push_back("IPC_RPC_PARAMS=" + rpc::dump(params));
    if (params.is_object())
        for (auto it = params.begin(); it != params.end(); ++it)
            if (!it.value().is_null()) {
                std::string k = "IPC_RPC_PARAM_";
                for (unsigned char c : it.key()) k += std::isalnum(c) ? static_cast<char>(std::toupper(c)) : '_';
                env.push_back(k + "=" + text(it.value()));
            }
    unique_fd in(::memfd_create("ipc-rpc-callback-in", MFD_CLOEXEC)), err(::memfd_create("ipc-rpc-callback-err", MFD_CLOEXEC));
    if (!in || !err) throw system_error(errno, "create", "memory file", "callback");
    std::string input = rpc::dump(params) + "\n";
    if (::write(in.get(), input.data(), input.size()) != static_cast<ssize_t>(input.size()) || ::lseek(in.get(), 0, SEEK_SET) != 0)
        throw system_error(errno, "write", "memory file", "callback");
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) throw system_error(errno, "create", "pipe", "callback");
    unique_fd out_r(p[0]), out_w(p[1]);
    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) throw system_error(errno, "start", "callback", name);
    if (pid == 0) {
        if (::dup2(in.get(), 0) < 0 || ::dup2(out_w.get(), 1) < 0 || ::dup2(err.get(), 2) < 0) ::_exit(127);
        ::execvpe(argv[0], argv.data(), envp.data());
        ::_exit(127);
    }
    out_w.reset();
    std::string output;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(out_r.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        output.append(buf, static_cast<std::size_t>(n));
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::string errors(65536, '\0');
        ssize_t n = ::pread(err.get(), errors.data(), errors.size(), 0);
        errors.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
        int st = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        throw rpc::remote_error(rpc::error_object(rpc::code::command_failed,
                                                  fmt::format("callback '{}' failed with exit status {}", name, st),
                                                  {{"exit_status", st}, {"stderr", errors}}));
    }
    if (output.find_first_not_of(" \t\r\n") == std::string::npos) return nullptr;
    if (auto v = rpc::parse_json(output); v && rpc::numbers_exact(*v)) return *v;
    if (output.ends_with('\n')) output.pop_back();
    return output;
}

rpc::client_options client_options_of(const options& o) {
    rpc::client_options co;
    co.timeout = o.wait.value();
    co.enc = rpc::encoding_named(o.encoding);
    co.sem = rpc::semantics_named(o.semantics);
    co.retries = o.retries ? *o.retries : (co.sem == rpc::semantics::at_most_once ? 0 : 10);
    co.client_id = o.client_id;
    if (!o.lease.empty()) co.lease = std::chrono::duration_cast<std::chrono::milliseconds>(parse::positive_duration(o.lease, "lease"));
    if (co.lease && co.lease->count() == 0) throw usage_error("--lease must be at least 1ms");
    for (const auto& spec : o.callbacks) {
        auto eq = spec.find('=');
        if (eq == std::string::npos || eq == 0) throw usage_error(fmt::format("invalid --callback '{}': expected NAME=COMMAND", spec));
        std::string name = spec.substr(0, eq);
        auto argv = rpc::split_command(spec.substr(eq + 1));
        if (argv.empty()) throw usage_error(fmt::format("invalid --callback '{}': empty COMMAND", spec));
        if (co.callbacks.count(name)) throw usage_error(fmt::format("callback '{}' is given twice", name));
        co.callbacks[name] = [argv, name](const json& params) { return run_callback(argv, name, params); };
    }
    return co;
}

// at-least-once resends a request: only for a method the interface marks
// idempotent (the interface file given, else the server's description).
void check_idempotent(const options& o, const parse::endpoint& ep, const std::vector<std::string>& methods) {
    json described;
    if (!o.interface_file.empty()) {
        auto iface = rpc::load_interface(o.interface_file);
        described = json::array();
        for (const auto& m : iface.methods) described.push_back({{"name", m.name}, {"idempotent", m.idempotent}});
    } else {
        rpc::client_options co;
        co.timeout = o.wait.value();
        rpc::client c(ep, co);
        json d = c.describe();
        described = d.is_object() && d.contains("methods") ? d["methods"] : json::array();
    }
    for (const auto& name : methods) {
        bool ok = false;
        for (const auto& m : described)
            if (m.is_object() && m.value("name", "") == name && m.value("idempotent", false) == true) ok = true;
        if (!ok)
            throw usage_error(fmt::format("--semantics at-least-once may run a call twice: method '{}' is not marked "
                                          "idempotent in {}",
                                          name, o.interface_file.empty() ? "the server's interface" : o.interface_file));
    }
}

json request_id(const options& o, rpc::client& c) {
    if (!o.id.empty()) {
        auto v = rpc::parse_json(o.id);
        if (v && (v->is_number_integer() || v->is_string())) return *v;
        return o.id;  // a bare word is a string id
    }
    // Recorded calls need ids unique across runs of the same client id.
    return rpc::semantics_named(o.semantics) == rpc::semantics::at_most_once && o.client_id.empty() ? json(1) : json(c.next_id());
}

int do_call(const options& o) {
    auto ep = target_of(o, o.endpoint);
    auto co = client_options_of(o);
    if (o.notify && co.sem != rpc::semantics::at_most_once) throw usage_error("a notification has no reply: it is sent at most once");
    rpc::client c(ep, co);
    if (o.batch) {
        if (!o.method.empty() || !o.params.empty()) throw usage_error("--batch reads the requests from stdin: give no METHOD or PARAMS");
        if (o.notify) throw usage_error("choose --batch or --notify");
        json reqs = user_json(read_stdin(), "the batch on stdin");
        if (!reqs.is_array() || reqs.empty()) throw data_error("a batch is a non-empty JSON array of requests");
        bool expect = false;
        std::vector<std::string> names;
        for (auto& r : reqs) {
            if (r.is_object() && !r.contains("jsonrpc")) r["jsonrpc"] = "2.0";
            if (!r.is_object() || r.contains("id")) expect = true;
            if (r.is_object() && r.contains("method") && r["method"].is_string()) names.push_back(r["method"]);
        }
        if (co.sem == rpc::semantics::at_least_once) check_idempotent(o, ep, names);
        auto reply = c.exchange(reqs, expect);
        if (!reply) return 0;
        // Only an error with a null id answers a batch with one object (the
        // batch itself was refused); anything else is not JSON-RPC 2.0.
        if (reply->is_object() && rpc::valid_response(*reply) && (*reply)["id"].is_null() && reply->contains("error"))
            return answer(*reply);
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
    if (co.sem == rpc::semantics::at_least_once) check_idempotent(o, ep, {o.method});
    file_params fp;
    fp.by_reference = !o.by_value && (ep.type == parse::endpoint::kind::unix_path || ep.type == parse::endpoint::kind::unix_abstract);
    json params = params_of(o.params, fp);
    if (o.notify && !fp.refs.empty())
        throw usage_error("--notify does not wait for the server, which would find a by-reference param already gone: "
                          "add --by-value");
    json id = request_id(o, c);
    auto request = rpc::make_request(o.method, params, o.notify ? std::nullopt : std::optional<json>(id));
    auto reply = c.exchange(request, !o.notify);
    if (!reply) return 0;
    if (!rpc::valid_response(*reply)) throw malformed("not a JSON-RPC 2.0 response");
    // An error about a request the server could not read carries a null id.
    if ((*reply)["id"] != id && !((*reply)["id"].is_null() && reply->contains("error")))
        throw malformed(fmt::format("the id {} is not the request's", rpc::dump((*reply)["id"])));
    // Copy-out: an inout file takes the server's changes only after success.
    if (!reply->contains("error"))
        for (const auto& [path, i] : fp.inout) fp.refs[i].write_back(path);
    return answer(*reply);
}

json describe_of(const options& o, const parse::endpoint& ep) {
    rpc::client_options co;
    co.timeout = o.wait.value();
    co.enc = rpc::encoding_named(o.encoding);
    rpc::client c(ep, co);
    try {
        return c.describe();
    } catch (const rpc::remote_error& e) {
        int st = answer(json{{"jsonrpc", "2.0"}, {"error", e.object()}, {"id", 1}});
        throw error(static_cast<exit_code>(st), "rpc.describe failed");
    }
}

int do_describe(const options& o) {
    auto ep = target_of(o, o.endpoint);
    json d = describe_of(o, ep);
    if (!d.is_object() || !d.contains("methods") || !d["methods"].is_array()) throw malformed("rpc.describe's result has no methods");
    std::vector<out::record> records;
    auto as_out = [](const json& v) { return out::json::parse(v.dump()); };
    for (const auto& m : d["methods"]) {
        out::record r;
        auto field = [&](const char* k) { return m.contains(k) ? as_out(m[k]) : out::json(nullptr); };
        r.add("name", field("name")).add("params", field("params")).add("result", field("result"));
        r.add("idempotent", field("idempotent")).add("run_to_completion", field("run_to_completion")).add("doc", field("doc"));
        r.add("interface", d.contains("interface") ? as_out(d["interface"]) : out::json(nullptr));
        r.add("interface_version", d.contains("version") ? as_out(d["version"]) : out::json(nullptr));
        records.push_back(std::move(r));
    }
    cli::emit("methods", records, out::layout::list);
    return 0;
}

int do_wait(const options& o) {
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
        try {
            // A service name is looked up again on every try: it may not be
            // registered yet.
            auto ep = rpc::registry::resolve(o.endpoint, services_of(o), registry_of(o), give);
            rpc::client_options co;
            co.timeout = give;
            rpc::client c(ep, co);
            c.describe();
            if (cli::format() != out::format::text) {
                out::record r;
                r.add("endpoint", ep.str()).add("answering", true);
                cli::emit("servers", std::vector{r});
            }
            return 0;
        } catch (const interrupted&) {
            throw;
        } catch (const rpc::remote_error&) {
            return 0;  // it answered, if only with an error
        } catch (const error& e) {
            if (e.code() == exit_code::usage) throw;
            last = e.what();
        }
        if (until.expired()) throw temp_failure(fmt::format("'{}' did not answer within the timeout ({})", o.endpoint, last), ETIMEDOUT);
        sleep_until(until, step);
        if (until.expired()) throw temp_failure(fmt::format("'{}' did not answer within the timeout ({})", o.endpoint, last), ETIMEDOUT);
    }
}

int do_replies(const options& o) {
    if (o.client_id.empty()) throw usage_error("replies needs --client-id: the client whose recorded replies to collect");
    auto ep = target_of(o, o.endpoint);
    rpc::client_options co;
    co.timeout = o.wait.value();
    co.enc = rpc::encoding_named(o.encoding);
    rpc::client c(ep, co);
    json all = c.call("rpc.replies", json{{"client", o.client_id}});
    if (!all.is_array()) throw malformed("rpc.replies did not answer an array");
    std::vector<out::record> records;
    for (const auto& e : all) {
        out::record r;
        r.add("id", out::json::parse(e.value("id", json()).dump()));
        r.add("state", e.value("state", std::string("unknown")));
        r.add("reply", e.contains("reply") ? out::json::parse(e["reply"].dump()) : out::json(nullptr));
        records.push_back(std::move(r));
    }
    cli::emit("replies", records, out::layout::table);
    return 0;
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

// The options serve and registry share: limits and who may connect.
rpc::server_options common_server_options(const options& o, const parse::endpoint& ep) {
    rpc::server_options so;
    if (o.workers == 0) throw usage_error("--workers must be at least 1");
    if (o.max_connections == 0) throw usage_error("--max-connections must be at least 1");
    so.workers = o.workers;
    so.max_connections = o.max_connections;
    so.call_timeout = parse::duration(o.call_timeout);
    if (so.call_timeout && so.call_timeout->count() <= 0) throw usage_error("--call-timeout must be above 0 (or inf)");
    so.max_request = parse::size(o.max_request);
    if (so.max_request == 0) throw usage_error("--max-request must be above 0");
    so.mode = parse::mode(o.mode);
    bool is_unix = ep.type == parse::endpoint::kind::unix_path || ep.type == parse::endpoint::kind::unix_abstract;
    if (!is_unix && (!o.allow_uid.empty() || !o.allow_gid.empty()))
        throw usage_error("--allow-uid and --allow-gid need a unix: endpoint (TCP and UDP peers have no credentials)");
    for (const auto& u : o.allow_uid) so.allow_uids.push_back(uid_of(u));
    for (const auto& g : o.allow_gid) so.allow_gids.push_back(gid_of(g));
    so.idle_timeout = parse::duration(o.idle_timeout);
    if (so.idle_timeout && so.idle_timeout->count() <= 0) throw usage_error("--idle-timeout must be above 0 (or inf)");
    if (ep.type == parse::endpoint::kind::unix_abstract && o.mode != "0600")
        cli::warn("abstract sockets have no permissions: --mode has no effect; use --allow-uid");
    return so;
}

// Prints the endpoint as bound (the real port for tcp:HOST:0) once it accepts.
void announce(const parse::endpoint& where) {
    if (cli::quiet()) return;
    if (cli::format() == out::format::text) out::stdout_stream().write(where.str() + "\n");
    else {
        out::record r;
        r.add("endpoint", where.str());
        cli::emit("servers", std::vector{r});
    }
    out::stdout_stream().flush();
}

int do_serve(const options& o) {
    auto ep = parse::socket_endpoint(o.endpoint);
    rpc::server_options so = common_server_options(o, ep);
    std::vector<std::pair<std::string, std::vector<std::string>>> commands;
    for (const auto& spec : o.methods) {
        auto eq = spec.find('=');
        if (eq == std::string::npos || eq == 0) throw usage_error(fmt::format("invalid --method '{}': expected NAME=COMMAND", spec));
        std::string name = spec.substr(0, eq);
        auto argv = rpc::split_command(spec.substr(eq + 1));
        if (name.starts_with("rpc.")) throw usage_error(fmt::format("invalid --method '{}': names beginning with 'rpc.' are reserved", name));
        if (argv.empty()) throw usage_error(fmt::format("invalid --method '{}': empty COMMAND", spec));
        for (const auto& other : commands)
            if (other.first == name) throw usage_error(fmt::format("method '{}' is given twice", name));
        commands.emplace_back(name, std::move(argv));
    }
    if (!o.interface_file.empty()) {
        auto iface = rpc::load_interface(o.interface_file);
        if (!o.api_version.empty() && o.api_version != iface.version)
            throw usage_error(fmt::format("--api-version {} contradicts the interface's version {}", o.api_version, iface.version));
        for (auto& [name, argv] : commands) {
            auto it = std::find_if(iface.methods.begin(), iface.methods.end(), [&](const rpc::method& m) { return m.name == name; });
            if (it == iface.methods.end())
                throw usage_error(fmt::format("--method '{}': the interface {} has no such method", name, o.interface_file));
            it->argv = argv;
        }
        for (const auto& m : iface.methods)
            if (m.argv.empty())
                throw usage_error(fmt::format("method '{}' of {} has no command: give it \"command\" or --method {}=COMMAND",
                                              m.name, o.interface_file, m.name));
        so.methods = std::move(iface.methods);
        so.api_version = iface.version;
        so.interface_name = iface.name;
    } else {
        for (auto& [name, argv] : commands) {
            rpc::method m;
            m.name = name;
            m.argv = std::move(argv);
            so.methods.push_back(std::move(m));
        }
        so.api_version = o.api_version.empty() ? "0" : o.api_version;
    }
    if (so.methods.empty()) throw usage_error("no methods: give --method NAME=COMMAND or --interface FILE");
    so.state_dir = o.state_dir;
    if (o.reply_cache == 0) throw usage_error("--reply-cache must be at least 1");
    so.reply_cache = o.reply_cache;
    std::string version = so.api_version;

    rpc::listener l(ep, so.mode);
    rpc::server s(std::move(l), std::move(so));
    std::optional<rpc::registry::registration> reg;
    if (!o.register_as.empty()) {
        auto [name, ver] = rpc::registry::split_service(o.register_as);
        reg.emplace(registry_of(o), name, ver.empty() ? version : ver, s.where().str());
    }
    announce(s.where());
    s.run();
    return 0;
}

int do_registry(const options& o) {
    auto ep = o.endpoint.empty() ? rpc::registry::default_endpoint() : parse::socket_endpoint(o.endpoint);
    if (ep.type == parse::endpoint::kind::udp) throw usage_error("the registry listens on a stream socket: unix: or tcp:");
    rpc::server_options so = common_server_options(o, ep);
    rpc::listener l(ep, so.mode);
    announce(l.where());
    rpc::registry::serve(std::move(l), std::move(so));
    return 0;
}

int do_ls(const options& o) {
    json entries = rpc::registry::read_services(services_of(o));
    try {
        rpc::client_options co;
        co.timeout = o.wait.value() ? *o.wait.value() : std::chrono::seconds(10);
        rpc::client c(registry_of(o), co);
        for (auto e : c.call("registry.list")) {
            e["source"] = "registry";
            entries.push_back(std::move(e));
        }
    } catch (const error& e) {
        if (e.code() != exit_code::unavailable) throw;
        if (entries.empty()) throw error(exit_code::unavailable, fmt::format("the registry at {} cannot be reached", registry_of(o).str()));
        cli::warn(fmt::format("the registry at {} cannot be reached: showing the services file only", registry_of(o).str()));
    }
    std::vector<out::record> records;
    for (const auto& e : entries) {
        out::record r;
        r.add("name", e.value("name", "")).add("version", e.value("version", "0")).add("endpoint", e.value("endpoint", ""));
        r.add("source", e.value("source", ""));
        r.add("pid", e.contains("pid") ? out::json(e["pid"].get<long long>()) : out::json(nullptr));
        r.add("since", e.contains("since") ? out::json(e["since"].get<std::string>()) : out::json(nullptr));
        records.push_back(std::move(r));
    }
    cli::emit("services", records, out::layout::table);
    return 0;
}

int do_gen(const options& o) {
    if (o.lang != "cpp") throw usage_error(fmt::format("unknown --lang '{}': cpp is the language stubs are made for", o.lang));
    std::ifstream in(o.interface_file, std::ios::binary);
    if (!in) throw system_error(errno, "open", "interface", o.interface_file);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto v = rpc::parse_json(text);
    if (!v) throw data_error(fmt::format("interface '{}' is not valid JSON", o.interface_file));
    std::string header;
    try {
        header = rpc::gen::cpp_header(*v, o.interface_file.substr(o.interface_file.find_last_of('/') + 1));
    } catch (const error& e) {
        throw error(e.code(), fmt::format("{}: {}", o.interface_file, e.what()));
    }
    if (o.output.empty() || o.output == "-") {
        out::stdout_stream().write(header);
        return 0;
    }
    // Written whole or not at all.
    std::string tmp = o.output + ".tmp";
    {
        std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
        if (!f) throw system_error(errno, "create", "file", tmp);
        f << header;
        f.flush();
        if (!f) throw system_error(errno, "write", "file", tmp);
    }
    if (std::rename(tmp.c_str(), o.output.c_str()) != 0) throw system_error(errno, "rename", "file", tmp);
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    cli::app app("ipc-rpc",
                 "JSON-RPC 2.0 remote procedure calls over Unix, TCP and UDP sockets: serve, call, describe, wait, "
                 "replies, registry, ls, gen.");
    options o;
    const char* target_help = "unix:/path, unix:@name, tcp:HOST:PORT, udp:HOST:PORT, or SERVICE[@VERSION]";
    auto add_binding = [&](CLI::App* v) {
        v->add_option("--registry", o.registry, "The registry to use (default $IPC_RPC_REGISTRY or unix:@ipc-rpc.registry.UID)")
            ->type_name("ENDPOINT");
        v->add_option("--services", o.services, "The services file (default $IPC_RPC_SERVICES or ~/.config/ipc-rpc/services)")
            ->type_name("FILE");
    };
    auto add_encoding = [&](CLI::App* v) {
        v->add_option("-e,--encoding", o.encoding, "json, cbor or msgpack (default json)")->type_name("ENC");
    };

    auto* serve = app.verb("serve", "Serve methods, each run as a command per call", [&] { return do_serve(o); });
    serve->add_option("endpoint", o.endpoint, "unix:/path, unix:@name, tcp:HOST:PORT or udp:HOST:PORT")->required()->type_name("ENDPOINT");
    serve->add_option("-M,--method", o.methods, "A method: NAME=COMMAND (repeatable)")->type_name("NAME=COMMAND")->allow_extra_args(false);
    serve->add_option("-I,--interface", o.interface_file, "Methods, typed params and version from an interface file")->type_name("FILE");
    serve->add_option("-w,--workers", o.workers, "Calls run at once (default 4)")->type_name("N");
    serve->add_option("--call-timeout", o.call_timeout, "Time limit of one call; its command is killed (default 1m)")
        ->type_name("DUR");
    serve->add_option("--max-request", o.max_request, "Largest request (default 1M)")->type_name("SIZE");
    serve->add_option("--max-connections", o.max_connections, "Connections served at once (default 64)")->type_name("N");
    serve->add_option("--allow-uid", o.allow_uid, "Admit this user too (repeatable; unix: only)")->type_name("UID")->allow_extra_args(false);
    serve->add_option("--allow-gid", o.allow_gid, "Admit this group too (repeatable; unix: only)")->type_name("GID")->allow_extra_args(false);
    serve->add_option("--api-version", o.api_version, "The interface version rpc.describe reports (default 0)")
        ->type_name("VER");
    serve->add_option("--state", o.state_dir, "Record calls and replies durably in DIR (exactly-once)")->type_name("DIR");
    serve->add_option("--reply-cache", o.reply_cache, "Calls and replies kept, in memory and in --state (default 4096)")
        ->type_name("N");
    serve->add_option("--idle-timeout", o.idle_timeout, "Close a connection silent this long with no call running (default 5m)")
        ->type_name("DUR");
    serve->add_option("--register", o.register_as, "Register in the registry while serving")->type_name("NAME[@VERSION]");
    serve->add_option("--registry", o.registry, "The registry to use (default $IPC_RPC_REGISTRY or unix:@ipc-rpc.registry.UID)")
        ->type_name("ENDPOINT");
    app.add_mode(serve, o.mode);

    auto* call = app.verb("call", "Call a method and print its result", [&] { return do_call(o); });
    call->add_option("endpoint", o.endpoint, target_help)->required()->type_name("TARGET");
    call->add_option("method", o.method, "The method to call")->type_name("METHOD");
    call->add_option("params", o.params, "A JSON object or array, '-' (JSON on stdin), or KEY=VALUE, KEY=@FILE[:inout] and KEY:=JSON")
        ->type_name("PARAMS");
    call->add_flag("--notify", o.notify, "Send a notification: no reply, exit 0 once sent");
    call->add_flag("--batch", o.batch, "Send the JSON array of requests on stdin as one batch");
    call->add_option("-s,--semantics", o.semantics, "at-most-once (default), at-least-once or exactly-once")->type_name("SEM");
    call->add_option("-r,--retries", o.retries,
                     "Attempts after the first (default 0 at-most-once, which only reconnects; 10 otherwise)")
        ->type_name("N");
    call->add_option("--client-id", o.client_id, "This client's identity for recorded replies (default: random)")->type_name("ID");
    call->add_option("--id", o.id, "The request id (default 1; unique per call when replies are recorded)")->type_name("ID");
    call->add_option("--lease", o.lease, "Ask the server to cancel the call when this client is silent this long")->type_name("DUR");
    call->add_option("-I,--interface", o.interface_file, "The interface file that says which methods are idempotent")->type_name("FILE");
    call->add_flag("--by-value", o.by_value, "Send KEY=@FILE params inline as text, also over a Unix socket");
    call->add_option("--callback", o.callbacks, "A procedure the server may call back while the call runs (repeatable)")
        ->type_name("NAME=COMMAND")
        ->allow_extra_args(false);
    add_encoding(call);
    add_binding(call);
    app.add_wait(call, o.wait);

    auto* describe = app.verb("describe", "List a server's methods and its interface version", [&] { return do_describe(o); });
    describe->add_option("endpoint", o.endpoint, target_help)->required()->type_name("TARGET");
    add_encoding(describe);
    add_binding(describe);
    app.add_wait(describe, o.wait);

    auto* wait = app.verb("wait", "Wait until a server answers", [&] { return do_wait(o); });
    wait->add_option("endpoint", o.endpoint, target_help)->required()->type_name("TARGET");
    wait->add_option("--interval", o.interval, "How often to try (default 100ms)")->type_name("DUR");
    add_binding(wait);
    app.add_wait(wait, o.wait);

    auto* replies = app.verb("replies", "List the calls and replies a server recorded for a client id", [&] { return do_replies(o); });
    replies->add_option("endpoint", o.endpoint, target_help)->required()->type_name("TARGET");
    replies->add_option("--client-id", o.client_id, "The client whose records to list")->required()->type_name("ID");
    add_encoding(replies);
    add_binding(replies);
    app.add_wait(replies, o.wait);

    auto* registry = app.verb("registry", "Run the registry that binds service names to endpoints", [&] { return do_registry(o); });
    registry->add_option("endpoint", o.endpoint, "Where to listen (default $IPC_RPC_REGISTRY or unix:@ipc-rpc.registry.UID)")
        ->type_name("ENDPOINT");
    registry->add_option("--max-connections", o.max_connections, "Connections served at once (default 64)")->type_name("N");
    registry->add_option("--allow-uid", o.allow_uid, "Admit this user too (repeatable; unix: only)")->type_name("UID")->allow_extra_args(false);
    registry->add_option("--allow-gid", o.allow_gid, "Admit this group too (repeatable; unix: only)")->type_name("GID")->allow_extra_args(false);
    app.add_mode(registry, o.mode);

    auto* ls = app.verb("ls", "List services: the registry's entries and the services file's", [&] { return do_ls(o); });
    add_binding(ls);
    app.add_wait(ls, o.wait);

    auto* gen = app.verb("gen", "Write C++ client and server stubs for an interface file", [&] { return do_gen(o); });
    gen->add_option("interface", o.interface_file, "The interface file (JSON)")->required()->type_name("IFACE");
    gen->add_option("--lang", o.lang, "The stubs' language (cpp)")->type_name("LANG");
    gen->add_option("-f,--output-file", o.output, "Write the header here (default: standard output)")->type_name("FILE");

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
