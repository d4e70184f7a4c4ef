// SPDX-License-Identifier: MIT
// ipc-rpc against an independent JSON-RPC 2.0 implementation, both ways, over
// TCP on loopback: the npm package json-rpc-2.0 (pinned in
// tests/interop/package-lock.json), framed one JSON text per line by
// tests/interop/jsonrpc_peer.cjs and run by node. The package is installed
// into the build tree by the CTest fixture "interop: npm packages installed"
// (tests/interop/npm_install.sh).
#include <catch2/catch.hpp>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "process.hpp"

using nlohmann::json;
using namespace std::chrono_literals;
using testing::child;
using testing::outcome;
using testing::temp_dir;

namespace {

const std::string bin = IPC_RPC_BIN;
const std::string node = IPC_NODE_BIN;
const std::string peer = std::string(IPC_SOURCE_DIR) + "/tests/interop/jsonrpc_peer.cjs";
const std::string modules = std::string(IPC_INTEROP_DIR) + "/node_modules";

outcome rpc(std::vector<std::string> args, std::optional<std::string> in = std::nullopt,
            std::chrono::milliseconds limit = 30s) {
    args.insert(args.begin(), bin);
    return testing::run(std::move(args), std::move(in), limit);
}

json parse(const std::string& text) {
    auto v = json::parse(text, nullptr, false);
    INFO("not JSON: " << text);
    REQUIRE_FALSE(v.is_discarded());
    return v;
}

// The package must be there: these tests never pass without it.
void require_package() {
    INFO("json-rpc-2.0 is not installed in " << modules
         << ": run these tests through ctest, whose fixture installs it, or tests/interop/npm_install.sh "
         << IPC_INTEROP_DIR);
    REQUIRE(std::filesystem::exists(modules + "/json-rpc-2.0/package.json"));
}

std::vector<std::string> node_env() { return {"NODE_PATH=" + modules}; }

// node running jsonrpc_peer.cjs in a mode, once the package is known to be there.
std::vector<std::string> peer_argv(std::vector<std::string> args) {
    require_package();
    args.insert(args.begin(), {node, peer});
    return args;
}

// Waits until a background process has printed a whole first line on stdout
// and returns it; fails with its status and stderr when it did not.
std::string first_line(child& proc, const std::string& what) {
    bool up = testing::eventually([&] { return proc.read_stdout(0, 0ms).find('\n') != std::string::npos; }, 30s);
    auto out = proc.read_stdout(0, 0ms);
    if (!up) {
        auto o = proc.wait(5s);
        FAIL(what << " did not start: status " << o.status << ": " << o.err);
    }
    return out.substr(0, out.find('\n'));
}

// The npm package's server (jsonrpc_peer.cjs server) on a loopback port;
// stopped with SIGTERM and reaped when the test ends, also when it fails.
struct npm_server {
    child proc;
    std::string endpoint;
    npm_server() : proc(peer_argv({"server"}), std::nullopt, false, node_env()) {
        endpoint = first_line(proc, "the json-rpc-2.0 server");
        REQUIRE(endpoint.starts_with("tcp:127.0.0.1:"));
    }
    ~npm_server() {
        proc.kill(SIGTERM);
        proc.wait(20s);
    }
    // What its "note" method recorded, notifications included.
    json notes() const {
        auto r = rpc({"call", endpoint, "notes"});
        REQUIRE(r.status == 0);
        return parse(r.out);
    }
    bool noted(const json& params) const {
        auto n = notes();
        return std::find(n.begin(), n.end(), params) != n.end();
    }
};

// ipc-rpc serve on a loopback port, as in test_rpc.cpp.
struct ipc_server {
    child proc;
    std::string endpoint;
    explicit ipc_server(std::vector<std::string> args) : proc(with_bin(std::move(args))) {
        endpoint = first_line(proc, "ipc-rpc serve");
    }
    ~ipc_server() {
        proc.kill(SIGTERM);
        proc.wait(20s);
    }
    static std::vector<std::string> with_bin(std::vector<std::string> args) {
        args.insert(args.begin(), bin);
        return args;
    }
};

// The lines of a JSON-lines output, by their "step".
std::map<std::string, json> steps_of(const std::string& out) {
    std::map<std::string, json> steps;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
        if (line.empty()) continue;
        auto v = parse(line);
        REQUIRE(v.contains("step"));
        INFO("step given twice: " << line);
        CHECK(steps.count(v["step"].get<std::string>()) == 0);
        steps[v["step"].get<std::string>()] = v;
    }
    return steps;
}

// A batch's responses by their id (as JSON text).
std::map<std::string, json> by_id(const json& responses) {
    std::map<std::string, json> m;
    for (const auto& r : responses) m[r["id"].dump()] = r;
    return m;
}

} // namespace

// ---- ipc-rpc call -> the npm package's server ------------------------------

TEST_CASE("rpc interop: ipc-rpc call gets results from a json-rpc-2.0 server", "[rpc][interop][npm]") {
    npm_server s;

    // Positional params.
    auto r = rpc({"call", s.endpoint, "add", "[2, 40]"});
    CHECK(r.status == 0);
    CHECK(r.out == "42\n");
    CHECK(r.err.empty());

    // Named params, as key=value and key:=json, and as one JSON object.
    r = rpc({"call", s.endpoint, "concat", "a=foo", "b:=1"});
    CHECK(r.status == 0);
    CHECK(r.out == "\"foo1\"\n");
    r = rpc({"call", s.endpoint, "concat", R"({"a":"x","b":"y"})"});
    CHECK(r.status == 0);
    CHECK(r.out == "\"xy\"\n");

    // Params from stdin, strings with escapes and non-ASCII, nesting, both ways.
    json sent = json::parse(R"({"s":"caf\u00e9 \"q\"\n\t\\","nested":{"a":[1,-2,0.5,true,null]},"empty":{}})");
    r = rpc({"call", s.endpoint, "echo", "-"}, sent.dump());
    CHECK(r.status == 0);
    CHECK(parse(r.out) == sent);
    r = rpc({"call", s.endpoint, "echo", "[\"a\", 1, [2]]"});
    CHECK(r.status == 0);
    CHECK(parse(r.out) == json::parse(R"(["a",1,[2]])"));

    // A method without params, and a result the package writes as null.
    r = rpc({"call", s.endpoint, "nothing"});
    CHECK(r.status == 0);
    CHECK(r.out == "null\n");
    r = rpc({"call", s.endpoint, "notes"});
    CHECK(r.status == 0);
    CHECK(r.out == "[]\n");
}

TEST_CASE("rpc interop: error answers of a json-rpc-2.0 server are status 1 with the error object on stderr",
          "[rpc][interop][npm]") {
    npm_server s;

    // An application error, with its own code and data.
    auto r = rpc({"call", s.endpoint, "fail", "x:=1"});
    CHECK(r.status == 1);
    CHECK(r.out.empty());
    auto e = parse(r.err);
    CHECK(e == json::parse(R"({"code":4711,"message":"failed on purpose","data":{"reason":"asked to","params":{"x":1}}})"));

    // Invalid params, as the method says.
    r = rpc({"call", s.endpoint, "add", "[1]"});
    CHECK(r.status == 1);
    e = parse(r.err);
    CHECK(e["code"] == -32602);
    CHECK(e["data"]["got"] == json::array({1}));

    // An exception the package maps to its default code, 0.
    r = rpc({"call", s.endpoint, "crash"});
    CHECK(r.status == 1);
    e = parse(r.err);
    CHECK(e["code"] == 0);
    CHECK(e["message"] == "an unexpected exception");

    // Method not found.
    r = rpc({"call", s.endpoint, "nope", "[1]"});
    CHECK(r.status == 1);
    CHECK(r.out.empty());
    e = parse(r.err);
    CHECK(e["code"] == -32601);
    CHECK(e["message"] == "Method not found");

    // The server serves on.
    CHECK(rpc({"call", s.endpoint, "add", "[1, 2]"}).out == "3\n");
}

TEST_CASE("rpc interop: notifications from ipc-rpc call reach a json-rpc-2.0 server", "[rpc][interop][npm]") {
    npm_server s;
    auto r = rpc({"call", "--notify", s.endpoint, "note", "tag=first"});
    CHECK(r.status == 0);
    CHECK(r.out.empty());
    CHECK(r.err.empty());
    r = rpc({"call", "--notify", s.endpoint, "note", "[1, \"two\"]"});
    CHECK(r.status == 0);
    CHECK(testing::eventually([&] { return s.noted(json{{"tag", "first"}}); }, 20s));
    CHECK(testing::eventually([&] { return s.noted(json::parse(R"([1,"two"])")); }, 20s));
    // A call of the same method is answered (how many notes it holds).
    r = rpc({"call", s.endpoint, "note", "tag=third"});
    CHECK(r.status == 0);
    CHECK(r.out == "3\n");
}

TEST_CASE("rpc interop: ipc-rpc call --batch with a json-rpc-2.0 server", "[rpc][interop][npm][batch]") {
    npm_server s;

    std::string batch = R"([{"method":"add","params":[1,2],"id":1},
                            {"method":"nope","id":"b"},
                            {"method":"note","params":{"tag":"in-batch"}},
                            {"method":"concat","params":{"a":"x","b":"y"},"id":3}])";
    auto r = rpc({"call", s.endpoint, "--batch"}, batch);
    CHECK(r.status == 1);  // one of them is an error answer
    auto replies = parse(r.out);
    REQUIRE(replies.is_array());
    REQUIRE(replies.size() == 3);  // none for the notification
    auto m = by_id(replies);
    CHECK(m["1"] == json::parse(R"({"jsonrpc":"2.0","id":1,"result":3})"));
    CHECK(m["\"b\""]["error"]["code"] == -32601);
    CHECK(m["3"]["result"] == "xy");
    CHECK(testing::eventually([&] { return s.noted(json{{"tag", "in-batch"}}); }, 20s));

    // All answered without error: status 0.
    r = rpc({"call", s.endpoint, "--batch"},
            std::string(R"([{"method":"add","params":[5,6],"id":"p"},{"method":"add","params":[7,8],"id":"q"}])"));
    CHECK(r.status == 0);
    m = by_id(parse(r.out));
    CHECK(m["\"p\""]["result"] == 11);
    CHECK(m["\"q\""]["result"] == 15);

    // Notifications only: no answer, nothing printed.
    r = rpc({"call", s.endpoint, "--batch"},
            std::string(R"([{"method":"note","params":{"tag":"n1"}},{"method":"note","params":{"tag":"n2"}}])"));
    CHECK(r.status == 0);
    CHECK(r.out.empty());
    CHECK(testing::eventually([&] { return s.noted(json{{"tag", "n1"}}) && s.noted(json{{"tag", "n2"}}); }, 20s));
}

TEST_CASE("rpc interop: numbers a double rounds are refused between ipc-rpc call and a json-rpc-2.0 server",
          "[rpc][interop][npm][numbers]") {
    npm_server s;

    // Exact in a double: passes.
    auto r = rpc({"call", s.endpoint, "big", "which=safe"});
    CHECK(r.status == 0);
    CHECK(r.out == "9007199254740991\n");
    // As a string, 2^64-1 passes digit for digit.
    r = rpc({"call", s.endpoint, "big", "which=string"});
    CHECK(r.status == 0);
    CHECK(r.out == "\"18446744073709551615\"\n");
    r = rpc({"call", s.endpoint, "echo", "n=18446744073709551615"});
    CHECK(r.status == 0);
    CHECK(parse(r.out) == json{{"n", "18446744073709551615"}});

    // JavaScript writes 2^64 as 18446744073709552000, a rounded value: refused
    // (76), never passed on as if exact. So is 1e+300.
    r = rpc({"call", s.endpoint, "big", "which=2^64"});
    CHECK(r.status == 76);
    CHECK(r.out.empty());
    CHECK(r.err.find("rounded") != std::string::npos);
    r = rpc({"call", s.endpoint, "big", "which=1e300"});
    CHECK(r.status == 76);
    CHECK(r.out.empty());

    // 2^64-1 sent as a number: JavaScript rounds it on reading, and echoes
    // 18446744073709552000, which ipc-rpc refuses rather than round again.
    r = rpc({"call", s.endpoint, "echo", "n:=18446744073709551615"});
    CHECK(r.status == 76);
    CHECK(r.out.empty());
}

// ---- the npm package's client -> ipc-rpc serve ------------------------------

TEST_CASE("rpc interop: a json-rpc-2.0 client calls ipc-rpc serve over TCP", "[rpc][interop][npm]") {
    temp_dir dir;
    std::string mark = dir / "notes";
    ipc_server s({"serve", "tcp:127.0.0.1:0",
                  "-M", "add=sh -c 'echo $(($1 + $2))' add",
                  "-M", "hello=sh -c 'printf \"hello, %s\" \"$IPC_RPC_PARAM_NAME\"'",
                  "-M", "echo=cat",
                  "-M", "text=printf 'plain text'",
                  "-M", "nothing=true",
                  "-M", "big=echo 18446744073709551615",
                  "-M", "fail=sh -c 'echo broken >&2; exit 3'",
                  "-M", "note=sh -c 'printf \"%s\\n\" \"$IPC_RPC_PARAM_TAG\" >> " + mark + "'"});
    REQUIRE(s.endpoint.starts_with("tcp:127.0.0.1:"));
    std::string port = s.endpoint.substr(s.endpoint.rfind(':') + 1);

    child client(peer_argv({"client", "127.0.0.1", port}), std::nullopt, false, node_env());
    auto o = client.wait(60s);
    INFO("client stdout:\n" << o.out << "client stderr:\n" << o.err);
    REQUIRE(o.status == 0);
    auto st = steps_of(o.out);

    // Results: positional and named params, JSON output, text output, none.
    CHECK(st["positional"]["result"] == 42);
    CHECK(st["named"]["result"] == "hello, world");
    CHECK(st["echo"]["result"] == json::parse(R"({"a":{"b":[1,2,3]},"s":"caf\u00e9 \"quoted\"\n","neg":-7,"f":0.5})"));
    CHECK(st["text"]["result"] == "plain text");
    CHECK(st["nothing"].contains("result"));
    CHECK(st["nothing"]["result"].is_null());
    CHECK(st["big"].contains("result"));

    // Errors: method not found, and a failing command with its status and stderr.
    CHECK(st["missing"]["error"]["code"] == -32601);
    CHECK(st["missing"]["error"]["message"].get<std::string>().find("nope") != std::string::npos);
    CHECK(st["fail"]["error"]["code"] == -32000);
    CHECK(st["fail"]["error"]["data"]["exit_status"] == 3);
    CHECK(st["fail"]["error"]["data"]["stderr"] == "broken\n");

    // A request with a string id is answered with that id.
    CHECK(st["string-id"]["response"] == json::parse(R"({"jsonrpc":"2.0","id":"str-1","result":2})"));

    // The batch: one array, no answer for its notification.
    auto batch = st["batch"]["response"];
    REQUIRE(batch.is_array());
    REQUIRE(batch.size() == 3);
    auto m = by_id(batch);
    CHECK(m["\"b1\""]["result"] == 3);
    CHECK(m["\"b2\""]["error"]["code"] == -32601);
    CHECK(m["\"b3\""]["result"] == json{{"x", 1}});

    // On the wire: one line per request with an id (8 by client.request with
    // ids 1..8, "str-1") and one array for the batch; nothing for the two
    // notifications, and every answer a well-formed JSON-RPC 2.0 response.
    REQUIRE(st["wire"]["lines"].is_array());
    std::multiset<std::string> ids;
    std::size_t arrays = 0;
    std::string big_line;
    for (const auto& l : st["wire"]["lines"]) {
        auto v = parse(l.get<std::string>());
        if (v.is_array()) {
            ++arrays;
            continue;
        }
        CHECK(v["jsonrpc"] == "2.0");
        CHECK(v.contains("result") != v.contains("error"));
        ids.insert(v["id"].dump());
        if (v.contains("result") && v["result"].is_number_unsigned() && v["result"] == 18446744073709551615ULL)
            big_line = l.get<std::string>();
    }
    CHECK(arrays == 1);
    CHECK(ids == std::multiset<std::string>{"1", "2", "3", "4", "5", "6", "7", "8", "\"str-1\""});
    // 2^64-1 leaves ipc-rpc digit for digit (JavaScript rounds it on reading).
    CHECK(big_line.find("18446744073709551615") != std::string::npos);

    // ipc-rpc closes the connection once the client has ended its side.
    CHECK(st["closed"]["closed"] == true);

    // Both notifications ran their command.
    auto noted = [&] {
        std::ifstream in(mark);
        std::set<std::string> lines;
        for (std::string line; std::getline(in, line);) lines.insert(line);
        return lines;
    };
    CHECK(testing::eventually([&] { return noted() == std::set<std::string>{"from-npm", "from-npm-batch"}; }, 20s));
}
