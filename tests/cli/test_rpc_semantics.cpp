// SPDX-License-Identifier: MIT
// ipc-rpc beyond one plain call: interface files and typed params, binary
// encodings, the registry and the services file, failure semantics
// (exactly-once across a server crash, at-least-once only when idempotent,
// outcome unknown), orphaned calls, UDP through a lossy relay, and the stubs
// the stub compiler writes, against real servers and clients.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <iostream>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "process.hpp"
#include "rpc_support.hpp"

using namespace rpc_test;
using testing::temp_dir;

namespace {

const std::string calc_json = std::string(IPC_SOURCE_DIR) + "/tests/stubs/calc.json";

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::size_t lines_in(const std::string& path) {
    auto s = slurp(path);
    return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n'));
}

bool process_alive(const std::string& pidfile) {
    auto text = slurp(pidfile);
    if (text.empty()) return false;
    pid_t pid = std::stoi(text);
    // A zombie is gone too.
    auto stat = slurp("/proc/" + std::to_string(pid) + "/stat");
    if (stat.empty()) return false;
    auto close = stat.rfind(')');
    return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
}

// An interface file written for one test, from calc.json with changes.
std::string iface_variant(const temp_dir& dir, const std::string& name, const std::function<void(json&)>& change) {
    auto v = json::parse(slurp(calc_json));
    change(v);
    std::string path = dir / name;
    std::ofstream(path) << v.dump(2);
    return path;
}

// A private registry: a unique abstract socket.
struct registry {
    std::string endpoint = "unix:@" + testing::unique_name("ipc-rpc-registry");
    server proc{{"registry", endpoint}};
};

// A frame: 4-byte big-endian length and payload.
std::string frame_of(const std::vector<std::uint8_t>& bytes) {
    std::uint32_t n = htonl(static_cast<std::uint32_t>(bytes.size()));
    std::string out(reinterpret_cast<const char*>(&n), 4);
    out.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    return out;
}

json read_frame(raw_client& c, bool cbor) {
    auto len = c.read(4);
    REQUIRE(len.size() == 4);
    std::uint32_t n;
    std::memcpy(&n, len.data(), 4);
    auto body = c.read(ntohl(n));
    REQUIRE(body.size() == ntohl(n));
    return cbor ? json::from_cbor(body) : json::from_msgpack(body);
}

} // namespace

TEST_CASE("rpc: an interface file types the params, names positional ones, and describes itself", "[rpc][interface]") {
    temp_dir dir;
    server s({"serve", "unix:" + dir / "calc.sock", "-I", calc_json});

    CHECK(rpc({"call", s.endpoint, "add", "a:=2", "b:=40"}).out == "42\n");
    // Positional params are named by the interface: the command reads
    // IPC_RPC_PARAM_A and _B either way.
    CHECK(rpc({"call", s.endpoint, "add", "[2, 40]"}).out == "42\n");
    CHECK(rpc({"call", s.endpoint, "greet", "name=Ann"}).out == "\"hello, Ann\"\n");
    CHECK(rpc({"call", s.endpoint, "greet", "name=Ann", "title=Dr"}).out == "\"hello, Dr Ann\"\n");
    CHECK(rpc({"call", s.endpoint, "stats", "values:=[3,9,4]"}).out == "{\"count\":3,\"max\":9,\"sum\":16}\n");
    CHECK(rpc({"call", s.endpoint, "big", "n:=18446744073709551615"}).out == "18446744073709551615\n");

    // Wrong types, missing and unknown params: -32602 with the reason.
    for (auto args : std::vector<std::vector<std::string>>{{"add", "a=2", "b:=40"},
                                                           {"add", "a:=2"},
                                                           {"add", "a:=1", "b:=2", "c:=3"},
                                                           {"add", "[1, 2, 3]"},
                                                           {"big", "n:=-1"},
                                                           {"stats", "values:=[1,\"x\"]"}}) {
        args.insert(args.begin(), s.endpoint);
        args.insert(args.begin(), "call");
        auto r = rpc(args);
        INFO(args[2] << " " << args[3]);
        CHECK(r.status == 1);
        auto e = parse(r.err);
        CHECK(e["code"] == -32602);
        CHECK(e["message"].get<std::string>().find("Invalid params: ") == 0);
    }

    auto d = rpc({"describe", s.endpoint, "-o", "json"});
    REQUIRE(d.status == 0);
    auto methods = parse(d.out)["methods"];
    REQUIRE(methods.size() == 7);  // six and rpc.describe
    CHECK(methods[0]["name"] == "add");
    CHECK(methods[0]["params"] == json::parse(R"([{"name":"a","type":"int"},{"name":"b","type":"int"}])"));
    CHECK(methods[0]["result"] == "int");
    CHECK(methods[0]["idempotent"] == true);
    CHECK(methods[0]["interface"] == "calc");
    CHECK(methods[0]["interface_version"] == "1.2.0");
    CHECK(methods[4]["name"] == "bump");
    CHECK(methods[4]["idempotent"] == false);
}

TEST_CASE("rpc: serve refuses interfaces that are wrong, with 64 or 65", "[rpc][interface][errors]") {
    temp_dir dir;
    std::string sock = "unix:" + dir / "x.sock";
    auto bad = [&](const std::string& name, const std::function<void(json&)>& change) {
        return rpc({"serve", sock, "-I", iface_variant(dir, name, change)});
    };
    auto r = bad("t1.json", [](json& v) { v["methods"][0]["params"][0]["type"] = "integer"; });
    CHECK(r.status == 65);
    CHECK(r.err.find("unknown type 'integer'") != std::string::npos);
    CHECK(bad("t2.json", [](json& v) { v["version"] = "one"; }).status == 65);
    CHECK(bad("t3.json", [](json& v) { v["methods"][1]["name"] = "add"; }).status == 65);
    CHECK(bad("t4.json", [](json& v) { v["methods"][0].erase("command"); }).status == 64);
    CHECK(rpc({"serve", sock, "-I", calc_json, "-M", "nope=true"}).status == 64);
    CHECK(rpc({"serve", sock, "-I", calc_json, "--api-version", "9"}).status == 64);
    CHECK(rpc({"serve", sock, "-I", dir / "absent.json"}).status == 66);
    std::ofstream(dir / "junk.json") << "{ not json";
    CHECK(rpc({"serve", sock, "-I", dir / "junk.json"}).status == 65);

    // -M gives a declared method another command.
    server s({"serve", sock, "-I", calc_json, "-M", "add=sh -c 'echo 7'"});
    CHECK(rpc({"call", s.endpoint, "add", "a:=1", "b:=1"}).out == "7\n");
}

TEST_CASE("rpc: CBOR and MessagePack frames carry the same calls, and bad frames are refused", "[rpc][encoding]") {
    temp_dir dir;
    server s({"serve", "unix:" + dir / "calc.sock", "-I", calc_json, "--max-request", "4K"});
    for (const char* enc : {"json", "cbor", "msgpack"}) {
        INFO(enc);
        CHECK(rpc({"call", "-e", enc, s.endpoint, "add", "a:=-5", "b:=40"}).out == "35\n");
        CHECK(rpc({"call", "-e", enc, s.endpoint, "big", "n:=18446744073709551615"}).out == "18446744073709551615\n");
        CHECK(rpc({"describe", "-e", enc, s.endpoint, "-o", "json"}).status == 0);
    }
    CHECK(rpc({"call", "-e", "xml", s.endpoint, "add"}).status == 64);

    // By hand: the marker byte, then frames; the answers come as frames.
    raw_client c(dir / "calc.sock");
    json req = {{"jsonrpc", "2.0"}, {"id", 5}, {"method", "add"}, {"params", {{"a", 20}, {"b", 22}}}};
    c.write(std::string(1, '\x01') + frame_of(json::to_cbor(req)));
    auto reply = read_frame(c, true);
    CHECK(reply["result"] == 42);
    CHECK(reply["id"] == 5);
    // Malformed CBOR: -32700 in CBOR, and the connection goes on.
    c.write(frame_of({0xff, 0xff, 0x00}));
    reply = read_frame(c, true);
    CHECK(reply["error"]["code"] == -32700);
    c.write(frame_of(json::to_cbor(req)));
    CHECK(read_frame(c, true)["result"] == 42);
    // A frame over --max-request: -32002, then the server reads no more.
    c.write(frame_of(std::vector<std::uint8_t>(5000, 0x60)).substr(0, 4));
    reply = read_frame(c, true);
    CHECK(reply["error"]["code"] == -32002);

    // MessagePack, and a half-sent frame at the end: no answer, the
    // connection is closed, the server keeps serving.
    {
        raw_client m(dir / "calc.sock");
        m.write(std::string(1, '\x02') + frame_of(json::to_msgpack(req)));
        CHECK(read_frame(m, false)["result"] == 42);
        std::string half = frame_of(json::to_msgpack(req));
        m.write(half.substr(0, half.size() - 3));
        ::shutdown(m.fd, SHUT_WR);
        CHECK(m.read(1).empty());
    }
    CHECK(rpc({"call", s.endpoint, "add", "a:=1", "b:=1"}).out == "2\n");
}

TEST_CASE("rpc: the registry binds names while servers live, and versions match by rule", "[rpc][registry]") {
    temp_dir dir;
    registry reg;
    auto v2 = iface_variant(dir, "v2.json", [](json& v) { v["version"] = "2.0.1"; });
    auto v13 = iface_variant(dir, "v13.json", [](json& v) { v["version"] = "1.3.0"; });
    server a({"serve", "unix:" + dir / "a.sock", "-I", calc_json, "--register", "calc", "--registry", reg.endpoint});
    server b({"serve", "unix:" + dir / "b.sock", "-I", v13, "--register", "calc", "--registry", reg.endpoint});
    server c({"serve", "tcp:127.0.0.1:0", "-I", v2, "--register", "calc", "--registry", reg.endpoint});

    auto ls = rpc({"ls", "--registry", reg.endpoint, "--services", dir / "none", "-o", "json"});
    REQUIRE(ls.status == 0);
    auto services = parse(ls.out)["services"];
    REQUIRE(services.size() == 3);
    std::set<std::string> versions;
    for (const auto& e : services) {
        versions.insert(e["version"].get<std::string>());
        CHECK(e["name"] == "calc");
        CHECK(e["source"] == "registry");
    }
    CHECK(versions == std::set<std::string>{"1.2.0", "1.3.0", "2.0.1"});

    // Which server answers: the one whose socket the describe reaches.
    auto version_of = [&](const std::string& target) {
        auto r = rpc({"describe", target, "--registry", reg.endpoint, "--services", dir / "none", "-o", "json"});
        INFO(target << ": " << r.err);
        REQUIRE(r.status == 0);
        return parse(r.out)["methods"][0]["interface_version"].get<std::string>();
    };
    CHECK(version_of("calc") == "2.0.1");      // no version: the highest
    CHECK(version_of("calc@1") == "1.3.0");    // the highest 1.x
    CHECK(version_of("calc@1.2") == "1.3.0");  // 1.2 or later, same major
    CHECK(version_of("calc@1.2.0") == "1.3.0");
    CHECK(version_of("calc@=1.2.0") == "1.2.0");  // exactly
    CHECK(rpc({"describe", "calc@1.3.1", "--registry", reg.endpoint, "--services", dir / "none"}).status == 66);
    CHECK(version_of("calc@2") == "2.0.1");
    auto none = rpc({"call", "calc@3", "add", "--registry", reg.endpoint, "--services", dir / "none"});
    CHECK(none.status == 66);
    CHECK(rpc({"call", "calc@1", "add", "a:=1", "b:=2", "--registry", reg.endpoint, "--services", dir / "none"}).out == "3\n");

    // SIGKILL: the entry goes with the server's connection.
    b.proc.kill(SIGKILL);
    b.proc.wait(10s);
    CHECK(testing::eventually([&] {
        auto r = rpc({"ls", "--registry", reg.endpoint, "--services", dir / "none", "-o", "json"});
        return r.status == 0 && parse(r.out)["services"].size() == 2;
    }, 10s));
    CHECK(version_of("calc@1") == "1.2.0");
    CHECK(rpc({"describe", "calc@1.3", "--registry", reg.endpoint, "--services", dir / "none"}).status == 66);

    // A configured name comes first; the registry unreachable is 69.
    std::ofstream(dir / "services") << "# mine\ncalc@1.2.0 " << a.endpoint << "\nother@5  unix:" << dir / "nobody.sock" << "\n";
    auto r = rpc({"describe", "calc@1", "--registry", "unix:@" + testing::unique_name("no-registry"), "--services", dir / "services", "-o", "json"});
    CHECK(r.status == 0);
    CHECK(rpc({"call", "other", "x", "--registry", reg.endpoint, "--services", dir / "services"}).status == 69);
    CHECK(rpc({"call", "absent", "x", "--registry", "unix:@" + testing::unique_name("no-registry"), "--services", dir / "services"}).status == 69);
    ls = rpc({"ls", "--registry", reg.endpoint, "--services", dir / "services", "-o", "json"});
    CHECK(parse(ls.out)["services"].size() == 4);
    std::ofstream(dir / "bad") << "calc\n";
    CHECK(rpc({"call", "calc", "x", "--registry", reg.endpoint, "--services", dir / "bad"}).status == 65);

    // A registry on TCP (as on another host): the same binding.
    server tcp_reg({"registry", "tcp:0"});
    CHECK(tcp_reg.endpoint.find("tcp:127.0.0.1:") == 0);
    server remote({"serve", "tcp:0", "-M", "where=echo remote", "--register", "far@3.1", "--registry", tcp_reg.endpoint});
    CHECK(rpc({"call", "far@3", "where", "--registry", tcp_reg.endpoint, "--services", dir / "none"}).out == "\"remote\"\n");
    remote.proc.kill(SIGKILL);
    remote.proc.wait(10s);
    CHECK(testing::eventually([&] {
        return rpc({"call", "far@3", "where", "--registry", tcp_reg.endpoint, "--services", dir / "none"}).status == 66;
    }, 10s));

    // wait: until a name is registered and answers.
    child waiter({bin, "wait", "late", "-t", "20s", "--registry", reg.endpoint, "--services", dir / "none"});
    std::this_thread::sleep_for(300ms);
    server late({"serve", "unix:" + dir / "late.sock", "-M", "x=true", "--register", "late@1", "--registry", reg.endpoint});
    CHECK(waiter.wait(30s).status == 0);
}

TEST_CASE("rpc: exactly-once answers a resend from the record, also after a restart, and never runs a call twice", "[rpc][semantics][exactly-once]") {
    temp_dir dir;
    std::string state = dir / "state", counter = dir / "counter", sock = "unix:" + dir / "calc.sock";
    std::vector<std::string> serve{"serve", sock, "-I", calc_json, "--state", state};
    auto bump = [&](const std::string& id) {
        return rpc({"call", "-s", "exactly-once", "--client-id", "c1", "--id", id, sock, "bump", "file=" + counter});
    };
    {
        server s(serve);
        CHECK(bump("7").out == "1\n");
        CHECK(bump("7").out == "1\n");  // answered from the record
        CHECK(lines_in(counter) == 1);
        CHECK(bump("8").out == "2\n");
        CHECK(lines_in(counter) == 2);
        auto r = rpc({"replies", sock, "--client-id", "c1", "-o", "json"});
        REQUIRE(r.status == 0);
        auto rec = parse(r.out)["replies"];
        REQUIRE(rec.size() == 2);
        CHECK(rec[0]["state"] == "done");
        CHECK(rec[0]["reply"]["result"] == 1);
    }
    {
        // Restarted: the record survives; a new id runs.
        server s(serve);
        CHECK(bump("7").out == "1\n");
        CHECK(lines_in(counter) == 2);
        CHECK(bump("9").out == "3\n");
        // Two calls without --id from one client id get distinct ids.
        CHECK(rpc({"call", "-s", "exactly-once", "--client-id", "c2", sock, "bump", "file=" + counter}).out == "4\n");
        CHECK(rpc({"call", "-s", "exactly-once", "--client-id", "c2", sock, "bump", "file=" + counter}).out == "5\n");
    }
    // A server without --state refuses exactly-once rather than pretend.
    server plain({"serve", "unix:" + dir / "plain.sock", "-I", calc_json});
    auto r = rpc({"call", "-s", "exactly-once", plain.endpoint, "add", "a:=1", "b:=1"});
    CHECK(r.status == 1);
    CHECK(parse(r.err)["code"] == -32007);
}

TEST_CASE("rpc: a server killed mid-call - the call is 79, and after a restart its outcome stays unknown", "[rpc][semantics][crash]") {
    temp_dir dir;
    std::string state = dir / "state", marks = dir / "marks", pidfile = dir / "pid", sock = "unix:" + dir / "s.sock";
    std::string bgfile = dir / "bg";  // a process the command started in the background
    auto iface = iface_variant(dir, "slow.json", [&](json& v) {
        v["methods"].push_back({{"name", "slow"},
                                {"command", json::array({"sh", "-c", "echo run >> " + marks + "; sleep 61 & echo $! > " + bgfile +
                                                                         "; echo $$ > " + pidfile + "; exec sleep 60"})}});
    });
    std::vector<std::string> serve{"serve", sock, "-I", iface, "--state", state};
    {
        server s(serve);
        child call({bin, "call", "-s", "exactly-once", "--client-id", "k", "--id", "1", "-r", "0", sock, "slow"});
        REQUIRE(testing::eventually([&] { return process_alive(pidfile); }, 20s));
        s.proc.kill(SIGKILL);
        s.proc.wait(10s);
        auto o = call.wait(20s);
        CHECK(o.status == 79);
        CHECK(o.err.find("outcome unknown") != std::string::npos);
        // The command died with its server, and so did what it started.
        CHECK(testing::eventually([&] { return !process_alive(pidfile); }, 10s));
        CHECK(testing::eventually([&] { return !process_alive(bgfile); }, 10s));
    }
    server s(serve);
    auto r = rpc({"call", "-s", "exactly-once", "--client-id", "k", "--id", "1", sock, "slow"});
    CHECK(r.status == 79);
    CHECK(r.err.find("never recorded") != std::string::npos);
    CHECK(lines_in(marks) == 1);  // never run again
    auto rec = parse(rpc({"replies", sock, "--client-id", "k", "-o", "json"}).out)["replies"];
    REQUIRE(rec.size() == 1);
    CHECK(rec[0]["state"] == "unknown");

    // at-most-once (the default): the connection lost after sending is 79.
    std::remove(pidfile.c_str());
    server s2({"serve", "unix:" + dir / "s2.sock", "-I", iface});
    child call({bin, "call", s2.endpoint, "slow"});
    REQUIRE(testing::eventually([&] { return process_alive(pidfile); }, 20s));
    s2.proc.kill(SIGKILL);
    s2.proc.wait(10s);
    CHECK(call.wait(20s).status == 79);
}

TEST_CASE("rpc: at-least-once is for idempotent methods only, and resends until a reply", "[rpc][semantics][at-least-once]") {
    temp_dir dir;
    server s({"serve", "unix:" + dir / "calc.sock", "-I", calc_json});
    auto r = rpc({"call", "-s", "at-least-once", s.endpoint, "bump", "file=" + dir / "c"});
    CHECK(r.status == 64);
    CHECK(r.err.find("not marked idempotent") != std::string::npos);
    CHECK(lines_in(dir / "c") == 0);
    CHECK(rpc({"call", "-s", "at-least-once", s.endpoint, "add", "a:=1", "b:=2"}).out == "3\n");
    // Told by a local interface file instead of the server.
    CHECK(rpc({"call", "-s", "at-least-once", "-I", calc_json, s.endpoint, "bump", "file=x"}).status == 64);
    CHECK(rpc({"call", "-s", "at-most-once", s.endpoint, "--notify", "add"}).status == 0);
    CHECK(rpc({"call", "-s", "exactly-once", s.endpoint, "--notify", "add"}).status == 64);
    CHECK(rpc({"call", "-s", "twice", s.endpoint, "add"}).status == 64);

    // A server that comes up late: at-least-once keeps trying.
    std::string late = "unix:" + dir / "late.sock";
    child call({bin, "call", "-s", "at-least-once", "-I", calc_json, "-r", "20", "-t", "2s", late, "add", "a:=2", "b:=2"});
    std::this_thread::sleep_for(500ms);
    server s2({"serve", late, "-I", calc_json});
    auto o = call.wait(30s);
    CHECK(o.status == 0);
    CHECK(o.out == "4\n");
}

TEST_CASE("rpc: a call whose client is gone is cancelled unless it runs to completion", "[rpc][orphans]") {
    temp_dir dir;
    std::string p1 = dir / "p1", p2 = dir / "p2", p3 = dir / "p3", done = dir / "done";
    auto iface = iface_variant(dir, "o.json", [&](json& v) {
        v["methods"].push_back({{"name", "slow"},
                                {"params", json::array({{{"name", "pidfile"}, {"type", "string"}}})},
                                {"command", json::array({"sh", "-c", "echo $$ > \"$IPC_RPC_PARAM_PIDFILE\"; exec sleep 60"})}});
        v["methods"].push_back({{"name", "finish"},
                                {"run_to_completion", true},
                                {"command", json::array({"sh", "-c", "echo $$ > " + p3 + "; sleep 1; touch " + done})}});
    });
    for (std::string ep : {"unix:" + dir / "o.sock", std::string("tcp:127.0.0.1:0")}) {
        INFO(ep);
        server s({"serve", ep, "-I", iface});
        std::string pf = ep.starts_with("unix") ? p1 : p2;
        {
            child call({bin, "call", s.endpoint, "slow", "pidfile=" + pf});
            REQUIRE(testing::eventually([&] { return process_alive(pf); }, 20s));
            call.kill(SIGKILL);
            call.wait(10s);
        }
        CHECK(testing::eventually([&] { return !process_alive(pf); }, 10s));
        CHECK(rpc({"call", s.endpoint, "add", "a:=1", "b:=1"}).out == "2\n");  // still serving
    }
    // run_to_completion: the client goes, the command finishes.
    server s({"serve", "unix:" + dir / "f.sock", "-I", iface});
    {
        child call({bin, "call", s.endpoint, "finish"});
        REQUIRE(testing::eventually([&] { return process_alive(p3); }, 20s));
        call.kill(SIGKILL);
        call.wait(10s);
    }
    CHECK(testing::eventually([&] { return ::access(done.c_str(), F_OK) == 0; }, 20s));

    // A lease: a client that stops renewing (stopped, its socket open) is
    // taken as gone once the lease runs out.
    server t({"serve", "tcp:127.0.0.1:0", "-I", iface});
    std::string p4 = dir / "p4";
    child call({bin, "call", "--lease", "300ms", t.endpoint, "slow", "pidfile=" + p4});
    REQUIRE(testing::eventually([&] { return process_alive(p4); }, 20s));
    std::this_thread::sleep_for(600ms);
    CHECK(process_alive(p4));  // renewed meanwhile
    call.kill(SIGSTOP);
    CHECK(testing::eventually([&] { return !process_alive(p4); }, 10s));
    call.kill(SIGCONT);
    auto o = call.wait(20s);
    CHECK(o.status == 79);
}

TEST_CASE("rpc: UDP through a relay that drops and duplicates datagrams, from a printed seed", "[rpc][udp]") {
    temp_dir dir;
    std::string counter = dir / "counter";
    server s({"serve", "udp:127.0.0.1:0", "-I", calc_json});
    auto port = s.endpoint.substr(s.endpoint.rfind(':') + 1);
    CHECK(rpc({"call", s.endpoint, "add", "a:=1", "b:=2"}).out == "3\n");
    CHECK(rpc({"call", "-e", "cbor", s.endpoint, "big", "n:=18446744073709551615"}).out == "18446744073709551615\n");

    // A seed from the environment repeats a run.
    const char* env = std::getenv("IPC_RPC_UDP_SEED");
    unsigned long seed = env ? std::stoul(env) : std::random_device{}();
    child relay({IPC_UDP_RELAY, port, "30", "30", std::to_string(seed)});
    REQUIRE(testing::eventually([&] { return relay.read_stdout(0, 0ms).find('\n') != std::string::npos; }, 10s));
    auto line = relay.read_stdout(0, 0ms);
    std::string via = "udp:127.0.0.1:" + line.substr(0, line.find(' '));
    INFO("relay seed " << seed << " (IPC_RPC_UDP_SEED=" << seed << " repeats it)");
    std::cerr << "rpc udp test: relay seed " << seed << "\n";

    // exactly-once needs a durable server; over UDP every call carries a
    // client id, and the server's reply cache drops the duplicates: each
    // non-idempotent bump runs once however often its datagram arrives.
    server d({"serve", "udp:127.0.0.1:0", "-I", calc_json, "--state", dir / "state"});
    child relay2({IPC_UDP_RELAY, d.endpoint.substr(d.endpoint.rfind(':') + 1), "30", "30", std::to_string(seed + 1)});
    REQUIRE(testing::eventually([&] { return relay2.read_stdout(0, 0ms).find('\n') != std::string::npos; }, 10s));
    auto line2 = relay2.read_stdout(0, 0ms);
    std::string via2 = "udp:127.0.0.1:" + line2.substr(0, line2.find(' '));
    for (int i = 1; i <= 8; ++i) {
        auto r = rpc({"call", "-s", "exactly-once", "-t", "3s", "-r", "5", via2, "bump", "file=" + counter});
        INFO("call " << i << ": " << r.err);
        CHECK(r.status == 0);
        CHECK(r.out == std::to_string(i) + "\n");
    }
    CHECK(lines_in(counter) == 8);
    // at-least-once over the lossy path gets every idempotent answer.
    for (int i = 0; i < 8; ++i) {
        auto r = rpc({"call", "-s", "at-least-once", "-I", calc_json, "-t", "3s", "-r", "5", via, "add", "a:=" + std::to_string(i), "b:=1"});
        CHECK(r.out == std::to_string(i + 1) + "\n");
    }
    // at-most-once sends once: each call is answered or is 79, never anything else.
    for (int i = 0; i < 8; ++i) {
        auto r = rpc({"call", "-t", "500ms", via, "add", "a:=1", "b:=1"});
        CHECK((r.status == 0 || r.status == 79));
        if (r.status == 0) CHECK(r.out == "2\n");
    }
    // Nobody listening: 69.
    CHECK(rpc({"call", "-t", "2s", "udp:127.0.0.1:9", "add"}).status == 69);
}

TEST_CASE("rpc: generated C++ stubs call ipc-rpc serve, and ipc-rpc calls a generated server", "[rpc][gen]") {
    temp_dir dir;
    ::setenv("IPC_RPC_BIN", bin.c_str(), 1);  // the count_to command calls back through it
    {
        server s({"serve", "unix:" + dir / "calc.sock", "-I", calc_json});
        auto r = testing::run({IPC_STUB_CLIENT, s.endpoint});
        INFO(r.err);
        CHECK(r.status == 0);
        CHECK(r.out ==
              "add 42\nadd_negative -12\ngreet hello, Ann\ngreet_title hello, Dr Ann\nstats 3 16 9\n"
              "big 18446744073709551615\ncount_to 60\ntyped_check -32602\n");
    }
    // The generated skeleton, implemented in C++, serves ipc-rpc call.
    server g({"unix:" + dir / "gen.sock"}, IPC_STUB_SERVER);
    CHECK(rpc({"call", g.endpoint, "add", "a:=20", "b:=22"}).out == "42\n");
    CHECK(rpc({"call", g.endpoint, "add", "[20, 22]"}).out == "42\n");
    CHECK(rpc({"call", g.endpoint, "greet", "name=Bo", "title=Sir"}).out == "\"hello, Sir Bo\"\n");
    CHECK(rpc({"call", g.endpoint, "big", "n:=18446744073709551615"}).out == "18446744073709551615\n");
    auto r = rpc({"call", g.endpoint, "add", "a:=1"});
    CHECK(r.status == 1);
    CHECK(parse(r.err)["code"] == -32602);
    r = rpc({"call", g.endpoint, "bump", "file="});
    CHECK(r.status == 1);
    CHECK(parse(r.err)["message"] == "an empty file name");
    CHECK(rpc({"call", "-s", "at-least-once", g.endpoint, "stats", "values:=[1,2]"}).out == "{\"count\":2,\"max\":2,\"sum\":3}\n");
    auto d = parse(rpc({"describe", g.endpoint, "-o", "json"}).out)["methods"];
    CHECK(d[0]["interface"] == "calc");
    // And the generated client against the generated server.
    r = testing::run({IPC_STUB_CLIENT, g.endpoint});
    CHECK(r.status == 0);
    CHECK(r.out.find("stats 3 16 9\n") != std::string::npos);

    // The client checks the interface version: 2.0 is not 1.2.0's.
    auto v2 = iface_variant(dir, "v2.json", [](json& v) { v["version"] = "2.0.0"; });
    server s2({"serve", "unix:" + dir / "v2.sock", "-I", v2});
    r = testing::run({IPC_STUB_CLIENT, s2.endpoint});
    CHECK(r.status == 76);
    CHECK(r.err.find("interface mismatch") != std::string::npos);
    auto v13 = iface_variant(dir, "v13.json", [](json& v) { v["version"] = "1.3.0"; });
    server s3({"serve", "unix:" + dir / "v13.sock", "-I", v13});
    CHECK(testing::run({IPC_STUB_CLIENT, s3.endpoint}).status == 0);

    // gen itself.
    auto h = rpc({"gen", calc_json});
    CHECK(h.status == 0);
    CHECK(h.out.find("class client {") != std::string::npos);
    CHECK(h.out.find("virtual std::int64_t add(std::int64_t a, std::int64_t b) = 0;") != std::string::npos);
    CHECK(rpc({"gen", calc_json, "--lang", "python"}).status == 64);
    auto bad = iface_variant(dir, "bad.json", [](json& v) { v["methods"][0]["result"] = "number"; });
    CHECK(rpc({"gen", bad, "-f", dir / "out.hpp"}).status == 65);
    CHECK(::access((dir / "out.hpp").c_str(), F_OK) != 0);
}

TEST_CASE("rpc: KEY=@FILE passes a file by reference over a Unix socket, and :inout copies back only on success", "[rpc][by-reference]") {
    temp_dir dir;
    std::string file = dir / "in.txt";
    std::ofstream(file) << "hello\nworld\n";
    server s({"serve", "unix:" + dir / "r.sock",
              "-M", "count=sh -c 'wc -c < \"$IPC_RPC_PARAM_DATA\"'",
              "-M", "show=cat",
              "-M", "upper=sh -c 'tr a-z A-Z < \"$IPC_RPC_PARAM_DATA\" > \"$0\" && cat \"$0\" > \"$IPC_RPC_PARAM_DATA\"' " + dir / "tmp",
              "-M", "spoil=sh -c 'echo spoiled > \"$IPC_RPC_PARAM_DATA\"; exit 3'"});
    CHECK(rpc({"call", s.endpoint, "count", "data=@" + file}).out == "12\n");
    // The command's stdin shows the reference: the segment, its size, and
    // the descriptor it inherited.
    auto r = rpc({"call", s.endpoint, "show", "data=@" + file});
    REQUIRE(r.status == 0);
    auto ref = parse(r.out)["data"];
    CHECK(ref["size"] == 12);
    CHECK(ref["path"] == "/dev/fd/3");
    CHECK(ref["inout"] == false);
    std::string seg = ref["$shm"];
    CHECK(seg.find("/ipc-rpc.ref.") == 0);
    CHECK(::access(("/dev/shm" + seg).c_str(), F_OK) != 0);  // removed after the call

    // inout: the server's changes come back, only when the call succeeds.
    CHECK(rpc({"call", s.endpoint, "spoil", "data=@" + file + ":inout"}).status == 1);
    CHECK(slurp(file) == "hello\nworld\n");
    CHECK(rpc({"call", s.endpoint, "upper", "data=@" + file + ":inout"}).status == 0);
    CHECK(slurp(file) == "HELLO\nWORLD\n");

    // --by-value (and any socket but a Unix one): the text inline.
    r = rpc({"call", "--by-value", s.endpoint, "show", "data=@" + file});
    CHECK(parse(r.out)["data"] == "HELLO\nWORLD\n");
    std::ofstream(dir / "bin", std::ios::binary) << std::string("\xff\xfe\x00", 3);
    CHECK(rpc({"call", "--by-value", s.endpoint, "show", "data=@" + dir / "bin"}).status == 65);
    CHECK(rpc({"call", s.endpoint, "count", "data=@" + dir / "bin"}).out == "3\n");  // by reference, any bytes
    CHECK(rpc({"call", "--by-value", s.endpoint, "show", "data=@" + file + ":inout"}).status == 64);
    CHECK(rpc({"call", s.endpoint, "show", "data=@" + dir / "absent"}).status == 66);
    CHECK(rpc({"call", "--notify", s.endpoint, "show", "data=@" + file}).status == 64);  // gone before the server looks

    // A reference the caller does not own is refused: the server opens a
    // segment only for the uid that made it.
    std::string forged = testing::unique_name("ipc-rpc.ref.forged");
    auto made = testing::sh(nobody() + "sh -c 'echo secret > /dev/shm/" + forged + "'");
    REQUIRE(made.status == 0);
    struct unlink_at_end {
        std::string p;
        ~unlink_at_end() { ::unlink(p.c_str()); }
    } cleanup{"/dev/shm/" + forged};
    r = rpc({"call", s.endpoint, "count", "{\"data\":{\"$shm\":\"/" + forged + "\",\"size\":7}}"});
    CHECK(r.status == 1);
    auto e = parse(r.err);
    CHECK(e["code"] == -32602);
    CHECK(e["message"].get<std::string>().find("belongs to uid 65534") != std::string::npos);

    // A C++ handler gets the bytes.
    server g({"unix:" + dir / "gen.sock"}, IPC_STUB_SERVER);
    std::ofstream(dir / "name") << "Zoe";
    CHECK(rpc({"call", g.endpoint, "greet", "name=@" + dir / "name"}).out == "\"hello, Zoe\"\n");
}

TEST_CASE("rpc: a server calls the caller back over the same connection", "[rpc][callback]") {
    temp_dir dir;
    ::setenv("IPC_RPC_BIN", bin.c_str(), 1);
    std::string steps = dir / "steps";
    // The method's command calls two procedures of its caller through
    // $IPC_RPC_CALLBACK; the caller runs them as commands.
    server s({"serve", "unix:" + dir / "cb.sock",
              "-M", "work=sh -c 'for i in 1 2 3; do \"$IPC_RPC_BIN\" call \"$IPC_RPC_CALLBACK\" progress step:=$i > /dev/null || exit 9; done; "
                    "\"$IPC_RPC_BIN\" call \"$IPC_RPC_CALLBACK\" ask q=name'",
              "-M", "sneaky=sh -c '\"$IPC_RPC_BIN\" call \"$IPC_RPC_CALLBACK\" other'"});
    for (const char* enc : {"json", "cbor"}) {
        INFO(enc);
        std::remove(steps.c_str());
        auto r = rpc({"call", "-e", enc, s.endpoint, "work", "progress:={\"$callback\":\"progress\"}", "ask:={\"$callback\":\"ask\"}",
                      "--callback", "progress=sh -c 'echo step $IPC_RPC_PARAM_STEP >> " + steps + "; echo ok'",
                      "--callback", "ask=echo '\"Zed\"'"});
        INFO(r.err);
        CHECK(r.status == 0);
        CHECK(r.out == "\"Zed\"\n");
        CHECK(slurp(steps) == "step 1\nstep 2\nstep 3\n");
    }
    // A callback that fails: the server's command sees the error answer.
    auto r = rpc({"call", s.endpoint, "work", "progress:={\"$callback\":\"progress\"}", "--callback", "progress=false"});
    CHECK(r.status == 1);
    CHECK(parse(r.err)["data"]["exit_status"] == 9);
    // Only the callbacks the params named may be called.
    r = rpc({"call", s.endpoint, "sneaky", "p:={\"$callback\":\"progress\"}", "--callback", "progress=true", "--callback", "other=true"});
    CHECK(r.status == 1);
    CHECK(parse(r.err)["data"]["stderr"].get<std::string>().find("no callback 'other'") != std::string::npos);

    // --callback takes one value: the target and params may follow it.
    CHECK(rpc({"call", "--callback", "t=echo 5", s.endpoint, "work", "progress:={\"$callback\":\"t\"}"}).status == 1);
    // SIGINT while waiting is 130, not an unknown outcome.
    server slow({"serve", "unix:" + dir / "slow.sock", "-M", "slow=sleep 30"});
    child waiting({bin, "call", slow.endpoint, "slow"});
    std::this_thread::sleep_for(300ms);
    waiting.kill(SIGINT);
    CHECK(waiting.wait(20s).status == 130);

    // Typed stubs: count_to calls tick back n times, both directions.
    server g({"unix:" + dir / "gen.sock"}, IPC_STUB_SERVER);
    CHECK(rpc({"call", g.endpoint, "count_to", "n:=4", "tick:={\"$callback\":\"t\"}", "--callback", "t=sh -c 'echo $((IPC_RPC_PARAM_I * 2))'"}).out == "20\n");
    server c({"serve", "unix:" + dir / "calc.sock", "-I", calc_json});
    CHECK(rpc({"call", c.endpoint, "count_to", "n:=3", "tick:={\"$callback\":\"t\"}", "--callback", "t=echo 5"}).out == "15\n");
}
