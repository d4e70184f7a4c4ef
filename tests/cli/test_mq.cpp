// SPDX-License-Identifier: MIT
// ipc-mq, run as a real binary against real POSIX and System V queues.
#include <catch2/catch.hpp>

#include <csignal>
#include <fstream>
#include <random>
#include <thread>

#include <fcntl.h>
#include <mqueue.h>
#include <sys/msg.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "json_output.hpp"
#include "process.hpp"

using nlohmann::json;
using namespace std::chrono_literals;
using testing::child;
using testing::outcome;
using testing::temp_dir;

namespace {

const std::string bin = IPC_MQ_BIN;

outcome mq(std::vector<std::string> args, std::optional<std::string> in = std::nullopt,
           std::chrono::milliseconds limit = 20s) {
    args.insert(args.begin(), bin);
    return testing::run(std::move(args), std::move(in), limit);
}

child start(std::vector<std::string> args, std::optional<std::string> in = std::nullopt) {
    args.insert(args.begin(), bin);
    return child(std::move(args), std::move(in));
}

using testing::parse_json;
using testing::parse_lines;

// A POSIX queue name unique to this test, unlinked when the test ends.
struct posix_name {
    std::string name = "/" + testing::unique_name("ipc-mq-test");
    ~posix_name() { ::mq_unlink(name.c_str()); }
    operator const std::string&() const { return name; }
};

// A System V key unique to this test; its queue is removed when the test ends.
struct sysv_key {
    key_t key;
    std::string text;
    sysv_key() {
        std::random_device rd;
        key = static_cast<key_t>(0x7d000000u | (rd() & 0xffffffu));
        text = std::to_string(key);
    }
    ~sysv_key() {
        int id = ::msgget(key, 0);
        if (id >= 0) ::msgctl(id, IPC_RMID, nullptr);
    }
    int id() const { return ::msgget(key, 0); }
};

// Runs ipc-mq in a private mount namespace with the mqueue file system
// mounted on a private directory (or, with mounted=false, with none), so
// that `ls` can be tested without touching the host's mounts.
outcome in_namespace(const std::string& command, bool mounted = true) {
    temp_dir dir;
    std::string script =
        mounted ? "mount -t mqueue none '" + dir.path().string() + "' && " + command
                : "for m in $(awk '$0 ~ / - mqueue / {print $5}' /proc/self/mountinfo); do umount -l \"$m\"; done; " +
                      command;
    return testing::run({"unshare", "-m", "sh", "-c", script});
}

std::string nobody() { return "setpriv --reuid=65534 --regid=65534 --clear-groups "; }

} // namespace

TEST_CASE("mq: create, send, recv, stat on a POSIX queue", "[mq][posix]") {
    posix_name q;
    auto c = mq({"create", q, "--max-msgs", "5", "--max-msg-size", "128", "--mode", "0640", "--json"});
    REQUIRE(c.status == 0);
    auto rec = parse_json(c.out)["queues"][0];
    CHECK(rec["name"] == q.name);
    CHECK(rec["kind"] == "posix");
    CHECK(rec["max_msgs"] == 5);
    CHECK(rec["msg_size_bytes"] == 128);
    CHECK(rec["messages"] == 0);
    CHECK(rec["mode"] == "0640");

    CHECK(mq({"send", q, "one", "two"}).status == 0);
    auto s = mq({"stat", q, "--json"});
    REQUIRE(s.status == 0);
    CHECK(parse_json(s.out)["queues"][0]["messages"] == 2);
    auto r = mq({"recv", q, "--count", "2"});
    CHECK(r.status == 0);
    CHECK(r.out == "one\ntwo\n");
    SECTION("the name may be given with or without its slash") {
        CHECK(mq({"send", q.name.substr(1), "x"}).status == 0);
        CHECK(mq({"recv", q}).out == "x\n");
    }
}

TEST_CASE("mq: highest priority first, FIFO within a priority", "[mq][posix][order][ipc7]") {
    posix_name q;
    REQUIRE(mq({"create", q, "--max-msgs", "10"}).status == 0);
    CHECK(mq({"send", q, "low-1"}).status == 0);
    CHECK(mq({"send", q, "-p", "5", "mid-1"}).status == 0);
    CHECK(mq({"send", q, "-p", "9", "high"}).status == 0);
    CHECK(mq({"send", q, "low-2"}).status == 0);
    CHECK(mq({"send", q, "--priority", "5", "mid-2"}).status == 0);
    auto r = mq({"recv", q, "--count", "5", "-o", "jsonl"});
    REQUIRE(r.status == 0);
    auto lines = parse_lines(r.out);
    REQUIRE(lines.size() == 5);
    std::vector<std::string> order;
    for (const auto& l : lines) order.push_back(l["data"]);
    CHECK(order == std::vector<std::string>{"high", "mid-1", "mid-2", "low-1", "low-2"});
    CHECK(lines[0]["priority"] == 9);
    CHECK(lines[0]["seq"] == 1);
    CHECK(lines[4]["priority"] == 0);
}

TEST_CASE("mq: send reads stdin - binary and NUL payloads survive", "[mq][posix][send]") {
    posix_name q;
    REQUIRE(mq({"create", q, "--max-msg-size", "512"}).status == 0);
    SECTION("lines and -0") {
        CHECK(mq({"send", q}, std::string("a\nb")).status == 0);
        CHECK(mq({"send", q, "-0"}, std::string("c\nd\0e\0", 6)).status == 0);
        CHECK(mq({"recv", q, "-c", "4", "-o", "jsonl"}).out.find("\"c\\nd\"") != std::string::npos);
    }
    SECTION("--whole and --jsonl keep bytes and priorities") {
        std::string blob("\0\xff\x01 binary\n", 11);
        CHECK(mq({"send", q, "--whole"}, blob).status == 0);
        CHECK(mq({"send", q, "--jsonl"}, std::string("{\"data\":\"p7\",\"priority\":7}\n{\"data_base64\":\"AAE=\"}\n"))
                  .status == 0);
        auto r = mq({"recv", q, "-c", "3", "-o", "jsonl"});
        REQUIRE(r.status == 0);
        auto lines = parse_lines(r.out);
        REQUIRE(lines.size() == 3);
        CHECK(lines[0]["data"] == "p7");
        CHECK(lines[0]["priority"] == 7);
        CHECK(lines[1]["data_base64"] == "AP8BIGJpbmFyeQo=");
        CHECK(lines[1]["size_bytes"] == 11);
        CHECK(lines[2]["data"] == std::string("\0\x01", 2));  // NUL is valid UTF-8: text
        // Raw output is the payload byte for byte.
        CHECK(mq({"send", q, "--whole"}, blob).status == 0);
        CHECK(mq({"recv", q, "--no-delimiter"}).out == blob);
    }
    SECTION("--file") {
        temp_dir dir;
        std::ofstream(dir / "in") << "f1\nf2\n";
        CHECK(mq({"send", q, "--file", dir / "in"}).status == 0);
        CHECK(mq({"recv", q, "-c", "2"}).out == "f1\nf2\n");
    }
}

TEST_CASE("mq: an oversize message is refused whole and nothing queued is lost", "[mq][posix][bad]") {
    posix_name q;
    REQUIRE(mq({"create", q, "--max-msg-size", "16"}).status == 0);
    CHECK(mq({"send", q, "kept"}).status == 0);
    auto big = mq({"send", q, "short", std::string(17, 'x')});
    CHECK(big.status == 65);
    CHECK(big.err.find("17 bytes") != std::string::npos);
    CHECK(big.err.find("nothing sent") != std::string::npos);
    auto in = mq({"send", q}, std::string(40, 'y') + "\n");
    CHECK(in.status == 65);
    auto bad_json = mq({"send", q, "--jsonl"}, std::string("{\"data\":1}\n"));
    CHECK(bad_json.status == 65);
    auto r = mq({"recv", q, "--drain"});
    CHECK(r.status == 0);
    CHECK(r.out == "kept\n");
}

TEST_CASE("mq: full and empty queues: wait, time out, or 75 at once", "[mq][posix][timeout]") {
    posix_name q;
    REQUIRE(mq({"create", q, "--max-msgs", "2"}).status == 0);
    CHECK(mq({"recv", q, "-n"}).status == 75);
    auto t = mq({"recv", q, "-t", "200ms"});
    CHECK(t.status == 75);
    CHECK(t.err.find("no message") != std::string::npos);
    CHECK(mq({"send", q, "1", "2"}).status == 0);
    auto full = mq({"send", q, "-n", "3"});
    CHECK(full.status == 75);
    CHECK(full.err.find("stayed full") != std::string::npos);
    CHECK(mq({"send", q, "-t", "150ms", "3"}).status == 75);
    SECTION("a blocked sender goes on when a receiver makes room") {
        auto sender = start({"send", q, "3"});
        std::this_thread::sleep_for(100ms);
        CHECK(::waitpid(sender.pid(), nullptr, WNOHANG) == 0);
        CHECK(mq({"recv", q}).out == "1\n");
        CHECK(sender.wait().status == 0);
        CHECK(mq({"recv", q, "-c", "2"}).out == "2\n3\n");
    }
    SECTION("--count cut short prints what it got, 75") {
        auto r = mq({"recv", q, "-c", "5", "-t", "200ms"});
        CHECK(r.status == 75);
        CHECK(r.out == "1\n2\n");
    }
    SECTION("--drain takes what is there and exits 0") {
        CHECK(mq({"recv", q, "--drain"}).out == "1\n2\n");
        auto again = mq({"recv", q, "--drain"});
        CHECK(again.status == 0);
        CHECK(again.out.empty());
    }
}

TEST_CASE("mq: recv --follow streams, and a blocked recv wakes for a message", "[mq][posix][recv]") {
    posix_name q;
    REQUIRE(mq({"create", q, "--max-msg-size", "512"}).status == 0);
    auto follower = start({"recv", q, "--follow", "-o", "jsonl"});
    CHECK(mq({"send", q, "a", "b", "c"}).status == 0);
    REQUIRE(testing::eventually([&] { return follower.read_stdout(0).find("\"c\"") != std::string::npos; }));
    // TSan holds a signal handler back until an intercepted call, which a
    // blocked mq_receive never reaches: there, end the process another way.
    follower.kill(testing::sanitized() ? SIGKILL : SIGINT);
    auto r = follower.wait();
    if (!testing::sanitized()) CHECK(r.status == 130);
    auto lines = parse_lines(r.out);
    REQUIRE(lines.size() == 3);
    CHECK(lines[2]["seq"] == 3);
}

TEST_CASE("mq: recv --follow | head -1 ends with 0", "[mq][posix][epipe]") {
    posix_name q;
    REQUIRE(mq({"create", q, "--max-msg-size", "512"}).status == 0);
    // A sender keeps the queue fed, so recv soon writes again after head has gone.
    auto b = testing::run({"bash", "-c",
                           "yes m | '" + bin + "' send " + q.name + " 2>/dev/null & sp=$!; '" + bin +
                               "' recv --follow -t 10s " + q.name + " | head -1; echo \"status=${PIPESTATUS[0]}\"; "
                               "kill $sp; wait"},
                          std::nullopt, 30s);
    CHECK(b.out == "m\nstatus=0\n");
}

TEST_CASE("mq: limits are named with their values", "[mq][posix][limits]") {
    posix_name q;
    long msg_max = 0, msgsize_max = 0;
    std::ifstream("/proc/sys/fs/mqueue/msg_max") >> msg_max;
    std::ifstream("/proc/sys/fs/mqueue/msgsize_max") >> msgsize_max;
    // Over the kernel's hard maxima nobody passes, privileged or not.
    auto many = mq({"create", q, "--max-msgs", "70000"});
    CHECK(many.status == 71);
    CHECK(many.err.find("/proc/sys/fs/mqueue/msg_max (" + std::to_string(msg_max) + ")") != std::string::npos);
    auto big = mq({"create", q, "--max-msg-size", "20M"});
    CHECK(big.status == 71);
    CHECK(big.err.find("/proc/sys/fs/mqueue/msgsize_max (" + std::to_string(msgsize_max) + ")") !=
          std::string::npos);
    // RLIMIT_MSGQUEUE, lowered for the one command.
    auto rl = testing::run({"prlimit", "--msgqueue=1000", bin, "create", q.name, "--max-msgs", "2", "--max-msg-size", "1K"});
    CHECK(rl.status == 71);
    CHECK(rl.err.find("RLIMIT_MSGQUEUE (1000 bytes") != std::string::npos);
}

TEST_CASE("mq: usage errors and missing queues", "[mq][usage]") {
    for (auto args : std::vector<std::vector<std::string>>{
             {"create", "a/b"}, {"create", ""}, {"create", std::string(300, 'n')}, {"create", "q", "--max-msg-size", "big"},
             {"send"}, {"recv", "q", "--timeout", "later"}, {"recv", "q", "--follow", "--drain"},
             {"send", "q", "--key", "1", "--id", "2", "m"}, {"recv", "--key", "0xZZ"}, {"send", "q", "-T", "3", "m"},
             {"set-capacity", "q", "4K"}, {"create", "--key", "5", "--max-msgs", "3"}, {"frob"}}) {
        CAPTURE(args);
        auto r = mq(args);
        CHECK(r.status == 64);
        CHECK(r.err.find("Try 'ipc-mq") != std::string::npos);
    }
    posix_name q;
    auto r = mq({"recv", q, "-n"});
    CHECK(r.status == 66);
    CHECK(r.err == "ipc-mq: cannot open queue '" + q.name + "': No such file or directory\n");
    CHECK(mq({"stat", q}).status == 66);
    CHECK(mq({"send", q, "x"}).status == 66);
    CHECK(mq({"rm", q}).status == 66);
    auto js = mq({"stat", q, "--json"});
    CHECK(parse_json(js.err)["error"]["errno_name"] == "ENOENT");
}

TEST_CASE("mq: create --exclusive on an existing queue is 73 - without it, the queue is reused", "[mq][posix]") {
    posix_name q;
    REQUIRE(mq({"create", q, "--max-msgs", "3"}).status == 0);
    CHECK(mq({"send", q, "kept"}).status == 0);
    CHECK(mq({"create", q, "--exclusive"}).status == 73);
    CHECK(mq({"create", q, "--max-msg-size", "512"}).status == 0);
    CHECK(mq({"recv", q}).out == "kept\n");
}

TEST_CASE("mq: permission denied is 77", "[mq][perm]") {
    posix_name q;
    REQUIRE(mq({"create", q, "--mode", "0600"}).status == 0);
    CHECK(mq({"send", q, "secret"}).status == 0);
    auto r = testing::sh(nobody() + "'" + bin + "' recv -n " + q.name);
    CHECK(r.status == 77);
    CHECK(r.err.find("Permission denied") != std::string::npos);
    CHECK(testing::sh(nobody() + "'" + bin + "' send -n " + q.name + " x").status == 77);
    CHECK(mq({"recv", q}).out == "secret\n");  // nothing lost
    sysv_key k;
    REQUIRE(mq({"create", "--key", k.text, "--mode", "0600"}).status == 0);
    CHECK(testing::sh(nobody() + "'" + bin + "' recv -n --key " + k.text).status == 77);
}

TEST_CASE("mq: ls needs the mqueue file system - says how to mount it (69)", "[mq][ls]") {
    auto r = in_namespace("exec '" + bin + "' ls", false);
    CHECK(r.status == 69);
    CHECK(r.err.find("mount -t mqueue none /dev/mqueue") != std::string::npos);
    posix_name q;
    REQUIRE(mq({"create", q, "--max-msgs", "4"}).status == 0);
    CHECK(mq({"send", q, "12345"}).status == 0);
    auto ls = in_namespace("exec '" + bin + "' ls --json");
    REQUIRE(ls.status == 0);
    bool found = false;
    auto doc = parse_json(ls.out);
    for (const auto& e : doc["queues"])
        if (e["name"] == q.name) {
            found = true;
            CHECK(e["messages"] == 1);
            CHECK(e["queued_bytes"] == 5);  // QSIZE from the mqueue file system
            CHECK(e["max_msgs"] == 4);
        }
    CHECK(found);
}

TEST_CASE("mq: rm by name, by --match with --dry-run, and carrying on past failures", "[mq][rm]") {
    posix_name a, b;
    REQUIRE(mq({"create", a, "--max-msg-size", "512"}).status == 0);
    REQUIRE(mq({"create", b, "--max-msg-size", "512"}).status == 0);
    std::string stem = a.name.substr(1, a.name.rfind('-'));  // "ipc-mq-test-PID-"
    auto dry = in_namespace("exec '" + bin + "' rm --match '" + stem + "*' --dry-run");
    CHECK(dry.status == 0);
    CHECK(dry.out.find("would remove " + a.name) != std::string::npos);
    CHECK(dry.out.find("would remove " + b.name) != std::string::npos);
    CHECK(mq({"stat", a}).status == 0);
    auto real = in_namespace("exec '" + bin + "' rm --match '" + stem + "*' --json");
    CHECK(real.status == 0);
    CHECK(parse_json(real.out)["queues"].size() >= 2);
    CHECK(mq({"stat", a}).status == 66);
    CHECK(mq({"stat", b}).status == 66);
    posix_name c;
    REQUIRE(mq({"create", c, "--max-msg-size", "512"}).status == 0);
    auto mixed = mq({"rm", a, c});
    CHECK(mixed.status == 66);
    CHECK(mq({"stat", c}).status == 66);
}

TEST_CASE("mq: wait for a queue, for messages, for empty", "[mq][wait]") {
    posix_name q;
    auto waiter = start({"wait", q, "-t", "10s"});
    std::this_thread::sleep_for(150ms);
    REQUIRE(mq({"create", q, "--max-msg-size", "512"}).status == 0);
    CHECK(waiter.wait().status == 0);
    CHECK(mq({"wait", q, "--min-msgs", "2", "-t", "200ms"}).status == 75);
    CHECK(mq({"wait", q, "--empty", "-n"}).status == 0);
    auto w2 = start({"wait", q, "--min-msgs", "2", "-t", "10s", "--json"});
    CHECK(mq({"send", q, "1", "2"}).status == 0);
    auto r = w2.wait();
    CHECK(r.status == 0);
    CHECK(parse_json(r.out)["queues"][0]["messages"] == 2);
    CHECK(mq({"recv", q, "-c", "2"}).status == 0);  // wait took nothing
}

TEST_CASE("mq: watch streams depth changes and never takes a message", "[mq][watch]") {
    posix_name q;
    REQUIRE(mq({"create", q, "--max-msg-size", "512"}).status == 0);
    auto watcher = start({"watch", q, "-o", "jsonl", "--interval", "20ms", "-c", "3", "-t", "20s"});
    REQUIRE(!watcher.read_stdout(1).empty());
    CHECK(mq({"send", q, "x"}).status == 0);
    REQUIRE(testing::eventually([&] { return watcher.read_stdout(0).find("\"messages\":1") != std::string::npos; }));
    CHECK(mq({"send", q, "y"}).status == 0);
    auto r = watcher.wait();
    CHECK(r.status == 0);
    auto lines = parse_lines(r.out);
    REQUIRE(lines.size() == 3);
    CHECK(lines[0]["messages"] == 0);
    CHECK(lines[1]["messages"] == 1);
    CHECK(lines[2]["messages"] == 2);
    CHECK(mq({"recv", q, "-c", "2"}).out == "x\ny\n");
}

TEST_CASE("mq: a POSIX queue made by another process with mq_open is inspected and drained", "[mq][interop]") {
    posix_name q;
    pid_t pid = ::fork();
    if (pid == 0) {
        mq_attr a{};
        a.mq_maxmsg = 8;
        a.mq_msgsize = 64;
        mqd_t m = ::mq_open(q.name.c_str(), O_CREAT | O_WRONLY, 0644, &a);
        if (m == static_cast<mqd_t>(-1)) ::_exit(1);
        ::mq_send(m, "from-peer", 9, 3);
        ::mq_send(m, "\xff\x01", 2, 0);
        ::_exit(0);
    }
    int st = 0;
    ::waitpid(pid, &st, 0);
    REQUIRE(WEXITSTATUS(st) == 0);
    auto s = mq({"stat", q, "--json"});
    REQUIRE(s.status == 0);
    auto rec = parse_json(s.out)["queues"][0];
    CHECK(rec["messages"] == 2);
    CHECK(rec["max_msgs"] == 8);
    CHECK(rec["msg_size_bytes"] == 64);
    CHECK(rec["mode"] == "0644");
    auto r = mq({"recv", q, "--drain", "-o", "jsonl"});
    auto lines = parse_lines(r.out);
    REQUIRE(lines.size() == 2);
    CHECK(lines[0]["data"] == "from-peer");
    CHECK(lines[0]["priority"] == 3);
    CHECK(lines[1]["data_base64"] == "/wE=");
}

TEST_CASE("mq sysv: create, send with types, recv with msgrcv addressing", "[mq][sysv][ipc7]") {
    sysv_key k;
    auto c = mq({"create", "--key", k.text, "--json"});
    REQUIRE(c.status == 0);
    auto rec = parse_json(c.out)["queues"][0];
    CHECK(rec["kind"] == "sysv");
    CHECK(rec["key"] == k.key);
    CHECK(rec["id"] == k.id());
    CHECK(mq({"send", "--key", k.text, "-T", "5", "five"}).status == 0);
    CHECK(mq({"send", "--key", k.text, "-T", "2", "two"}).status == 0);
    CHECK(mq({"send", "--key", k.text, "-T", "7", "seven"}).status == 0);
    CHECK(mq({"send", "--key", k.text, "plain"}).status == 0);  // type 1
    // T > 0: the first of that type.
    auto seven = mq({"recv", "--key", k.text, "-T", "7", "-o", "jsonl"});
    CHECK(parse_json(seven.out)["type"] == 7);
    CHECK(parse_json(seven.out)["data"] == "seven");
    // T < 0: the lowest type not above |T|.
    CHECK(mq({"recv", "--key", k.text, "-T", "-5"}).out == "plain\n");
    CHECK(mq({"recv", "--key", k.text, "-T", "-5"}).out == "two\n");
    // 0: the first message.
    CHECK(mq({"recv", "--id", std::to_string(k.id())}).out == "five\n");
    CHECK(mq({"recv", "--key", k.text, "-n"}).status == 75);
    CHECK(mq({"recv", "--key", k.text, "-T", "3", "-t", "150ms"}).status == 75);
}

TEST_CASE("mq sysv: stat, capacity, limits, oversize", "[mq][sysv]") {
    sysv_key k;
    REQUIRE(mq({"create", "--key", k.text, "--max-bytes", "1K"}).status == 0);
    CHECK(mq({"send", "--key", k.text, "abc"}).status == 0);
    auto s = mq({"stat", "--key", k.text, "--json"});
    REQUIRE(s.status == 0);
    auto rec = parse_json(s.out)["queues"][0];
    CHECK(rec["messages"] == 1);
    CHECK(rec["queued_bytes"] == 3);
    CHECK(rec["capacity_bytes"] == 1024);
    CHECK(rec["last_send_pid"].get<int>() > 0);
    CHECK(rec["send_time_unix"].get<std::int64_t>() > 0);
    auto cap = mq({"set-capacity", "--key", k.text, "2K", "--json"});
    REQUIRE(cap.status == 0);
    CHECK(parse_json(cap.out)["queues"][0]["capacity_bytes"] == 2048);
    long msgmnb = 0, msgmax = 0;
    std::ifstream("/proc/sys/kernel/msgmnb") >> msgmnb;
    std::ifstream("/proc/sys/kernel/msgmax") >> msgmax;
    auto over = testing::sh("setpriv --bounding-set=-sys_resource '" + bin + "' set-capacity --key " + k.text + " " +
                            std::to_string(msgmnb * 2));
    CHECK(over.status == 77);
    CHECK(over.err.find("/proc/sys/kernel/msgmnb (" + std::to_string(msgmnb) + ")") != std::string::npos);
    auto big = mq({"send", "--key", k.text, std::string(static_cast<std::size_t>(msgmax + 1), 'x')});
    CHECK(big.status == 65);
    CHECK(mq({"recv", "--key", k.text}).out == "abc\n");  // nothing lost
    SECTION("full: 75 at once, or after the timeout") {
        std::string half(1000, 'h');
        CHECK(mq({"send", "--key", k.text, half, half}).status == 0);
        CHECK(mq({"send", "--key", k.text, "-n", half}).status == 75);
        CHECK(mq({"send", "--key", k.text, "-t", "150ms", half}).status == 75);
    }
}

TEST_CASE("mq sysv: blocking recv wakes for a message - SIGINT ends it with 130", "[mq][sysv][signal]") {
    sysv_key k;
    REQUIRE(mq({"create", "--key", k.text}).status == 0);
    auto r1 = start({"recv", "--key", k.text});
    std::this_thread::sleep_for(100ms);
    CHECK(mq({"send", "--key", k.text, "-T", "4", "late"}).status == 0);
    CHECK(r1.wait().out == "late\n");
    auto r2 = start({"recv", "--key", k.text});
    std::this_thread::sleep_for(150ms);
    r2.kill(SIGINT);
    CHECK(r2.wait().status == 130);
    auto r3 = start({"recv", "--key", k.text, "-t", "30s"});
    std::this_thread::sleep_for(150ms);
    r3.kill(SIGTERM);
    CHECK(r3.wait().status == 143);
}

TEST_CASE("mq sysv: missing queues, rm, exclusive", "[mq][sysv]") {
    sysv_key k;
    CHECK(mq({"recv", "--key", k.text, "-n"}).status == 66);
    CHECK(mq({"stat", "--id", "2147483000"}).status == 66);
    REQUIRE(mq({"create", "--key", k.text}).status == 0);
    CHECK(mq({"create", "--key", k.text, "--exclusive"}).status == 73);
    auto dry = mq({"rm", "--key", k.text, "--dry-run"});
    CHECK(dry.status == 0);
    CHECK(k.id() >= 0);
    CHECK(mq({"rm", "--key", k.text}).status == 0);
    CHECK(k.id() < 0);
    CHECK(mq({"rm", "--key", k.text}).status == 66);
}

TEST_CASE("mq sysv: a queue made by ipcmk -Q is listed and usable - ls agrees with lsipc and ipcs", "[mq][sysv][interop]") {
    sysv_key k;
    auto mk = testing::run({"ipcmk", "-Q", "-p", "0640"});
    REQUIRE(mk.status == 0);
    // ipcmk prints "Message queue id: N"; make it ours to clean up.
    int id = std::stoi(mk.out.substr(mk.out.rfind(' ') + 1));
    struct cleanup {
        int id;
        ~cleanup() { ::msgctl(id, IPC_RMID, nullptr); }
    } guard{id};
    CHECK(mq({"send", "--id", std::to_string(id), "-T", "3", "hello"}).status == 0);

    auto ls = mq({"ls", "--sysv", "--json"});
    REQUIRE(ls.status == 0);
    auto lsipc = testing::run({"lsipc", "-q", "--json", "-o", "KEY,ID,PERMS,OWNER,USEDBYTES,MSGS,LSPID,LRPID", "-b"});
    REQUIRE(lsipc.status == 0);
    auto ours = parse_json(ls.out)["queues"];
    auto theirs = parse_json(lsipc.out)["messages"];
    // Other tests may add queues between the two listings: compare what both show.
    bool listed = false;
    for (const auto& o : ours) listed = listed || o["id"] == id;
    CHECK(listed);
    for (const auto& t : theirs) {
        int tid = std::stoi(t["id"].get<std::string>());
        if (tid != id) continue;
        bool matched = false;
        for (const auto& o : ours) {
            if (o["id"] != tid) continue;
            matched = true;
            CHECK(o["key"] == static_cast<key_t>(std::stoul(t["key"].get<std::string>(), nullptr, 16)));
            CHECK(std::to_string(o["messages"].get<long>()) == t["msgs"].get<std::string>());
            CHECK(std::to_string(o["queued_bytes"].get<long>()) == t["usedbytes"].get<std::string>());
            CHECK(std::to_string(o["last_send_pid"].get<long>()) == t["lspid"].get<std::string>());
            CHECK(o["user"] == t["owner"]);
        }
        CHECK(matched);
    }
    auto ipcs = testing::run({"ipcs", "-q", "-i", std::to_string(id)});
    CHECK(ipcs.out.find("qnum=1") != std::string::npos);
    auto r = mq({"recv", "--id", std::to_string(id), "-o", "jsonl"});
    CHECK(parse_json(r.out)["type"] == 3);
    (void)k;
}

TEST_CASE("mq sysv: messages cross with python3-sysv-ipc, types kept both ways", "[mq][sysv][interop]") {
    sysv_key k;
    REQUIRE(mq({"create", "--key", k.text, "--mode", "0600"}).status == 0);
    auto py = testing::run({"/usr/bin/python3", "-c",
                            "import sysv_ipc, sys; q = sysv_ipc.MessageQueue(" + k.text +
                                "); q.send(b'from python\\x00bin', type=42)"});
    REQUIRE(py.status == 0);
    auto r = mq({"recv", "--key", k.text, "-o", "jsonl"});
    REQUIRE(r.status == 0);
    auto rec = parse_json(r.out);
    CHECK(rec["type"] == 42);
    CHECK(rec["size_bytes"] == 15);
    CHECK(rec["data"] == std::string("from python\0bin", 15));
    CHECK(mq({"send", "--key", k.text, "-T", "9", "to python"}).status == 0);
    auto back = testing::run({"/usr/bin/python3", "-c",
                              "import sysv_ipc; q = sysv_ipc.MessageQueue(" + k.text +
                                  "); m, t = q.receive(block=False); print(t, m.decode())"});
    CHECK(back.status == 0);
    CHECK(back.out == "9 to python\n");
}

TEST_CASE("mq sysv: send --jsonl keeps each record's type - recv -o jsonl replays", "[mq][sysv]") {
    sysv_key k;
    REQUIRE(mq({"create", "--key", k.text}).status == 0);
    CHECK(mq({"send", "--key", k.text, "--jsonl"},
             std::string("{\"data\":\"a\",\"type\":3}\n{\"data\":\"b\",\"type\":8}\n{\"data\":\"c\"}\n"))
              .status == 0);
    auto r = mq({"recv", "--key", k.text, "--drain", "-o", "jsonl"});
    auto lines = parse_lines(r.out);
    REQUIRE(lines.size() == 3);
    CHECK(lines[0]["type"] == 3);
    CHECK(lines[1]["type"] == 8);
    CHECK(lines[2]["type"] == 1);
    CHECK(mq({"send", "--key", k.text, "--jsonl"}, std::string("{\"data\":\"z\",\"type\":0}\n")).status == 65);
}

TEST_CASE("mq: recv --follow --count N stops after N", "[mq][recv]") {
    posix_name q;
    REQUIRE(mq({"create", q, "--max-msg-size", "512"}).status == 0);
    CHECK(mq({"send", q, "a", "b", "c"}).status == 0);
    auto r = mq({"recv", q, "--follow", "--count", "2"});
    CHECK(r.status == 0);
    CHECK(r.out == "a\nb\n");
    CHECK(mq({"recv", q, "--drain", "--count", "5"}).out == "c\n");
}

TEST_CASE("mq: key 0 selects nothing (no queue is made by a look-up)", "[mq][sysv][bad]") {
    for (auto verb : {"stat", "recv", "rm", "wait"}) {
        CAPTURE(verb);
        auto r = mq({verb, "--key", "0", "-n"});
        if (std::string(verb) == "stat" || std::string(verb) == "rm") r = mq({verb, "--key", "private"});
        CHECK(r.status == 64);
        CHECK(r.err.find("--id") != std::string::npos);
    }
    CHECK(mq({"send", "--key", "0", "x"}).status == 64);
}

TEST_CASE("mq: names are all checked before any queue is made or removed", "[mq][bad]") {
    posix_name ok;
    CHECK(mq({"create", ok, "a/b"}).status == 64);
    CHECK(mq({"stat", ok}).status == 66);
    REQUIRE(mq({"create", ok, "--max-msg-size", "512"}).status == 0);
    CHECK(mq({"rm", ok, "bad/x"}).status == 64);
    CHECK(mq({"stat", ok}).status == 0);
}

TEST_CASE("mq: stat carries on past a missing queue", "[mq][stat]") {
    posix_name a, missing, b;
    REQUIRE(mq({"create", a, "--max-msg-size", "512"}).status == 0);
    REQUIRE(mq({"create", b, "--max-msg-size", "512"}).status == 0);
    auto r = mq({"stat", a, missing, b, "--json"});
    CHECK(r.status == 66);
    CHECK(parse_json(r.out)["queues"].size() == 2);
}

TEST_CASE("mq: details found in review", "[mq][bad]") {
    posix_name q;
    SECTION("mode has no set-id bits; reuse of an existing queue is said") {
        auto c = mq({"create", q, "-m", "04755", "--json"});
        REQUIRE(c.status == 0);
        CHECK(parse_json(c.out)["queues"][0]["mode"] == "0755");
        auto again = mq({"create", q, "--max-msgs", "3"});
        CHECK(again.status == 0);
        CHECK(again.err.find("exists") != std::string::npos);
    }
    SECTION("-0 with arguments, csv watch, --key with --match are usage errors") {
        REQUIRE(mq({"create", q, "--max-msg-size", "512"}).status == 0);
        CHECK(mq({"send", "-0", q, "x"}).status == 64);
        CHECK(mq({"watch", q, "-o", "csv", "-c", "1"}).status == 64);
        CHECK(mq({"rm", "--key", "5", "--match", "x*"}).status == 64);
    }
    SECTION("a record's priority out of range is bad input (65)") {
        REQUIRE(mq({"create", q, "--max-msg-size", "512"}).status == 0);
        auto r = mq({"send", q, "--jsonl"}, std::string("{\"data\":\"a\"}\n{\"data\":\"b\",\"priority\":40000}\n"));
        CHECK(r.status == 65);
        CHECK(r.err.find("record 2") != std::string::npos);
        CHECK(mq({"recv", q, "--drain"}).out == "a\n");
    }
    SECTION("stdin messages are held to the queue's message size exactly") {
        REQUIRE(mq({"create", q, "--max-msg-size", "10"}).status == 0);
        CHECK(mq({"send", q}, std::string("0123456789\n")).status == 0);
        auto r = mq({"send", q}, std::string("0123456789A\n"));
        CHECK(r.status == 65);
        CHECK(r.err.find("(10 B)") != std::string::npos);
    }
}

TEST_CASE("mq sysv: empty messages, capacity checks", "[mq][sysv][bad]") {
    sysv_key k;
    REQUIRE(mq({"create", "--key", k.text, "--max-bytes", "100"}).status == 0);
    CHECK(mq({"send", "--key", k.text, "", "x"}).status == 0);  // an empty first message is a message
    auto r = mq({"recv", "--key", k.text, "-c", "2", "-o", "jsonl"});
    auto lines = parse_lines(r.out);
    REQUIRE(lines.size() == 2);
    CHECK(lines[0]["size_bytes"] == 0);
    auto big = mq({"send", "--key", k.text, std::string(101, 'b')}, std::nullopt, 10s);
    CHECK(big.status == 65);
    CHECK(big.err.find("capacity") != std::string::npos);
    CHECK(mq({"set-capacity", "--key", k.text, "0"}).status == 64);
}

TEST_CASE("mq: another user's queue: listed with what can be seen - using it warns", "[mq][perm]") {
    posix_name secret, open;
    REQUIRE(mq({"create", secret, "--mode", "0600"}).status == 0);
    REQUIRE(mq({"create", open, "--mode", "0666"}).status == 0);
    auto ls = in_namespace(nobody() + "'" + bin + "' ls --json");
    REQUIRE(ls.status == 0);
    auto doc = parse_json(ls.out);
    bool seen = false;
    for (const auto& e : doc["queues"])
        if (e["name"] == secret.name) {
            seen = true;
            CHECK(e["messages"].is_null());
            CHECK(e["user"] == "root");
        }
    CHECK(seen);
    auto s = testing::sh(nobody() + "'" + bin + "' send " + open.name + " hi");
    CHECK(s.status == 0);
    CHECK(s.err.find("belongs to another user (root)") != std::string::npos);
}

TEST_CASE("ipc(7) mq storage: messages outlive their sender - removal discards them", "[mq][ipc7]") {
    posix_name q;
    REQUIRE(mq({"create", q, "--max-msg-size", "512"}).status == 0);
    CHECK(mq({"send", q, "outlives"}).status == 0);  // that sender has exited
    CHECK(mq({"stat", q, "--json"}).out.find("\"messages\": 1") != std::string::npos);
    CHECK(mq({"rm", q}).status == 0);
    REQUIRE(mq({"create", q, "--max-msg-size", "512"}).status == 0);
    CHECK(mq({"recv", q, "-n"}).status == 75);  // a new queue of the same name starts empty

    sysv_key k;
    REQUIRE(mq({"create", "--key", k.text}).status == 0);
    auto blocked = start({"recv", "--key", k.text});
    std::this_thread::sleep_for(150ms);
    CHECK(mq({"rm", "--key", k.text}).status == 0);
    auto r = blocked.wait();
    CHECK(r.status == 66);  // EIDRM: the queue went away under the receiver
}

TEST_CASE("ipc(7) mq sender identity: System V keeps the last sender's pid, for the queue", "[mq][ipc7]") {
    sysv_key k;
    REQUIRE(mq({"create", "--key", k.text}).status == 0);
    auto sender = start({"send", "--key", k.text, "x"});
    pid_t pid = sender.pid();
    REQUIRE(sender.wait().status == 0);
    auto s = parse_json(mq({"stat", "--key", k.text, "--json"}).out)["queues"][0];
    CHECK(s["last_send_pid"] == pid);
    auto r = parse_json(mq({"recv", "--key", k.text, "-o", "jsonl"}).out);
    CHECK_FALSE(r.contains("sender"));  // nothing per message
}
