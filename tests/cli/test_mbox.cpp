// SPDX-License-Identifier: MIT
// ipc-mbox, run as a real binary against real local mailboxes (/dev/shm and
// a private directory).
#include <catch2/catch.hpp>

#include <csignal>
#include <fstream>
#include <thread>

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "json_output.hpp"
#include "process.hpp"

using nlohmann::json;
using namespace std::chrono_literals;
using testing::child;
using testing::outcome;
using testing::parse_json;
using testing::parse_lines;

namespace {

const std::string bin = IPC_MBOX_BIN;

outcome mb(std::vector<std::string> args, std::optional<std::string> in = std::nullopt,
           std::chrono::milliseconds limit = 20s) {
    args.insert(args.begin(), bin);
    return testing::run(std::move(args), std::move(in), limit);
}

child start(std::vector<std::string> args) {
    args.insert(args.begin(), bin);
    return child(std::move(args));
}

// A mailbox name unique to this test; it (and its dead letters) are removed
// when the test ends.
struct box_name {
    std::string name = "/" + testing::unique_name("ipc-mbox-test");
    ~box_name() {
        ::unlink(("/dev/shm" + name).c_str());
        ::unlink(("/dev/shm" + name + ".dead").c_str());
    }
    operator const std::string&() const { return name; }
};

json stat_of(const std::string& name) {
    auto r = mb({"stat", name, "--json"});
    REQUIRE(r.status == 0);
    return parse_json(r.out)["mailboxes"][0];
}

} // namespace

TEST_CASE("ipc-mbox create, stat, ls, rm", "[cli][mbox]") {
    box_name b;
    auto r = mb({"create", b, "--max-msgs", "10", "--max-bytes", "64K", "--max-msg-size", "1K", "--json"});
    REQUIRE(r.status == 0);
    auto j = parse_json(r.out)["mailboxes"][0];
    CHECK(j["name"] == b.name);
    CHECK(j["max_msgs"] == 10);
    CHECK(j["max_msg_size_bytes"] == 1024);
    CHECK(j["mode"] == "0600");
    CHECK(mb({"create", b, "-x"}).status == 73);
    auto again = mb({"create", b});
    CHECK(again.status == 0);
    CHECK(again.err.find("exists") != std::string::npos);
    auto s = stat_of(b);
    CHECK(s["messages"] == 0);
    CHECK(s["next_seq"] == 1);
    CHECK(s["backend"] == "local");
    auto ls = mb({"ls", "--json"});
    REQUIRE(ls.status == 0);
    bool listed = false;
    auto lj = parse_json(ls.out);
    for (const auto& m : lj["mailboxes"]) listed = listed || m["name"] == b.name;
    CHECK(listed);
    // ipc-shm sees it as a mailbox, and leaves it alone
    auto shm = testing::run({IPC_SHM_BIN, "ls", "--json"});
    bool kind_ok = false;
    auto sj = parse_json(shm.out);
    for (const auto& o : sj["objects"]) kind_ok = kind_ok || (o["name"] == b.name && o["kind"] == "mailbox");
    CHECK(kind_ok);
    CHECK(mb({"rm", b, "--dry-run"}).status == 0);
    CHECK(mb({"stat", b}).status == 0);
    CHECK(mb({"rm", b}).status == 0);
    CHECK(mb({"stat", b}).status == 66);
    CHECK(mb({"rm", b}).status == 66);
}

TEST_CASE("ipc-mbox refuses bad input with the contract's statuses, losing nothing", "[cli][mbox]") {
    box_name b;
    CHECK(mb({"create", "a/b"}).status == 64);
    CHECK(mb({"create", b, "--max-bytes", "2K", "--max-msg-size", "4K"}).status == 64);
    CHECK(mb({"create", b, "--overflow", "sometimes"}).status == 64);
    CHECK(mb({"create", b, "--max-msgs", "0", "--overflow", "drop-oldest"}).status == 64);
    REQUIRE(mb({"create", b, "--max-msg-size", "8"}).status == 0);
    REQUIRE(mb({"send", b, "kept"}).status == 0);
    auto r = mb({"send", b, "short", "far-too-long-for-eight-bytes"});
    CHECK(r.status == 65);
    CHECK(r.err.find("nothing sent") != std::string::npos);
    CHECK(stat_of(b)["messages"] == 1);
    CHECK(mb({"send", b, "--jsonl"}, "{not json}\n").status == 65);
    CHECK(mb({"recv", b, "--max-deliveries", "2"}).status == 64);
    CHECK(mb({"recv", "/no-such-box-" + testing::unique_name("x")}).status == 66);
    CHECK(mb({"send", b, "x", "--backend", "carrier-pigeon"}).status == 64);
    auto got = mb({"recv", b});
    CHECK(got.status == 0);
    CHECK(got.out == "kept\n");
}

TEST_CASE("ipc-mbox send and recv: payloads, -o jsonl fields, --jsonl replay, timeouts", "[cli][mbox]") {
    box_name b;
    REQUIRE(mb({"create", b}).status == 0);
    REQUIRE(mb({"send", b, "--as", "alice", "--topic", "greet", "hello"}).status == 0);
    REQUIRE(mb({"send", b, "--as", "bob"}, "line one\nline two\n").status == 0);
    auto r = mb({"recv", b, "-c", "3", "-o", "jsonl"});
    REQUIRE(r.status == 0);
    auto lines = parse_lines(r.out);
    REQUIRE(lines.size() == 3);
    CHECK(lines[0]["seq"] == 1);
    CHECK(lines[0]["data"] == "hello");
    CHECK(lines[0]["topic"] == "greet");
    CHECK(lines[0]["sender"]["name"] == "alice");
    CHECK(lines[0]["sender"]["uid"] == ::getuid());
    CHECK(lines[0]["group"] == "default");
    CHECK(lines[0]["deliveries"] == 1);
    CHECK(lines[2]["seq"] == 3);
    CHECK(lines[2]["data"] == "line two");
    CHECK(lines[2]["sender"]["name"] == "bob");
    // nothing left: -n is 75 at once; a --count cut short prints what it got
    CHECK(mb({"recv", b, "-n"}).status == 75);
    REQUIRE(mb({"send", b, "only"}).status == 0);
    auto part = mb({"recv", b, "-c", "2", "-t", "100ms"});
    CHECK(part.status == 75);
    CHECK(part.out == "only\n");
    // a recorded stream replays with its topics
    REQUIRE(mb({"send", b, "--jsonl"}, lines[0].dump() + "\n").status == 0);
    auto replay = parse_lines(mb({"recv", b, "-o", "jsonl"}).out);
    REQUIRE(replay.size() == 1);
    CHECK(replay[0]["topic"] == "greet");
    CHECK(replay[0]["data"] == "hello");
    // send --json says which seqs it used
    auto sj = mb({"send", b, "a", "b", "--json"});
    REQUIRE(sj.status == 0);
    auto sent = parse_json(sj.out)["mailboxes"][0];
    CHECK(sent["messages_sent"] == 2);
    CHECK(sent["first_seq"] == 6);
    CHECK(sent["last_seq"] == 7);
}

TEST_CASE("ipc-mbox groups: a copy per group, one receiver per message within a group - filters", "[cli][mbox]") {
    box_name b;
    REQUIRE(mb({"create", b}).status == 0);
    REQUIRE(mb({"recv", b, "-g", "audit", "-n"}).status == 75);  // the groups exist before the messages
    REQUIRE(mb({"recv", b, "-g", "work", "-n"}).status == 75);
    REQUIRE(mb({"recv", b, "--topic", "err*", "-n"}).status == 75);
    REQUIRE(mb({"send", b, "--topic", "error"}, "e1\n").status == 0);
    REQUIRE(mb({"send", b, "--topic", "info"}, "i1\ni2\n").status == 0);
    CHECK(mb({"recv", b, "-g", "audit", "-c", "3"}).out == "e1\ni1\ni2\n");
    CHECK(mb({"recv", b, "-g", "work"}).out == "e1\n");
    CHECK(mb({"recv", b, "-g", "work"}).out == "i1\n");  // the next receiver gets the next one
    auto errs = parse_lines(mb({"recv", b, "--topic", "err*", "-o", "jsonl"}).out);
    REQUIRE(errs.size() == 1);
    CHECK(errs[0]["group"] == "topic=err*");
    auto s = stat_of(b);
    std::map<std::string, json> groups;
    for (const auto& g : s["group_stats"]) groups[g["group"]] = g;
    CHECK(groups["audit"]["lag"] == 0);
    CHECK(groups["work"]["lag"] == 1);
    CHECK(groups["topic=err*"]["filtered"] == 0);  // the filter passes what follows only when it looks
    CHECK(mb({"rm", b, "-g", "work"}).status == 0);
    CHECK(stat_of(b)["groups"] == 2);
    CHECK(mb({"rm", b, "-g", "work"}).status == 66);
}

TEST_CASE("ipc-mbox --to: only the receiver of that name gets it", "[cli][mbox]") {
    box_name b;
    REQUIRE(mb({"create", b}).status == 0);
    REQUIRE(mb({"recv", b, "-n"}).status == 75);
    REQUIRE(mb({"send", b, "--to", "bob", "for bob"}).status == 0);
    CHECK(mb({"recv", b, "--as", "alice", "-n"}).status == 75);
    CHECK(mb({"recv", b, "-n"}).status == 75);
    CHECK(mb({"recv", b, "--as", "bob", "-n"}).out == "for bob\n");
}

TEST_CASE("ipc-mbox rendezvous: send waits for a receiver - without one it times out and withdraws", "[cli][mbox]") {
    box_name b;
    REQUIRE(mb({"create", b, "--max-msgs", "0"}).status == 0);
    auto lonely = mb({"send", b, "-t", "100ms", "anyone?"});
    CHECK(lonely.status == 75);
    CHECK(lonely.err.find("no receiver took") != std::string::npos);
    auto rx = start({"recv", b, "-t", "20s"});
    auto tx = mb({"send", b, "-t", "20s", "here"});
    CHECK(tx.status == 0);
    auto got = rx.wait();
    CHECK(got.status == 0);
    CHECK(got.out == "here\n");
    CHECK(stat_of(b)["withdrawn"] == 1);
}

TEST_CASE("ipc-mbox --ack, ack, --exec, and a receiver killed mid-work", "[cli][mbox]") {
    box_name b;
    REQUIRE(mb({"create", b}).status == 0);
    REQUIRE(mb({"send", b, "job-1", "job-2"}).status == 0);
    auto r = mb({"recv", b, "--ack", "-o", "jsonl"});
    REQUIRE(r.status == 0);
    auto m = parse_lines(r.out).at(0);
    CHECK(m["seq"] == 1);
    CHECK(stat_of(b)["group_stats"][0]["pending"] == 1);
    CHECK(mb({"ack", b, "1"}).status == 0);
    CHECK(stat_of(b)["group_stats"][0]["pending"] == 0);
    auto twice = mb({"ack", b, "1"});
    CHECK(twice.status == 0);
    CHECK(twice.err.find("not pending") != std::string::npos);

    testing::temp_dir tmp;
    std::string log = tmp / "log";
    // a command that fails: the message comes back
    auto fail = mb({"recv", b, "--ack", "--exec", "exit 3"});
    CHECK(fail.status == 0);
    CHECK(fail.err.find("status 3") != std::string::npos);
    auto ok = mb({"recv", b, "--ack", "--exec", "cat >>'" + log + "'; echo \" $IPC_MBOX_SEQ $IPC_MBOX_DELIVERIES\" >>'" + log + "'"});
    CHECK(ok.status == 0);
    std::ifstream in(log);
    std::string text((std::istreambuf_iterator<char>(in)), {});
    CHECK(text == "job-2 2 2\n");
    CHECK(stat_of(b)["messages"] == 0);

    // killed while its command runs: another receiver gets the job soon, not after the 30 s lease
    REQUIRE(mb({"send", b, "job-3"}).status == 0);
    auto slow = start({"recv", b, "--ack", "--exec", "sleep 30"});
    REQUIRE(testing::eventually([&] { return stat_of(b)["group_stats"][0]["pending"] == 1; }));
    ::kill(slow.pid(), SIGKILL);
    slow.wait();
    auto again = mb({"recv", b, "--ack", "-o", "jsonl", "-t", "10s"});
    REQUIRE(again.status == 0);
    auto j = parse_lines(again.out).at(0);
    CHECK(j["data"] == "job-3");
    CHECK(j["deliveries"] == 2);
}

TEST_CASE("ipc-mbox --max-deliveries moves a failing message to the dead letters", "[cli][mbox]") {
    box_name b;
    REQUIRE(mb({"create", b}).status == 0);
    REQUIRE(mb({"send", b, "poison"}).status == 0);
    for (int i = 0; i < 2; ++i) CHECK(mb({"recv", b, "--ack", "--max-deliveries", "2", "--exec", "false"}).status == 0);
    CHECK(mb({"recv", b, "--ack", "--max-deliveries", "2", "-n"}).status == 75);
    auto dead = parse_lines(mb({"recv", b.name + ".dead", "-o", "jsonl"}).out);
    REQUIRE(dead.size() == 1);
    CHECK(dead[0]["data"] == "poison");
    CHECK(dead[0]["origin_seq"] == 1);
    CHECK(stat_of(b)["group_stats"][0]["dead_lettered"] == 1);
}

TEST_CASE("ipc-mbox wait and watch", "[cli][mbox]") {
    box_name b;
    auto w = start({"wait", b, "--min-msgs", "2", "-t", "20s"});
    REQUIRE(mb({"create", b}).status == 0);
    REQUIRE(mb({"send", b, "1", "2"}).status == 0);
    CHECK(w.wait().status == 0);
    CHECK(mb({"wait", b, "--empty", "-t", "50ms"}).status == 75);
    auto watch = start({"watch", b, "-o", "jsonl", "-c", "2", "--interval", "10ms", "-t", "20s"});
    REQUIRE(testing::eventually([&] { return watch.read_stdout(1, 100ms).size() > 0; }));
    REQUIRE(mb({"recv", b, "-c", "2"}).status == 0);
    auto out = watch.wait();
    CHECK(out.status == 0);
    auto recs = parse_lines(out.out);
    REQUIRE(recs.size() == 2);
    CHECK(recs[0]["messages"] == 2);
    CHECK(recs[1]["exists"] == true);
    CHECK(mb({"wait", b, "--empty", "-t", "5s"}).status == 0);
}

TEST_CASE("ipc-mbox --dir: a durable mailbox, and a damaged one is status 65", "[cli][mbox]") {
    testing::temp_dir tmp;
    std::string dir = tmp.path().string();
    REQUIRE(mb({"create", "/kept", "--dir", dir, "--sync", "always"}).status == 0);
    REQUIRE(mb({"send", "/kept", "--dir", dir, "persisted"}).status == 0);
    CHECK(parse_json(mb({"stat", "/kept", "--dir", dir, "--json"}).out)["mailboxes"][0]["sync"] == "always");
    CHECK(mb({"recv", "/kept", "--dir", dir}).out == "persisted\n");
    REQUIRE(mb({"send", "/kept", "--dir", dir, "next"}).status == 0);
    {
        int fd = ::open((tmp / "kept").c_str(), O_WRONLY);
        REQUIRE(fd >= 0);
        char junk[64];
        std::memset(junk, 0x5a, sizeof junk);
        REQUIRE(::pwrite(fd, junk, sizeof junk, 192) == 64);  // the log's state
        ::close(fd);
    }
    auto r = mb({"recv", "/kept", "--dir", dir});
    CHECK(r.status == 65);
    CHECK(r.err.find("corrupted") != std::string::npos);
}

// ---- the Redis backend, through the command ---------------------------------

#include "redis_server.hpp"

TEST_CASE("ipc-mbox on Redis: the same commands - redis-cli sees what it sent and it receives what redis-cli added",
          "[cli][mbox][redis]") {
    testing::redis_server server;
    REDIS_OR_SKIP(server);
    const std::string url = server.url();
    const std::string box = "/" + testing::unique_name("cli-redis");
    auto r = mb({"create", box, "--backend", url, "--max-msgs", "100", "--json"});
    REQUIRE(r.status == 0);
    CHECK(parse_json(r.out)["mailboxes"][0]["backend"] == url);
    REQUIRE(mb({"recv", box, "--backend", url, "-g", "g1", "-n"}).status == 75);
    REQUIRE(mb({"send", box, "--backend", url, "--as", "alice", "--topic", "t", "hello"}).status == 0);
    // redis-cli XRANGE shows what ipc-mbox sent
    std::string key = "ipc-mbox:{" + box.substr(1) + "}";
    auto x = server.cli({"XRANGE", key, "-", "+"});
    CHECK(x.out.find("hello") != std::string::npos);
    CHECK(x.out.find("alice") != std::string::npos);
    // ... and ipc-mbox receives what redis-cli added by hand
    REQUIRE(server.cli({"XADD", key, "*", "from", "bob", "body", "by hand"}).status == 0);
    auto got = parse_lines(mb({"recv", box, "--backend", url, "-g", "g1", "-c", "2", "-o", "jsonl"}).out);
    REQUIRE(got.size() == 2);
    CHECK(got[0]["data"] == "hello");
    CHECK(got[0]["seq"] == 1);
    CHECK(got[0]["sender"]["name"] == "alice");
    CHECK(got[1]["data"] == "by hand");
    CHECK(got[1]["sender"]["name"] == "bob");
    // the environment variable chooses the backend too
    auto env = testing::run({"env", "IPC_MBOX_BACKEND=" + url, bin, "stat", box, "--json"});
    REQUIRE(env.status == 0);
    CHECK(parse_json(env.out)["mailboxes"][0]["backend"] == url);
    auto ls = mb({"ls", "--backend", url, "--json"});
    CHECK(ls.out.find(box) != std::string::npos);
    // what Redis cannot do is refused with 69
    CHECK(mb({"create", box + "-rdv", "--backend", url, "--max-msgs", "0"}).status == 69);
    CHECK(mb({"create", box + "-dir", "--backend", url, "--dir", "/tmp"}).status == 69);
    CHECK(mb({"rm", box, "--backend", url}).status == 0);
    CHECK(mb({"stat", box, "--backend", url}).status == 66);
}

TEST_CASE("ipc-mbox on an unreachable Redis: status 69 and a one-line reason", "[cli][mbox][redis]") {
    int port = testing::free_port();
    auto r = mb({"send", "/x", "--backend", "redis://127.0.0.1:" + std::to_string(port), "hi"});
    CHECK(r.status == 69);
    CHECK(r.err.find("127.0.0.1") != std::string::npos);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
}
