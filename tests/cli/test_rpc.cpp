// SPDX-License-Identifier: MIT
// ipc-rpc, run as a real binary: a server in the background on a Unix socket
// in a private directory or on a TCP loopback port, and clients against it.
#include <catch2/catch.hpp>

#include <csignal>
#include <cstring>
#include <fstream>
#include <thread>

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "process.hpp"
#include "rpc_support.hpp"

using nlohmann::json;
using namespace std::chrono_literals;
using testing::child;
using testing::outcome;
using testing::temp_dir;

namespace {

using namespace rpc_test;

// The methods most tests use.
std::vector<std::string> methods() {
    return {"-M", "add=sh -c 'echo $(($1 + $2))' add",
            "-M", "echo=cat",
            "-M", "hello=sh -c 'printf \"hello, %s\" \"$IPC_RPC_PARAM_NAME\"'",
            "-M", "fail=sh -c 'echo broken >&2; exit 3'",
            "-M", "crash=sh -c 'kill -TERM $$'",
            "-M", "slow=sleep 60"};
}

std::vector<std::string> serve_args(const std::string& endpoint, std::vector<std::string> extra = {}) {
    std::vector<std::string> a{"serve", endpoint};
    for (auto& m : methods()) a.push_back(m);
    for (auto& e : extra) a.push_back(e);
    return a;
}

} // namespace

TEST_CASE("rpc: call with JSON, key=value, key:=json and stdin params over a Unix socket", "[rpc][call]") {
    temp_dir dir;
    server s(serve_args("unix:" + dir / "rpc.sock"));
    CHECK(s.endpoint == "unix:" + dir / "rpc.sock");

    auto r = rpc({"call", s.endpoint, "add", "[2, 40]"});
    CHECK(r.status == 0);
    CHECK(r.out == "42\n");

    r = rpc({"call", s.endpoint, "echo", "name=ann", "age:=41", "tags:=[\"a\",\"b\"]", "big:=18446744073709551615"});
    CHECK(r.status == 0);
    CHECK(parse(r.out) == json::parse(R"({"name":"ann","age":41,"tags":["a","b"],"big":18446744073709551615})"));
    // The largest 64-bit integers come back digit for digit.
    CHECK(r.out.find("18446744073709551615") != std::string::npos);

    r = rpc({"call", s.endpoint, "hello", "name=world"});
    CHECK(r.status == 0);
    CHECK(r.out == "\"hello, world\"\n");

    r = rpc({"call", s.endpoint, "echo", "-"}, std::string(R"({"from":"stdin","n":-9223372036854775808})"));
    CHECK(r.status == 0);
    CHECK(parse(r.out) == json::parse(R"({"from":"stdin","n":-9223372036854775808})"));

    r = rpc({"call", s.endpoint, "echo", R"({"a":{"b":[1,2,3]}})"});
    CHECK(r.status == 0);
    CHECK(parse(r.out)["a"]["b"] == json::array({1, 2, 3}));

    SECTION("-q prints nothing") {
        r = rpc({"call", "-q", s.endpoint, "add", "[1,1]"});
        CHECK(r.status == 0);
        CHECK(r.out.empty());
    }
    SECTION("the socket is made with mode 0600") {
        struct stat st{};
        REQUIRE(::lstat((dir / "rpc.sock").c_str(), &st) == 0);
        CHECK((st.st_mode & 07777) == 0600);
    }
}

TEST_CASE("rpc: bad params are refused before anything is sent", "[rpc][call][usage]") {
    temp_dir dir;
    server s(serve_args("unix:" + dir / "rpc.sock"));
    CHECK(rpc({"call", s.endpoint, "echo", "{\"a\":"}).status == 65);
    CHECK(rpc({"call", s.endpoint, "echo", "n:=nope"}).status == 65);
    auto r = rpc({"call", s.endpoint, "echo", "n:=123456789012345678901234567890"});
    CHECK(r.status == 65);
    CHECK(r.err.find("rounded") != std::string::npos);
    CHECK(rpc({"call", s.endpoint, "echo", "-"}, std::string("5")).status == 65);
    CHECK(rpc({"call", s.endpoint, "echo", "novalue"}).status == 64);
    CHECK(rpc({"call", "nowhere:x", "echo"}).status == 64);
    CHECK(rpc({"call", s.endpoint}).status == 64);
    CHECK(rpc({"serve", "unix:" + dir / "other.sock", "-M", "bad"}).status == 64);
    CHECK(rpc({"serve", "unix:" + dir / "other.sock", "-M", "rpc.x=true"}).status == 64);
    CHECK(rpc({"serve", "unix:" + dir / "other.sock", "-M", "x=sh -c 'open"}).status == 64);
    CHECK(rpc({"serve", "tcp:127.0.0.1:0", "--allow-uid", "0"}).status == 64);
}

TEST_CASE("rpc: serve and call over TCP on loopback, and describe", "[rpc][tcp][describe]") {
    server s(serve_args("tcp:127.0.0.1:0", {"--api-version", "1.2"}));
    REQUIRE(s.endpoint.starts_with("tcp:127.0.0.1:"));
    CHECK(s.endpoint != "tcp:127.0.0.1:0");
    auto r = rpc({"call", s.endpoint, "add", "[20, 22]"});
    CHECK(r.status == 0);
    CHECK(r.out == "42\n");

    auto d = rpc({"describe", s.endpoint, "--json"});
    REQUIRE(d.status == 0);
    auto methods = parse(d.out)["methods"];
    std::vector<std::string> names;
    for (const auto& m : methods) {
        names.push_back(m["name"]);
        CHECK(m["interface_version"] == "1.2");
    }
    CHECK(names == std::vector<std::string>{"add", "echo", "hello", "fail", "crash", "slow", "rpc.describe"});
    auto text = rpc({"describe", s.endpoint});
    CHECK(text.status == 0);
    CHECK(text.out.find("rpc.describe") != std::string::npos);

    auto raw = rpc({"call", s.endpoint, "rpc.describe"});
    CHECK(raw.status == 0);
    CHECK(parse(raw.out)["version"] == "1.2");
}

TEST_CASE("rpc: error answers are the JSON-RPC error object on stderr with status 1", "[rpc][errors]") {
    temp_dir dir;
    server s(serve_args("unix:" + dir / "rpc.sock", {"--call-timeout", "5s"}));  // only "slow" reaches it

    auto r = rpc({"call", s.endpoint, "nope"});
    CHECK(r.status == 1);
    CHECK(r.out.empty());
    CHECK(parse(r.err)["code"] == -32601);

    r = rpc({"call", s.endpoint, "fail"});
    CHECK(r.status == 1);
    auto e = parse(r.err);
    CHECK(e["code"] == -32000);
    CHECK(e["data"]["exit_status"] == 3);
    CHECK(e["data"]["stderr"] == "broken\n");

    // A command killed by a signal: the signal, not an exit status.
    r = rpc({"call", s.endpoint, "crash"});
    CHECK(r.status == 1);
    e = parse(r.err);
    CHECK(e["code"] == -32000);
    CHECK(e["data"]["signal"] == SIGTERM);
    CHECK(e["message"].get<std::string>().find("killed by signal 15") != std::string::npos);

    r = rpc({"call", s.endpoint, "slow"});
    CHECK(r.status == 1);
    CHECK(parse(r.err)["code"] == -32001);

    // The server is still serving.
    CHECK(rpc({"call", s.endpoint, "add", "[1, 2]"}).out == "3\n");
}

TEST_CASE("rpc: a reply that does not come in time is 75", "[rpc][errors][timeout]") {
    temp_dir dir;
    server s(serve_args("unix:" + dir / "rpc.sock"));
    auto r = rpc({"call", "-t", "300ms", s.endpoint, "slow"});
    CHECK(r.status == 75);
}

TEST_CASE("rpc: notifications and batches", "[rpc][notify][batch]") {
    temp_dir dir;
    std::string mark = dir / "mark";
    server s(serve_args("unix:" + dir / "rpc.sock", {"-M", "touch=touch " + mark}));

    auto r = rpc({"call", "--notify", s.endpoint, "touch"});
    CHECK(r.status == 0);
    CHECK(r.out.empty());
    CHECK(testing::eventually([&] { return ::access(mark.c_str(), F_OK) == 0; }, 30s));

    std::string batch = R"([{"method":"add","params":[1,2],"id":1},
                            {"method":"nope","id":"b"},
                            {"method":"touch"},
                            {"method":"echo","params":{"x":1},"id":3}])";
    r = rpc({"call", s.endpoint, "--batch"}, batch);
    CHECK(r.status == 1);  // one of them is an error answer
    auto replies = parse(r.out);
    REQUIRE(replies.is_array());
    REQUIRE(replies.size() == 3);
    std::map<std::string, json> by_id;
    for (const auto& e : replies) by_id[e["id"].dump()] = e;
    CHECK(by_id["1"]["result"] == 3);
    CHECK(by_id["\"b\""]["error"]["code"] == -32601);
    CHECK(by_id["3"]["result"] == json{{"x", 1}});

    r = rpc({"call", s.endpoint, "--batch"}, std::string(R"([{"method":"add","params":[1,2],"id":1}])"));
    CHECK(r.status == 0);

    // A batch of notifications only has no answer.
    r = rpc({"call", s.endpoint, "--batch"}, std::string(R"([{"method":"touch"},{"method":"touch"}])"));
    CHECK(r.status == 0);
    CHECK(r.out.empty());
}

TEST_CASE("rpc: a malformed request gets -32700 and the server keeps serving", "[rpc][robust]") {
    temp_dir dir;
    server s(serve_args("unix:" + dir / "rpc.sock"));
    raw_client c(dir / "rpc.sock");
    c.write("{this is not json\n");
    auto e = parse(c.line());
    CHECK(e["error"]["code"] == -32700);
    CHECK(e["id"].is_null());
    c.write("{\"jsonrpc\":\"2.0\",\"method\":\"add\"");  // half a frame...
    c.write(",\"params\":[5,6],\"id\":7}\n");            // ...and the rest
    auto ok = parse(c.line());
    CHECK(ok["result"] == 11);
    CHECK(ok["id"] == 7);
    c.write("{\"jsonrpc\":\"2.0\",\"id\":8}\n");
    CHECK(parse(c.line())["error"]["code"] == -32600);
    c.write("[]\n");
    CHECK(parse(c.line())["error"]["code"] == -32600);
    // Another client is served all along.
    CHECK(rpc({"call", s.endpoint, "add", "[1, 1]"}).out == "2\n");
    // A client that sends half a frame and goes away harms nobody.
    {
        raw_client half(dir / "rpc.sock");
        half.write("{\"jsonrpc\":\"2.0\",\"meth");
    }
    CHECK(rpc({"call", s.endpoint, "add", "[1, 2]"}).out == "3\n");
}

TEST_CASE("rpc: a request over --max-request is refused, then the connection closed", "[rpc][robust][limits]") {
    temp_dir dir;
    server s(serve_args("unix:" + dir / "rpc.sock", {"--max-request", "1K"}));
    auto r = rpc({"call", s.endpoint, "echo", "data=" + std::string(4096, 'x')});
    CHECK(r.status == 1);
    CHECK(parse(r.err)["code"] == -32002);
    raw_client c(dir / "rpc.sock");
    c.write(std::string(8192, ' ') + "\n");
    CHECK(parse(c.line())["error"]["code"] == -32002);
    CHECK(c.line().empty());  // closed
    CHECK(rpc({"call", s.endpoint, "echo", "data=small"}).status == 0);
}

TEST_CASE("rpc: an endpoint nobody serves is 69 and a reply that is no JSON-RPC is 76", "[rpc][errors][unreachable]") {
    temp_dir dir;
    CHECK(rpc({"call", "unix:" + dir / "absent.sock", "x"}).status == 69);
    CHECK(rpc({"call", "unix:@" + testing::unique_name("ipc-rpc-absent"), "x"}).status == 69);
    CHECK(rpc({"call", "-r", "2", "unix:" + dir / "absent.sock", "x"}).status == 69);

    // A "server" that answers with garbage.
    std::string path = dir / "liar.sock";
    int l = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(l >= 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
    REQUIRE(::bind(l, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    REQUIRE(::listen(l, 4) == 0);
    std::thread liar([l] {
        for (const char* answer : {"this is no json\n", "{\"jsonrpc\":\"2.0\",\"id\":999,\"result\":1}\n"}) {
            pollfd p{l, POLLIN, 0};
            if (::poll(&p, 1, 30000) != 1) break;
            int c = ::accept(l, nullptr, nullptr);
            if (c < 0) break;
            char buf[4096];
            [[maybe_unused]] auto n = ::read(c, buf, sizeof buf);
            [[maybe_unused]] auto w = ::write(c, answer, std::strlen(answer));
            ::close(c);
        }
    });
    CHECK(rpc({"call", "unix:" + path, "x"}).status == 76);
    CHECK(rpc({"call", "unix:" + path, "x"}).status == 76);
    liar.join();
    ::close(l);
}

TEST_CASE("rpc: --allow-uid admits by SO_PEERCRED", "[rpc][security]") {
    if (::geteuid() != 0) {
        WARN("not root: cannot run a client as nobody");
        return;
    }
    // An abstract socket has no file permissions: only the peer check decides.
    std::string ep = "unix:@" + testing::unique_name("ipc-rpc-test");
    SECTION("a uid that is not admitted is refused with 77 and the error object") {
        server s(serve_args(ep, {"--allow-uid", "12345"}));
        auto r = testing::sh(nobody() + "'" + bin + "' call " + ep + " add '[1,2]'");
        CHECK(r.status == 77);
        CHECK(r.out.empty());
        CHECK(parse(r.err)["code"] == -32003);
        // The server's own user is always admitted.
        CHECK(rpc({"call", ep, "add", "[1, 2]"}).out == "3\n");
    }
    SECTION("without --allow-uid an abstract socket admits only the server's user") {
        server s(serve_args(ep));
        CHECK(testing::sh(nobody() + "'" + bin + "' call " + ep + " add '[1,2]'").status == 77);
    }
    SECTION("an admitted uid is served") {
        server s(serve_args(ep, {"--allow-uid", "65534"}));
        auto r = testing::sh(nobody() + "'" + bin + "' call " + ep + " add '[1,2]'");
        CHECK(r.status == 0);
        CHECK(r.out == "3\n");
    }
    SECTION("a path socket keeps others out with its mode") {
        temp_dir dir;
        ::chmod(dir.path().c_str(), 0755);
        server s(serve_args("unix:" + dir / "rpc.sock"));
        CHECK(testing::sh(nobody() + "'" + bin + "' call unix:" + dir / "rpc.sock" + " add '[1,2]'").status == 77);
    }
}

TEST_CASE("rpc: --workers runs calls at once", "[rpc][workers]") {
    temp_dir dir;
    std::string marks = dir / "marks";
    REQUIRE(::mkdir(marks.c_str(), 0700) == 0);
    // Each call leaves a mark and waits (bounded) until three marks exist; it
    // prints how many it saw. Run one at a time, the first would see 1.
    std::string meet = "meet=sh -c 'touch " + marks + "/$$; i=0; while [ $(ls " + marks +
                       " | wc -l) -lt 3 ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; ls " + marks + " | wc -l'";
    server s({"serve", "unix:" + dir / "rpc.sock", "-M", meet, "--workers", "3"});
    std::vector<child> calls;
    for (int i = 0; i < 3; ++i) calls.emplace_back(std::vector<std::string>{bin, "call", s.endpoint, "meet"});
    for (auto& c : calls) {
        auto o = c.wait(60s);
        CHECK(o.status == 0);
        CHECK(o.out == "3\n");
    }
}

TEST_CASE("rpc: wait returns once the server answers and is 75 when none does", "[rpc][wait]") {
    temp_dir dir;
    std::string ep = "unix:" + dir / "rpc.sock";
    CHECK(rpc({"wait", "-t", "200ms", ep}).status == 75);
    child waiter({bin, "wait", "-t", "60s", ep});
    server s(serve_args(ep));
    auto o = waiter.wait(60s);
    CHECK(o.status == 0);
    CHECK(rpc({"wait", "-n", ep}).status == 0);
}

TEST_CASE("rpc: a second server on a live socket is refused but a stale socket is replaced", "[rpc][serve]") {
    temp_dir dir;
    std::string ep = "unix:" + dir / "rpc.sock";
    {
        server s(serve_args(ep, {"--mode", "0660"}));
        struct stat st{};
        REQUIRE(::lstat((dir / "rpc.sock").c_str(), &st) == 0);
        CHECK((st.st_mode & 07777) == 0660);
        CHECK(rpc({"serve", ep, "-M", "x=true"}).status == 73);
    }
    // SIGTERM removed the socket.
    CHECK(::access((dir / "rpc.sock").c_str(), F_OK) != 0);
    {
        // A socket left by a server that was killed.
        child killed({bin, "serve", ep, "-M", "x=true"});
        REQUIRE(testing::eventually([&] { return killed.read_stdout(0, 0ms).find('\n') != std::string::npos; }, 30s));
        killed.kill(SIGKILL);
        killed.wait(20s);
    }
    REQUIRE(::access((dir / "rpc.sock").c_str(), F_OK) == 0);
    server again(serve_args(ep));
    CHECK(rpc({"call", ep, "add", "[2, 2]"}).out == "4\n");
    std::ofstream(dir / "plain") << "x";
    CHECK(rpc({"serve", "unix:" + dir / "plain", "-M", "x=true"}).status == 73);
}
