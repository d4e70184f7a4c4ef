// SPDX-License-Identifier: MIT
// JSON-RPC 2.0: the codec, line framing, and the server core over real Unix
// sockets with real commands.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstring>
#include <fstream>
#include <map>
#include <thread>

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ipc/error.hpp"
#include "ipc/fd.hpp"
#include "ipc/rpc.hpp"
#include "process.hpp"

using namespace ipc;
using namespace std::chrono_literals;
using rpc::json;

namespace {

// A server running in a thread of the test, stopped and joined at the end,
// also when the test fails.
struct serving {
    rpc::server s;
    std::thread t;
    serving(const ipc::parse::endpoint& ep, rpc::server_options o) : s(rpc::listener(ep, 0600), std::move(o)), t([this] { s.run(); }) {}
    ~serving() {
        s.stop();
        t.join();
    }
};

rpc::method command(std::string name, std::vector<std::string> argv) {
    rpc::method m;
    m.name = std::move(name);
    m.argv = std::move(argv);
    return m;
}

int error_code_of(const json& response) { return response.at("error").at("code").get<int>(); }

// A server on a Unix socket in a private directory, run by a thread, stopped
// and joined when the test ends (also when it fails).
struct running_server {
    testing::temp_dir dir;
    parse::endpoint ep;
    std::unique_ptr<rpc::server> srv;
    std::thread thread;
    std::exception_ptr failure;

    explicit running_server(rpc::server_options o) {
        ep = parse::socket_endpoint("unix:" + dir / "rpc.sock");
        srv = std::make_unique<rpc::server>(rpc::listener(ep, o.mode), std::move(o));
        thread = std::thread([this] {
            try {
                srv->run();
            } catch (...) {
                failure = std::current_exception();
            }
        });
    }
    ~running_server() {
        srv->stop();
        thread.join();
    }
    // One request on a fresh connection, one reply.
    json call(const json& request) {
        auto fd = rpc::connect(ep, deadline::after(20s));
        rpc::send(fd.get(), request, deadline::after(20s));
        return rpc::receive(fd.get(), rpc::max_reply, deadline::after(30s));
    }
};

rpc::method sh_method(const std::string& name, const std::string& script) {
    return command(name, {"sh", "-c", script, name});
}

} // namespace

TEST_CASE("rpc: messages are built and validated as JSON-RPC 2.0 says", "[rpc][codec]") {
    auto req = rpc::make_request("add", json::array({1, 2}), json(7));
    CHECK(req == json::parse(R"({"jsonrpc":"2.0","method":"add","params":[1,2],"id":7})"));
    auto note = rpc::make_request("log", nullptr, std::nullopt);
    CHECK_FALSE(note.contains("id"));
    CHECK_FALSE(note.contains("params"));

    auto ok = rpc::validate_request(req);
    REQUIRE(std::holds_alternative<rpc::request>(ok));
    CHECK(std::get<rpc::request>(ok).method == "add");
    CHECK(*std::get<rpc::request>(ok).id == 7);
    auto n = rpc::validate_request(note);
    REQUIRE(std::holds_alternative<rpc::request>(n));
    CHECK(std::get<rpc::request>(n).notification());

    SECTION("invalid requests get -32600 with the id when it is usable") {
        for (const char* text : {R"({"method":"x","id":1})", R"({"jsonrpc":"1.0","method":"x","id":1})",
                                 R"({"jsonrpc":"2.0","method":5,"id":1})", R"({"jsonrpc":"2.0","method":"x","params":3,"id":1})",
                                 R"({"jsonrpc":"2.0","method":"x","extra":true,"id":1})"}) {
            INFO(text);
            auto r = rpc::validate_request(json::parse(text));
            REQUIRE(std::holds_alternative<json>(r));
            CHECK(error_code_of(std::get<json>(r)) == rpc::code::invalid_request);
            CHECK(std::get<json>(r)["id"] == 1);
        }
        auto bad_id = rpc::validate_request(json::parse(R"({"jsonrpc":"2.0","method":"x","id":{"a":1}})"));
        REQUIRE(std::holds_alternative<json>(bad_id));
        CHECK(std::get<json>(bad_id)["id"].is_null());
        auto not_object = rpc::validate_request(json(5));
        REQUIRE(std::holds_alternative<json>(not_object));
        CHECK(error_code_of(std::get<json>(not_object)) == rpc::code::invalid_request);
    }

    SECTION("responses") {
        CHECK(rpc::valid_response(rpc::result_response(1, "x")));
        CHECK(rpc::valid_response(rpc::error_response(nullptr, rpc::code::parse_error)));
        CHECK(rpc::error_response(1, rpc::code::method_not_found)["error"]["message"] == "Method not found");
        CHECK_FALSE(rpc::valid_response(json::parse(R"({"jsonrpc":"2.0","id":1})")));
        CHECK_FALSE(rpc::valid_response(json::parse(R"({"jsonrpc":"2.0","id":1,"result":1,"error":{"code":1,"message":"x"}})")));
        CHECK_FALSE(rpc::valid_response(json::parse(R"({"jsonrpc":"2.0","id":1,"error":{"code":"x","message":"x"}})")));
        CHECK_FALSE(rpc::valid_response(json::parse(R"({"result":1,"id":1})")));
    }
}

TEST_CASE("rpc: 64-bit integers survive, numbers that would be rounded are refused", "[rpc][codec][numbers]") {
    auto big = rpc::parse_json(R"({"u":18446744073709551615,"i":-9223372036854775808,"p":9007199254740993})");
    REQUIRE(big);
    CHECK(rpc::numbers_exact(*big));
    CHECK((*big)["u"].get<std::uint64_t>() == 18446744073709551615ull);
    CHECK((*big)["p"].get<std::int64_t>() == 9007199254740993ll);
    CHECK(rpc::dump(*big) == R"({"i":-9223372036854775808,"p":9007199254740993,"u":18446744073709551615})");

    auto too_big = rpc::parse_json(R"([1, {"x": 123456789012345678901234567890}])");
    REQUIRE(too_big);
    CHECK_FALSE(rpc::numbers_exact(*too_big));
    CHECK_FALSE(rpc::numbers_exact(*rpc::parse_json("9007199254740992.0")));
    CHECK(rpc::numbers_exact(*rpc::parse_json("0.5")));
    CHECK(rpc::numbers_exact(*rpc::parse_json("-9007199254740991.0")));

    auto r = rpc::validate_request(json::parse(R"({"jsonrpc":"2.0","method":"x","params":[1e300],"id":1})"));
    REQUIRE(std::holds_alternative<json>(r));
    CHECK(error_code_of(std::get<json>(r)) == rpc::code::invalid_request);

    CHECK_FALSE(rpc::parse_json("{\"a\":"));
    CHECK_FALSE(rpc::parse_json("[1,2] x"));
}

TEST_CASE("rpc: lines are split and held to their size limit", "[rpc][framing]") {
    rpc::line_reader r(8);
    std::string line;
    r.feed("abc\r\nde", 7);
    CHECK(r.next(line) == rpc::line_reader::status::line);
    CHECK(line == "abc");
    CHECK(r.next(line) == rpc::line_reader::status::need_more);
    r.feed("fghij\n", 6);
    CHECK(r.next(line) == rpc::line_reader::status::line);
    CHECK(line == "defghij");
    r.feed("123456789", 9);
    CHECK(r.next(line) == rpc::line_reader::status::need_more);  // maybe a '\r' comes next
    r.feed("0", 1);
    CHECK(r.next(line) == rpc::line_reader::status::too_long);

    rpc::line_reader exact(4);
    exact.feed("abcd\nabcde\n", 11);
    CHECK(exact.next(line) == rpc::line_reader::status::line);
    CHECK(line == "abcd");
    CHECK(exact.next(line) == rpc::line_reader::status::too_long);
}

TEST_CASE("rpc: commands are split like a shell's words, without expansion", "[rpc][codec]") {
    CHECK(rpc::split_command("sh -c 'echo $1' x") == std::vector<std::string>{"sh", "-c", "echo $1", "x"});
    CHECK(rpc::split_command(R"(a "b c" d\ e "q\"x")") == std::vector<std::string>{"a", "b c", "d e", "q\"x"});
    CHECK(rpc::split_command("  ''  ") == std::vector<std::string>{""});
    CHECK_THROWS_AS(rpc::split_command("echo 'open"), ipc::error);
}

TEST_CASE("rpc: the client maps an unreachable endpoint to 69 and a silent server to 75", "[rpc][client]") {
    testing::temp_dir dir;
    auto ep = parse::socket_endpoint("unix:" + dir / "absent.sock");
    try {
        rpc::connect(ep, deadline::after(5s));
        FAIL("connected to a socket that does not exist");
    } catch (const ipc::error& e) {
        CHECK(e.code() == exit_code::unavailable);
    }
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    unique_fd a(sv[0]), b(sv[1]);
    try {
        rpc::receive(a.get(), 1024, deadline::after(50ms));
        FAIL("a reply came from nowhere");
    } catch (const ipc::error& e) {
        CHECK(e.code() == exit_code::temp_fail);
    }
    SECTION("replies that arrive together are taken one by one") {
        std::string two = "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":1}\r\n\n{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":2}\n";
        REQUIRE(::write(b.get(), two.data(), two.size()) == static_cast<ssize_t>(two.size()));
        CHECK(rpc::receive(a.get(), 1024, deadline::after(5s))["id"] == 1);
        CHECK(rpc::receive(a.get(), 1024, deadline::after(5s))["id"] == 2);
    }
    SECTION("a reply over the limit is a protocol error (76)") {
        std::string big = "[\"" + std::string(2000, 'x') + "\"]\n";
        REQUIRE(::write(b.get(), big.data(), big.size()) == static_cast<ssize_t>(big.size()));
        try {
            rpc::receive(a.get(), 1024, deadline::after(5s));
            FAIL("accepted an oversize reply");
        } catch (const ipc::error& e) {
            CHECK(e.code() == exit_code::protocol);
        }
    }
    SECTION("a reply that is no JSON, a half reply, and a close are protocol errors (76)") {
        std::string what;
        SECTION("garbage") { what = "hello\n"; }
        SECTION("half a frame, then close") { what = "{\"jsonrpc\":"; }
        SECTION("close at once") {}
        if (!what.empty()) REQUIRE(::write(b.get(), what.data(), what.size()) == static_cast<ssize_t>(what.size()));
        b.reset();
        try {
            rpc::receive(a.get(), 1024, deadline::after(5s));
            FAIL("accepted a broken reply");
        } catch (const ipc::error& e) {
            CHECK(e.code() == exit_code::protocol);
        }
    }
}

TEST_CASE("rpc: the server runs commands and answers calls", "[rpc][server]") {
    rpc::server_options o;
    o.methods.push_back(sh_method("add", "echo $(($1 + $2))"));
    o.methods.push_back(sh_method("env", "printf '%s|%s|%s' \"$IPC_RPC_METHOD\" \"$IPC_RPC_ID\" \"$IPC_RPC_PARAM_USER_NAME\""));
    o.methods.push_back(command("stdin", {"cat"}));
    o.methods.push_back(sh_method("fail", "echo oops >&2; exit 4"));
    o.methods.push_back(sh_method("slow", "sleep 30"));
    o.methods.push_back(command("missing", {"/nonexistent/command"}));
    o.call_timeout = 5s;  // generous: only "slow" (sleep 30) may reach it
    o.api_version = "2.1";
    running_server s(std::move(o));

    auto r = s.call(rpc::make_request("add", json::array({2, 40}), json("a")));
    CHECK(r == json::parse(R"({"jsonrpc":"2.0","id":"a","result":42})"));

    r = s.call(rpc::make_request("env", json{{"user-name", "ann"}}, json(9)));
    CHECK(r["result"] == "env|9|ann");

    auto params = json::parse(R"({"big":18446744073709551615,"s":"x"})");
    r = s.call(rpc::make_request("stdin", params, json(1)));
    CHECK(r["result"] == params);

    r = s.call(rpc::make_request("fail", nullptr, json(2)));
    CHECK(error_code_of(r) == rpc::code::command_failed);
    CHECK(r["error"]["data"]["exit_status"] == 4);
    CHECK(r["error"]["data"]["stderr"] == "oops\n");
    CHECK(r["id"] == 2);

    r = s.call(rpc::make_request("slow", nullptr, json(3)));
    CHECK(error_code_of(r) == rpc::code::timed_out);

    r = s.call(rpc::make_request("missing", nullptr, json(4)));
    CHECK(error_code_of(r) == rpc::code::command_failed);
    CHECK(r["error"]["data"]["exit_status"] == 127);

    r = s.call(rpc::make_request("nope", nullptr, json(5)));
    CHECK(error_code_of(r) == rpc::code::method_not_found);

    r = s.call(rpc::make_request("rpc.describe", nullptr, json(6)));
    CHECK(r["result"]["version"] == "2.1");
    CHECK(r["result"]["methods"].size() == 7);

    SECTION("a batch is answered by one array; notifications get nothing") {
        auto fd = rpc::connect(s.ep, deadline::after(20s));
        json b = json::array({rpc::make_request("add", json::array({1, 1}), json(1)),
                              rpc::make_request("add", json::array({1, 1}), std::nullopt), json(5),
                              rpc::make_request("nope", nullptr, json(2))});
        rpc::send(fd.get(), b, deadline::after(20s));
        auto reply = rpc::receive(fd.get(), rpc::max_reply, deadline::after(30s));
        REQUIRE(reply.is_array());
        REQUIRE(reply.size() == 3);
        std::map<std::string, int> by_id;
        for (const auto& e : reply) {
            CHECK(rpc::valid_response(e));
            by_id[rpc::dump(e["id"])] = e.contains("error") ? error_code_of(e) : 0;
        }
        CHECK(by_id["1"] == 0);
        CHECK(by_id["2"] == rpc::code::method_not_found);
        CHECK(by_id["null"] == rpc::code::invalid_request);
    }

    SECTION("garbage gets -32700 and the connection keeps serving") {
        auto fd = rpc::connect(s.ep, deadline::after(20s));
        std::string junk = "{\"jsonrpc\": nope\n";
        REQUIRE(::write(fd.get(), junk.data(), junk.size()) == static_cast<ssize_t>(junk.size()));
        auto reply = rpc::receive(fd.get(), rpc::max_reply, deadline::after(30s));
        CHECK(error_code_of(reply) == rpc::code::parse_error);
        CHECK(reply["id"].is_null());
        rpc::send(fd.get(), rpc::make_request("add", json::array({1, 2}), json(8)), deadline::after(20s));
        CHECK(rpc::receive(fd.get(), rpc::max_reply, deadline::after(30s))["result"] == 3);
    }
}

TEST_CASE("rpc: an oversize request is refused and the connection closed", "[rpc][server][limits]") {
    rpc::server_options o;
    o.methods.push_back(command("stdin", {"cat"}));
    o.max_request = 1024;
    running_server s(std::move(o));
    auto fd = rpc::connect(s.ep, deadline::after(20s));
    json big = rpc::make_request("stdin", json::array({std::string(4096, 'x')}), json(1));
    rpc::send(fd.get(), big, deadline::after(20s));
    auto reply = rpc::receive(fd.get(), rpc::max_reply, deadline::after(30s));
    CHECK(error_code_of(reply) == rpc::code::request_too_large);
    // Then the server closes: the next read sees the end.
    char c;
    REQUIRE(wait_fd(fd.get(), POLLIN, deadline::after(30s)) != 0);
    CHECK(::read(fd.get(), &c, 1) == 0);
    // And another client is served.
    CHECK(s.call(rpc::make_request("stdin", json{{"k", 1}}, json(2)))["result"] == json{{"k", 1}});
}

TEST_CASE("rpc: the socket is made with its mode, and a stale one is replaced", "[rpc][server][listener]") {
    testing::temp_dir dir;
    auto ep = parse::socket_endpoint("unix:" + dir / "s.sock");
    {
        rpc::listener l(ep, 0600);
        struct stat st{};
        REQUIRE(::lstat(ep.path.c_str(), &st) == 0);
        CHECK(S_ISSOCK(st.st_mode));
        CHECK((st.st_mode & 07777) == 0600);
        try {
            rpc::listener second(ep, 0600);
            FAIL("two servers on one socket");
        } catch (const ipc::error& e) {
            CHECK(e.code() == exit_code::exists);
        }
    }
    // The listener removed its socket.
    CHECK(::access(ep.path.c_str(), F_OK) != 0);
    // A socket nobody listens on is stale and is replaced.
    {
        unique_fd raw(::socket(AF_UNIX, SOCK_STREAM, 0));
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::strncpy(sa.sun_path, ep.path.c_str(), sizeof sa.sun_path - 1);
        REQUIRE(::bind(raw.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    }
    rpc::listener l(ep, 0640);
    struct stat st{};
    REQUIRE(::lstat(ep.path.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0640);
}

TEST_CASE("rpc: calls run at once up to the number of workers", "[rpc][server][workers]") {
    testing::temp_dir marks;
    rpc::server_options o;
    // Each call leaves a mark and waits (bounded) until three marks exist:
    // with three workers all three finish; the test never measures time.
    o.methods.push_back(sh_method("meet", "touch '" + marks.path().string() +
                                              "'/$IPC_RPC_ID; i=0; while [ $(ls '" + marks.path().string() +
                                              "' | wc -l) -lt 3 ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; "
                                              "ls '" + marks.path().string() + "' | wc -l"));
    o.workers = 3;
    o.call_timeout = 60s;
    running_server s(std::move(o));
    std::vector<std::thread> callers;
    std::vector<json> replies(3);
    for (int i = 0; i < 3; ++i)
        callers.emplace_back([&, i] { replies[i] = s.call(rpc::make_request("meet", nullptr, json(i + 1))); });
    for (auto& t : callers) t.join();
    for (const auto& r : replies) CHECK(r["result"] == 3);
}

TEST_CASE("rpc: JSON nested too deep is malformed, and the server survives it", "[rpc][codec][robust]") {
    auto nested = [](std::size_t n) { return std::string(n, '[') + std::string(n, ']'); };
    CHECK(rpc::parse_json(nested(rpc::max_depth)));
    CHECK_FALSE(rpc::parse_json(nested(rpc::max_depth + 1)));

    rpc::server_options o;
    o.methods.push_back(command("stdin", {"cat"}));
    o.max_request = 4u << 20;
    running_server s(std::move(o));
    auto fd = rpc::connect(s.ep, deadline::after(20s));
    std::string deep = R"({"jsonrpc":"2.0","method":"stdin","params":)" + nested(500000) + R"(,"id":1})" + "\n";
    std::size_t done = 0;
    while (done < deep.size()) {
        ssize_t n = ::send(fd.get(), deep.data() + done, deep.size() - done, MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN) {
            REQUIRE(wait_fd(fd.get(), POLLOUT, deadline::after(30s)) != 0);
            continue;
        }
        REQUIRE(n > 0);
        done += static_cast<std::size_t>(n);
    }
    CHECK(error_code_of(rpc::receive(fd.get(), rpc::max_reply, deadline::after(30s))) == rpc::code::parse_error);
    CHECK(s.call(rpc::make_request("stdin", json{{"ok", true}}, json(2)))["result"] == json{{"ok", true}});
}

TEST_CASE("rpc: calls beyond the queue's bound are answered busy", "[rpc][server][limits]") {
    testing::temp_dir dir;
    std::string go = dir / "go";
    rpc::server_options o;
    // Waits (bounded) until the test says go.
    o.methods.push_back(sh_method("block", "i=0; while [ ! -e '" + go + "' ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; echo done"));
    o.workers = 1;
    o.max_queued = 1;
    running_server s(std::move(o));
    auto fd = rpc::connect(s.ep, deadline::after(20s));
    for (int id = 1; id <= 3; ++id) rpc::send(fd.get(), rpc::make_request("block", nullptr, json(id)), deadline::after(20s));
    // At most two calls fit (one running, one waiting): the third at least is busy.
    auto first = rpc::receive(fd.get(), rpc::max_reply, deadline::after(30s));
    CHECK(error_code_of(first) == rpc::code::server_busy);
    { std::ofstream(go) << "go"; }
    int ok = 0, busy = 1;
    for (int i = 0; i < 2; ++i) {
        auto r = rpc::receive(fd.get(), rpc::max_reply, deadline::after(60s));
        if (r.contains("result")) {
            CHECK(r["result"] == "done");
            ++ok;
        } else {
            CHECK(error_code_of(r) == rpc::code::server_busy);
            ++busy;
        }
    }
    CHECK(ok >= 1);
    CHECK(ok + busy == 3);
}

TEST_CASE("rpc: versions match as a caret, or exactly with '='", "[rpc][version]") {
    CHECK(rpc::version_satisfies("1.2.0", "1"));
    CHECK(rpc::version_satisfies("1.9.3", "1.2"));
    CHECK(rpc::version_satisfies("1.2.0", "1.2.0"));
    CHECK(rpc::version_satisfies("1.2.7", "1.2"));
    CHECK(rpc::version_satisfies("1.10", "1.9"));
    CHECK_FALSE(rpc::version_satisfies("1.1.9", "1.2"));
    CHECK_FALSE(rpc::version_satisfies("2.0", "1.2"));
    CHECK_FALSE(rpc::version_satisfies("0.9", "1"));
    CHECK(rpc::version_satisfies("1.2.0", "=1.2.0"));
    CHECK_FALSE(rpc::version_satisfies("1.2.1", "=1.2.0"));
    CHECK(rpc::version_satisfies("beta", "beta"));
    CHECK_FALSE(rpc::version_satisfies("beta", "1"));
}

TEST_CASE("rpc: interface types accept exactly their values", "[rpc][types]") {
    using rpc::json;
    CHECK(rpc::type_matches(json(-3), "int"));
    CHECK_FALSE(rpc::type_matches(json(18446744073709551615ULL), "int"));
    CHECK(rpc::type_matches(json(18446744073709551615ULL), "uint"));
    CHECK_FALSE(rpc::type_matches(json(-1), "uint"));
    CHECK(rpc::type_matches(json(1.5), "float"));
    CHECK(rpc::type_matches(json(2), "float"));
    CHECK_FALSE(rpc::type_matches(json("2"), "float"));
    CHECK(rpc::type_matches(json::parse("[1,2]"), "[int]"));
    CHECK_FALSE(rpc::type_matches(json::parse("[1,\"a\"]"), "[int]"));
    CHECK(rpc::type_matches(json::parse(R"({"a":[true]})"), "{[bool]}"));
    CHECK(rpc::type_matches(json(), "string?"));
    CHECK_FALSE(rpc::type_matches(json(), "string"));
    CHECK(rpc::type_matches(json::parse(R"({"x":null})"), "json"));
    CHECK(rpc::valid_type("[{int}]?"));
    CHECK_FALSE(rpc::valid_type("[int?]"));
    CHECK_FALSE(rpc::valid_type("integer"));
    CHECK_FALSE(rpc::valid_type("[int"));
}

TEST_CASE("rpc: frames in every encoding survive being cut anywhere", "[rpc][encoding]") {
    using rpc::json;
    json v = {{"jsonrpc", "2.0"}, {"id", 18446744073709551615ULL}, {"method", "m"}, {"params", {1, -2, "x", nullptr}}};
    for (auto enc : {rpc::encoding::json, rpc::encoding::cbor, rpc::encoding::msgpack}) {
        INFO(rpc::name_of(enc));
        std::string wire;
        if (enc == rpc::encoding::cbor) wire += static_cast<char>(rpc::cbor_marker);
        if (enc == rpc::encoding::msgpack) wire += static_cast<char>(rpc::msgpack_marker);
        wire += rpc::frame(v, enc) + rpc::frame(v, enc);
        for (std::size_t cut = 1; cut < wire.size(); ++cut) {
            rpc::frame_reader r(1 << 20);
            std::vector<json> got;
            std::string payload;
            auto drain = [&] {
                while (r.next(payload) == rpc::frame_reader::status::message) got.push_back(*rpc::decode_binary(payload, *r.enc()));
            };
            r.feed(wire.data(), cut);
            drain();
            r.feed(wire.data() + cut, wire.size() - cut);
            drain();
            REQUIRE(got.size() == 2);
            CHECK(got[0] == v);
            CHECK(r.enc() == enc);
        }
        rpc::encoding seen;
        CHECK(rpc::from_datagram(rpc::datagram(v, enc), seen) == v);
        CHECK(seen == enc);
    }
    // Nesting past the limit and floats that would round are refused.
    std::string deep;
    for (int i = 0; i < 300; ++i) deep += '\x81';  // CBOR arrays of one
    deep += '\x01';
    CHECK_FALSE(rpc::decode_binary(deep, rpc::encoding::cbor));
    auto huge = json::to_cbor(json(1e300));
    auto decoded = rpc::decode_binary(std::string(huge.begin(), huge.end()), rpc::encoding::cbor);
    REQUIRE(decoded);
    CHECK_FALSE(rpc::numbers_exact(*decoded));  // refused by whoever reads it
    CHECK_FALSE(rpc::decode_binary("\xff\xff", rpc::encoding::msgpack));
    // A frame longer than the limit is too_long before its bytes arrive.
    rpc::frame_reader r(16);
    r.expect(rpc::encoding::cbor);
    std::string big = rpc::frame(json(std::string(100, 'x')), rpc::encoding::cbor);
    r.feed(big.data(), 4);
    std::string p;
    CHECK(r.next(p) == rpc::frame_reader::status::too_long);
}

TEST_CASE("rpc: a C++ handler server and the client class, with cancellation when the caller goes", "[rpc][client][handler]") {
    using rpc::json;
    testing::temp_dir dir;
    std::atomic<bool> saw_cancel{false};
    rpc::server_options o;
    rpc::method echo;
    echo.name = "echo";
    echo.fn = [](rpc::call& c) -> json { return c.req().params; };
    rpc::method fail;
    fail.name = "fail";
    fail.fn = [](rpc::call&) -> json { throw rpc::remote_error(rpc::error_object(-32099, "nope", {{"why", 1}})); };
    rpc::method wait;
    wait.name = "wait";
    wait.fn = [&](rpc::call& c) -> json {
        pollfd p{c.cancel_fd(), POLLIN, 0};
        ::poll(&p, 1, 20000);
        saw_cancel = c.cancelled();
        return nullptr;
    };
    rpc::method size;
    size.name = "size";
    size.fn = [](rpc::call& c) -> json { return c.req().params[0].get<std::string>().size(); };
    o.methods = {echo, fail, wait, size, command("stdin", {"cat"})};
    auto ep = ipc::parse::socket_endpoint("unix:" + dir / "h.sock");
    serving in_thread(ep, o);

    for (auto enc : {rpc::encoding::json, rpc::encoding::cbor, rpc::encoding::msgpack}) {
        rpc::client_options co;
        co.enc = enc;
        co.timeout = std::chrono::seconds(20);
        rpc::client c(ep, co);
        CHECK(c.call("echo", json{{"n", 18446744073709551615ULL}})["n"] == 18446744073709551615ULL);
        CHECK(c.call("echo", json::array({1, 2})) == json::array({1, 2}));  // the connection is kept
        try {
            c.call("fail");
            FAIL("no error");
        } catch (const rpc::remote_error& e) {
            CHECK(e.code() == -32099);
            CHECK(e.object()["data"]["why"] == 1);
        }
        CHECK_THROWS_AS(c.call("absent"), rpc::remote_error);
    }
    {
        // Large strings by reference: the handler gets the bytes, a command
        // the reference, and the segment is gone after the call.
        rpc::client_options co;
        co.by_reference_from = 1024;
        rpc::client c(ep, co);
        std::string big(1 << 20, 'q');
        big[12345] = 'z';
        CHECK(c.call("size", json::array({big, "small"})) == big.size());
        CHECK(c.call("echo", json::array({"short"})) == json::array({"short"}));
        // A command given an array reads the path among its arguments...
        CHECK(c.call("stdin", json::array({big})) == big);
        // ...and sees the reference in the JSON on its stdin.
        auto seen = c.call("stdin", json{{"data", big}});
        REQUIRE(seen.contains("data"));
        REQUIRE(seen["data"].is_object());
        std::string seg = seen["data"]["$shm"];
        CHECK(seen["data"]["size"] == big.size());
        CHECK(::access(("/dev/shm" + seg).c_str(), F_OK) != 0);
    }
    {
        rpc::client_options co;
        co.timeout = std::chrono::milliseconds(300);
        rpc::client c(ep, co);
        try {
            c.call("wait");
            FAIL("no timeout");
        } catch (const ipc::error& e) {
            CHECK(e.code() == ipc::exit_code::temp_fail);
        }
    }  // the client dropped its connection after the timeout: the call is cancelled
    CHECK(testing::eventually([&] { return saw_cancel.load(); }, std::chrono::seconds(10)));
}

TEST_CASE("rpc: a quick handler runs on the connection's reader thread, in batches and under exactly-once too", "[rpc][handler][quick]") {
    using rpc::json;
    testing::temp_dir dir;
    std::atomic<std::thread::id> quick_on{}, worker_on{};
    rpc::method quick;
    quick.name = "quick";
    quick.quick = true;
    quick.fn = [&](rpc::call& c) -> json {
        quick_on = std::this_thread::get_id();
        return c.req().params;
    };
    rpc::method slow = quick;
    slow.name = "slow";
    slow.quick = false;
    slow.fn = [&](rpc::call& c) -> json {
        worker_on = std::this_thread::get_id();
        return c.req().params;
    };
    rpc::method fail;
    fail.name = "fail";
    fail.quick = true;
    fail.fn = [](rpc::call&) -> json { throw rpc::remote_error(rpc::error_object(-32099, "nope")); };
    rpc::server_options o;
    o.methods = {quick, slow, fail};
    o.state_dir = dir / "state";
    auto ep = ipc::parse::socket_endpoint("unix:" + dir / "q.sock");
    serving in_thread(ep, o);

    for (auto enc : {rpc::encoding::json, rpc::encoding::cbor, rpc::encoding::msgpack}) {
        INFO(rpc::name_of(enc));
        rpc::client_options co;
        co.enc = enc;
        co.timeout = std::chrono::seconds(20);
        rpc::client c(ep, co);
        CHECK(c.call("quick", json::array({1, "x"})) == json::array({1, "x"}));
        CHECK(c.call("slow", json{{"a", 2}}) == json{{"a", 2}});
        CHECK_THROWS_AS(c.call("fail"), rpc::remote_error);
        // A batch of quick and worker calls: one array with every answer.
        auto reply = c.exchange(json::array({rpc::make_request("quick", json::array({1}), json(1)),
                                             rpc::make_request("slow", json::array({2}), json(2)),
                                             rpc::make_request("quick", json::array({3}), std::nullopt)}),
                                true);
        REQUIRE(reply);
        REQUIRE(reply->is_array());
        CHECK(reply->size() == 2);
    }
    // The connection's reader ran it: not the thread that called run()
    // (it only accepts), and not a worker.
    CHECK(quick_on.load() != std::thread::id());
    CHECK(quick_on.load() != in_thread.t.get_id());
    CHECK(quick_on.load() != worker_on.load());
    CHECK(worker_on.load() != in_thread.t.get_id());

    // Under exactly-once a quick call is recorded, and a resend is answered
    // from the record.
    rpc::client_options co;
    co.sem = rpc::semantics::exactly_once;
    co.client_id = "quick-test";
    rpc::client c(ep, co);
    json req = rpc::make_request("quick", json::array({7}), json(42));
    auto first = c.exchange(req, true);
    auto again = c.exchange(req, true);
    REQUIRE(first);
    REQUIRE(again);
    CHECK((*first)["result"] == json::array({7}));
    CHECK(*again == *first);
}
