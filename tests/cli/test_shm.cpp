// SPDX-License-Identifier: MIT
// ipc-shm, run as a real binary against real /dev/shm objects, System V
// segments and semaphores, and processes.
#include <catch2/catch.hpp>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include <fcntl.h>
#include <semaphore.h>
#include <sys/mman.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "json_output.hpp"
#include "process.hpp"

using nlohmann::json;
using namespace std::chrono_literals;
using testing::child;
using testing::outcome;

namespace {

const std::string bin = IPC_SHM_BIN;

outcome shm(std::vector<std::string> args, std::optional<std::string> in = std::nullopt,
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

json stat_json(const std::string& name) {
    auto r = shm({"stat", name, "--json"});
    INFO(r.err);
    REQUIRE(r.status == 0);
    return parse_json(r.out)["objects"][0];
}

// A /dev/shm name unique to this test; the object (segment or semaphore) is
// removed when the test ends.
struct shm_name {
    std::string name = "/" + testing::unique_name("ipc-shm-test");
    ~shm_name() {
        ::shm_unlink(name.c_str());
        ::sem_unlink(name.c_str());
    }
    operator const std::string&() const { return name; }
};

struct sysv_key {
    key_t key;
    std::string text;
    sysv_key() {
        std::random_device rd;
        key = static_cast<key_t>(0x7c000000u | (rd() & 0xffffffu));
        text = std::to_string(key);
    }
    ~sysv_key() {
        int id = ::shmget(key, 0, 0);
        if (id >= 0) ::shmctl(id, IPC_RMID, nullptr);
        int sid = ::semget(key, 0, 0);
        if (sid >= 0) ::semctl(sid, 0, IPC_RMID);
    }
};

std::string nobody() { return "setpriv --reuid=65534 --regid=65534 --clear-groups "; }

} // namespace

TEST_CASE("shm: create, write, read (raw, hex, base64), resize, rm", "[shm][segment]") {
    shm_name s;
    auto c = shm({"create", s, "--size", "64", "--json"});
    REQUIRE(c.status == 0);
    auto rec = parse_json(c.out)["objects"][0];
    CHECK(rec["kind"] == "segment");
    CHECK(rec["size_bytes"] == 64);
    CHECK(rec["mode"] == "0600");
    CHECK(rec["creator_pid"].is_number_integer());
    CHECK(shm({"write", s, "--data", "hello"}).status == 0);
    CHECK(shm({"write", s, "--offset", "10"}, std::string("\0\xff", 2)).status == 0);
    CHECK(shm({"read", s, "--length", "5"}).out == "hello");
    CHECK(shm({"read", s, "--offset", "10", "--length", "2", "--base64"}).out == "AP8=\n");
    auto hex = shm({"read", s, "--length", "16", "--hex"});
    CHECK(hex.out == "00000000  68 65 6c 6c 6f 00 00 00  00 00 00 ff 00 00 00 00  |hello...........|\n");
    CHECK(shm({"read", s}).out.size() == 64);

    SECTION("never beyond the segment: 65, nothing written") {
        auto r = shm({"write", s, "--offset", "60", "--data", "123456"});
        CHECK(r.status == 65);
        CHECK(r.err.find("nothing written") != std::string::npos);
        CHECK(shm({"read", s, "--offset", "60"}).out == std::string(4, '\0'));
        CHECK(shm({"read", s, "--offset", "65"}).status == 65);
        CHECK(shm({"read", s, "--offset", "60", "--length", "5"}).status == 65);
    }
    SECTION("resize keeps the bytes that still fit") {
        auto r = shm({"resize", s, "--size", "4K", "--json"});
        CHECK(r.status == 0);
        CHECK(parse_json(r.out)["objects"][0]["size_bytes"] == 4096);
        CHECK(shm({"read", s, "--length", "5"}).out == "hello");
    }
    CHECK(shm({"rm", s}).status == 0);
    CHECK(shm({"stat", s}).status == 66);
}

TEST_CASE("shm: usage errors, missing, existing, permission", "[shm][bad]") {
    shm_name s;
    for (auto args : std::vector<std::vector<std::string>>{
             {"create", "a/b", "--size", "1"}, {"create", s, "--size", "lots"}, {"create", s},
             {"create", s, "--channel"}, {"create", s, "--channel", "--max-bytes", "1K", "--max-msg-size", "1K"},
             {"create", s, "--semaphore", "--size", "1"}, {"read", s, "--hex", "--base64"},
             {"recv", s, "--wait", "sometimes"}, {"ls", "--kind", "blob"}, {"rm"}, {"run", s}}) {
        CAPTURE(args);
        auto r = shm(args);
        CHECK(r.status == 64);
        CHECK(r.err.find("Try 'ipc-shm") != std::string::npos);
    }
    CHECK(shm({"read", s}).status == 66);
    CHECK(shm({"stat", s}).status == 66);
    REQUIRE(shm({"create", s, "--size", "8"}).status == 0);
    CHECK(shm({"create", s, "--size", "8", "--exclusive"}).status == 73);
    auto again = shm({"create", s, "--size", "16"});
    CHECK(again.status == 0);
    CHECK(again.err.find("exists") != std::string::npos);
    CHECK(stat_json(s)["size_bytes"] == 8);
    auto denied = testing::sh(nobody() + "'" + bin + "' read " + s.name);
    CHECK(denied.status == 77);
}

TEST_CASE("shm: ls shows every kind - agrees with /dev/shm", "[shm][ls]") {
    shm_name seg, cons, ch, sem, foreign;
    REQUIRE(shm({"create", seg, "--size", "1"}).status == 0);
    REQUIRE(shm({"create", cons, "--consistent", "--size", "8"}).status == 0);
    REQUIRE(shm({"create", ch, "--channel", "--max-bytes", "1K"}).status == 0);
    REQUIRE(shm({"create", sem, "--semaphore", "--value", "1"}).status == 0);
    // Another tool's object: a plain file in /dev/shm.
    std::ofstream("/dev/shm" + foreign.name) << "theirs";
    auto r = shm({"ls", "--json"});
    REQUIRE(r.status == 0);
    auto doc = parse_json(r.out);
    std::map<std::string, std::string> kinds;
    for (const auto& o : doc["objects"]) kinds[o["name"]] = o["kind"];
    CHECK(kinds[seg.name] == "segment");
    CHECK(kinds[cons.name] == "consistent");
    CHECK(kinds[ch.name] == "channel");
    CHECK(kinds[sem.name] == "semaphore");
    CHECK(kinds[foreign.name] == "other");
    // Every file of /dev/shm is listed, and nothing else.
    std::size_t files = 0;
    for (const auto& e : std::filesystem::directory_iterator("/dev/shm"))
        if (e.is_regular_file() && !e.path().filename().string().starts_with(".ipc-tmp-")) ++files;
    CHECK(doc["objects"].size() <= files + 2);  // others may come and go meanwhile
    auto only = shm({"ls", "--kind", "channel", "--json"});
    auto only_doc = parse_json(only.out);
    CHECK_FALSE(only_doc["objects"].empty());
    for (const auto& o : only_doc["objects"]) CHECK(o["kind"] == "channel");
}

TEST_CASE("shm: rm in bulk: selectors, dry run, other tools' objects are safe", "[shm][rm]") {
    shm_name a, b, foreign;
    REQUIRE(shm({"create", a, "--size", "1"}).status == 0);
    REQUIRE(shm({"create", b, "--size", "1"}).status == 0);
    std::ofstream("/dev/shm" + foreign.name) << "theirs";
    std::string stem = a.name.substr(1, a.name.rfind('-'));  // shared by a, b and foreign
    auto dry = shm({"rm", "--match", stem + "*", "--dry-run"});
    CHECK(dry.status == 0);
    CHECK(dry.out.find("would remove " + a.name) != std::string::npos);
    CHECK(dry.out.find(foreign.name) == std::string::npos);  // not ipc-shm's: not selected
    CHECK(shm({"stat", a}).status == 0);
    auto named = shm({"rm", foreign});
    CHECK(named.status == 65);
    CHECK(named.err.find("--kind other") != std::string::npos);
    CHECK(shm({"rm", "--match", stem + "*", "--owner", "root", "--older-than", "1h"}).out.empty());  // too young
    auto real = shm({"rm", "--match", stem + "*", "--json"});
    CHECK(real.status == 0);
    CHECK(parse_json(real.out)["objects"].size() == 2);
    CHECK(shm({"stat", a}).status == 66);
    CHECK(shm({"stat", foreign}).status == 0);
    CHECK(shm({"rm", foreign, "--kind", "other"}).status == 0);
}

TEST_CASE("shm: rm --stale takes objects nobody holds whose creator is gone", "[shm][rm]") {
    shm_name held, orphan;
    REQUIRE(shm({"create", held, "--size", "4K"}).status == 0);
    REQUIRE(shm({"create", orphan, "--size", "4K"}).status == 0);
    // A process maps `held`.
    child holder({"sh", "-c", "exec 3<'/dev/shm" + held.name + "'; exec sleep 60"});
    REQUIRE(testing::eventually([&] { return stat_json(held)["attached"] == 1; }));
    CHECK(stat_json(orphan)["creator_alive"] == false);
    std::string stem = held.name.substr(1, held.name.rfind('-'));
    auto r = shm({"rm", "--stale", "--match", stem + "*", "--json"});
    CHECK(r.status == 0);
    auto removed = parse_json(r.out)["objects"];
    REQUIRE(removed.size() == 1);
    CHECK(removed[0]["name"] == orphan.name);
    CHECK(shm({"stat", held}).status == 0);
}

TEST_CASE("shm sysv: segments by key: create, attach count, read/write, ls agrees with lsipc", "[shm][sysv]") {
    sysv_key k;
    auto c = shm({"create", "--key", k.text, "--size", "4K", "--json"});
    REQUIRE(c.status == 0);
    int id = parse_json(c.out)["objects"][0]["id"];
    CHECK(shm({"write", "--key", k.text, "--data", "sysv!"}).status == 0);
    CHECK(shm({"read", "--id", std::to_string(id), "--length", "5"}).out == "sysv!");
    void* at = ::shmat(id, nullptr, SHM_RDONLY);
    REQUIRE(at != reinterpret_cast<void*>(-1));
    auto s = parse_json(shm({"stat", "--key", k.text, "--json"}).out)["objects"][0];
    CHECK(s["attached"] == 1);
    CHECK(s["size_bytes"] == 4096);
    CHECK(s["creator_pid"].get<int>() > 0);
    ::shmdt(at);
    auto ls = parse_json(shm({"ls", "--sysv", "--json"}).out)["objects"];
    auto lsipc = parse_json(testing::run({"lsipc", "-m", "--json", "-b", "-o", "KEY,ID,SIZE,NATTCH"}).out)["sharedmemory"];
    bool matched = false;
    for (const auto& t : lsipc) {
        if (std::stoi(t["id"].get<std::string>()) != id) continue;
        for (const auto& o : ls)
            if (o["id"] == id) {
                matched = true;
                CHECK(std::to_string(o["size_bytes"].get<long>()) == t["size"].get<std::string>());
                CHECK(std::to_string(o["attached"].get<long>()) == t["nattch"].get<std::string>());
            }
    }
    CHECK(matched);
    CHECK(shm({"write", "--key", k.text, "--offset", "4090", "--data", "too long"}).status == 65);
    CHECK(shm({"rm", "--key", k.text}).status == 0);
    CHECK(shm({"stat", "--key", k.text}).status == 66);
}

TEST_CASE("shm consistent: readers never see a mix, also when the writer is killed mid-update", "[shm][consistent]") {
    shm_name c;
    const std::size_t size = 4096;
    REQUIRE(shm({"create", c, "--consistent", "--size", std::to_string(size)}).status == 0);
    REQUIRE(shm({"write", c, "--data", std::string(size, 'A')}).status == 0);
    // A writer alternates two whole-segment contents; readers check every snapshot.
    child writer({"sh", "-c",
                  "i=0; while [ $i -lt 150 ]; do '" + bin + "' write " + c.name + " --data \"$(printf '%4096s' | tr ' ' B)\"; '" +
                      bin + "' write " + c.name + " --data \"$(printf '%4096s' | tr ' ' A)\"; i=$((i+1)); done"});
    std::size_t snapshots = 0, mixed = 0;
    auto end = std::chrono::steady_clock::now() + 3s;
    while (std::chrono::steady_clock::now() < end) {
        auto r = shm({"read", c});
        INFO("read: status " << r.status << ", stderr: " << r.err);
        REQUIRE(r.status == 0);
        REQUIRE(r.out.size() == size);
        ++snapshots;
        if (r.out.find_first_not_of(r.out[0]) != std::string::npos) ++mixed;
    }
    writer.kill(SIGKILL);
    writer.wait();
    CHECK(snapshots >= 3);  // each is a process start: few on a loaded machine
    CHECK(mixed == 0);

    SECTION("a writer killed half-way through leaves the old content") {
        REQUIRE(shm({"write", c, "--data", std::string(size, 'O')}).status == 0);
        auto before = stat_json(c)["generation"].get<int>();
        auto killed = testing::run({"env", "IPC_FAULT=consistent.write.half", bin, "write", c.name, "--data",
                                    std::string(size, 'N')});
        CHECK(killed.status == 128 + SIGKILL);
        CHECK(shm({"read", c}).out == std::string(size, 'O'));
        CHECK(stat_json(c)["generation"] == before);  // no commit happened
        // The lock it held is taken over; the next writer goes on.
        CHECK(shm({"write", c, "--data", std::string(size, 'Z'), "-t", "5s"}).status == 0);
        CHECK(shm({"read", c}).out == std::string(size, 'Z'));
        CHECK(stat_json(c)["generation"] == before + 1);
    }
}

TEST_CASE("shm watch: reports which ranges changed", "[shm][watch]") {
    shm_name s;
    REQUIRE(shm({"create", s, "--size", "256"}).status == 0);
    auto w = start({"watch", s, "-o", "jsonl", "--interval", "20ms", "-c", "2", "-t", "20s"});
    REQUIRE(!w.read_stdout(1).empty());
    CHECK(shm({"write", s, "--offset", "100", "--data", "xyz"}).status == 0);
    auto r = w.wait();
    CHECK(r.status == 0);
    auto lines = parse_lines(r.out);
    REQUIRE(lines.size() == 2);
    CHECK(lines[0]["size_bytes"] == 256);
    REQUIRE(lines[1]["changes"].size() == 1);
    CHECK(lines[1]["changes"][0]["offset"] == 100);
    CHECK(lines[1]["changes"][0]["length"] == 3);
}

TEST_CASE("shm channel: send and recv from the shell", "[shm][channel]") {
    shm_name ch;
    REQUIRE(shm({"create", ch, "--channel", "--max-bytes", "4K", "--max-msg-size", "512"}).status == 0);
    CHECK(shm({"send", ch, "one", "two"}).status == 0);
    CHECK(shm({"send", ch, "--jsonl"}, std::string("{\"data_base64\":\"/wA=\"}\n")).status == 0);
    auto r = shm({"recv", ch, "-c", "3", "-o", "jsonl"});
    REQUIRE(r.status == 0);
    auto lines = parse_lines(r.out);
    REQUIRE(lines.size() == 3);
    CHECK(lines[0]["seq"] == 1);
    CHECK(lines[0]["data"] == "one");
    CHECK(lines[2]["seq"] == 3);
    CHECK(lines[2]["data_base64"] == "/wA=");
    for (auto mode : {"spin", "block", "adaptive"}) {
        CAPTURE(mode);
        auto t = shm({"recv", ch, "-t", "100ms", "--wait", mode});
        CHECK(t.status == 75);
    }
    CHECK(shm({"send", ch, std::string(513, 'x')}).status == 65);
    auto stat = stat_json(ch);
    CHECK(stat["capacity_bytes"] == 4096);
    CHECK(stat["max_msg_size_bytes"] == 512);
    CHECK(stat["sent"] == 3);
    SECTION("full: 75; a blocked receiver wakes for a message") {
        int sent = 0;
        while (sent < 1000 && shm({"send", ch, "-n", std::string(100, 'f')}).status == 0) ++sent;
        auto full = shm({"send", ch, "-n", std::string(100, 'f')});
        CHECK(full.status == 75);
        CHECK(full.err.find("stayed full") != std::string::npos);
        CHECK(stat_json(ch)["used_bytes"].get<int>() > 3500);
        CHECK(shm({"recv", ch, "--follow", "-q", "-t", "100ms"}).status == 75);  // drained, then timed out
        auto waiter = start({"recv", ch, "-t", "10s"});
        std::this_thread::sleep_for(100ms);
        CHECK(shm({"send", ch, "wake"}).status == 0);
        CHECK(waiter.wait().out == "wake\n");
    }
}

TEST_CASE("shm channel: not a channel, or a damaged one: a clear error", "[shm][channel][bad]") {
    shm_name seg, ch;
    REQUIRE(shm({"create", seg, "--size", "4K"}).status == 0);
    auto r = shm({"recv", seg, "-n"});
    CHECK(r.status == 65);
    CHECK(r.err.find("is a segment, not a channel") != std::string::npos);
    REQUIRE(shm({"create", ch, "--channel", "--max-bytes", "1K"}).status == 0);
    // Damage the capacity field of the header (offset 16).
    int fd = ::shm_open(ch.name.c_str(), O_RDWR, 0);
    REQUIRE(fd >= 0);
    std::uint64_t bad = 1ull << 40;
    REQUIRE(::pwrite(fd, &bad, sizeof bad, 16) == static_cast<ssize_t>(sizeof bad));
    ::close(fd);
    auto d = shm({"send", ch, "x"});
    CHECK(d.status == 65);
    CHECK(d.err.find("corrupted") != std::string::npos);
    auto s = shm({"stat", ch, "--json"});
    CHECK(s.status == 0);
    CHECK(parse_json(s.out)["objects"][0]["damage"].get<std::string>().find("corrupted") != std::string::npos);
}

TEST_CASE("shm channel: N senders x M receivers as processes of the CLI", "[shm][channel][processes]") {
    shm_name ch;
    REQUIRE(shm({"create", ch, "--channel", "--max-bytes", "64K"}).status == 0);
    const int senders = 3, per = 300;
    std::vector<child> rx;
    for (int r = 0; r < 2; ++r) rx.push_back(start({"recv", ch, "--follow", "-t", "1s"}));
    std::vector<child> tx;
    for (int s = 0; s < senders; ++s) {
        std::string input;
        for (int n = 0; n < per; ++n) input += std::to_string(s) + ":" + std::to_string(n) + "\n";
        tx.push_back(start({"send", ch}, input));
    }
    for (auto& t : tx) CHECK(t.wait().status == 0);
    std::set<std::string> seen;
    std::size_t total = 0;
    for (auto& r : rx) {
        auto o = r.wait(30s);
        CHECK(o.status == 75);  // --follow ends when no message comes within 1 s
        std::map<int, int> last;
        std::size_t pos = 0;
        while (pos < o.out.size()) {
            auto nl = o.out.find('\n', pos);
            std::string m = o.out.substr(pos, nl - pos);
            pos = nl + 1;
            ++total;
            CHECK(seen.insert(m).second);
            int s = std::stoi(m.substr(0, m.find(':'))), n = std::stoi(m.substr(m.find(':') + 1));
            if (last.count(s)) CHECK(n > last[s]);  // each sender's order kept
            last[s] = n;
        }
    }
    CHECK(total == senders * per);
    CHECK(seen.size() == senders * per);
}

TEST_CASE("shm semaphores: POSIX create, post, wait, timeout, stat", "[shm][semaphore]") {
    shm_name s;
    REQUIRE(shm({"create", s, "--semaphore", "--value", "1"}).status == 0);
    CHECK(shm({"wait", s, "-n"}).status == 0);
    CHECK(shm({"wait", s, "-n"}).status == 75);
    auto t = shm({"wait", s, "-t", "150ms"});
    CHECK(t.status == 75);
    auto waiter = start({"wait", s, "-t", "10s"});
    REQUIRE(testing::eventually([&] { return stat_json(s)["waiters"] == 1; }));
    CHECK(shm({"post", s}).status == 0);
    CHECK(waiter.wait().status == 0);
    CHECK(stat_json(s)["value"] == 0);
    CHECK(shm({"post", s}).status == 0);
    CHECK(stat_json(s)["value"] == 1);
}

TEST_CASE("shm semaphores: System V sets, with waiters from the kernel", "[shm][semaphore][sysv]") {
    sysv_key k;
    auto c = shm({"create", "--semaphore", "--key", k.text, "--value", "2", "--json"});
    REQUIRE(c.status == 0);
    CHECK(parse_json(c.out)["objects"][0]["value"] == 2);
    CHECK(shm({"wait", "--key", k.text}).status == 0);
    CHECK(shm({"wait", "--key", k.text}).status == 0);
    auto waiter = start({"wait", "--key", k.text, "-t", "10s"});
    auto sysv_stat = [&] { return parse_json(shm({"stat", "--semaphore", "--key", k.text, "--json"}).out)["objects"][0]; };
    REQUIRE(testing::eventually([&] { return sysv_stat()["waiters"] == 1; }));
    CHECK(shm({"post", "--key", k.text}).status == 0);
    CHECK(waiter.wait().status == 0);
    auto listed = parse_json(shm({"ls", "--sysv", "--kind", "semaphore", "--json"}).out)["objects"];
    bool found = false;
    for (const auto& o : listed) found = found || o["key"] == k.key;
    CHECK(found);
    CHECK(shm({"rm", "--semaphore", "--key", k.text}).status == 0);
    CHECK(shm({"wait", "--key", k.text, "-n"}).status == 66);
}

TEST_CASE("shm run: holds the semaphore while the command runs, gives it back however it ends", "[shm][run]") {
    SECTION("POSIX: the command's exit status; released after a kill") {
        shm_name s;
        REQUIRE(shm({"create", s, "--semaphore", "--value", "1"}).status == 0);
        auto r = shm({"run", s, "--", "sh", "-c", "exit 3"});
        CHECK(r.status == 3);
        CHECK(stat_json(s)["value"] == 1);
        auto holder = start({"run", s, "--", "sleep", "60"});
        REQUIRE(testing::eventually([&] { return stat_json(s)["value"] == 0; }));
        CHECK(shm({"run", s, "-n", "--", "true"}).status == 75);  // held
        // Kill the command (the child of ipc-shm): the unit comes back.
        CHECK(testing::sh("pkill -KILL -P " + std::to_string(holder.pid()) + " sleep").status == 0);
        CHECK(holder.wait().status == 128 + SIGKILL);
        CHECK(stat_json(s)["value"] == 1);
    }
    SECTION("System V: SEM_UNDO gives it back even after SIGKILL of the holder") {
        sysv_key k;
        REQUIRE(shm({"create", "--semaphore", "--key", k.text, "--value", "1"}).status == 0);
        auto holder = start({"run", "--key", k.text, "--", "sleep", "60"});
        auto value = [&] {
            return parse_json(shm({"stat", "--semaphore", "--key", k.text, "--json"}).out)["objects"][0]["value"];
        };
        REQUIRE(testing::eventually([&] { return value() == 0; }));
        holder.kill(SIGKILL);  // run exec'd the command: this kills the holder itself
        holder.wait();
        CHECK(value() == 1);
        CHECK(shm({"run", "--key", k.text, "--", "sh", "-c", "exit 0"}).status == 0);
    }
    SECTION("limits concurrency like flock: at most N at once") {
        shm_name s;
        REQUIRE(shm({"create", s, "--semaphore", "--value", "2"}).status == 0);
        testing::temp_dir dir;
        std::string log = dir / "log";
        // Each job records start and end; 6 jobs, at most 2 at once.
        std::vector<child> jobs;
        for (int i = 0; i < 6; ++i)
            jobs.push_back(start({"run", s, "--", "sh", "-c",
                                  "echo + >> '" + log + "'; sleep 0.1; echo - >> '" + log + "'"}));
        for (auto& j : jobs) CHECK(j.wait().status == 0);
        std::ifstream in(log);
        int running = 0, most = 0;
        for (std::string l; std::getline(in, l);) {
            running += l == "+" ? 1 : -1;
            most = std::max(most, running);
        }
        CHECK(most <= 2);
        CHECK(most >= 1);
    }
}

TEST_CASE("shm channel: counts stay right after a receiver is killed just after taking", "[shm][channel][crash]") {
    shm_name ch;
    REQUIRE(shm({"create", ch, "--channel", "--max-bytes", "256"}).status == 0);
    CHECK(shm({"send", ch, "a", "b"}).status == 0);
    auto killed = testing::run({"env", "IPC_FAULT=ring.recv.after_take", bin, "recv", ch.name});
    CHECK(killed.status == 128 + SIGKILL);
    auto s = stat_json(ch);
    CHECK(s["messages"] == 1);
    CHECK(s["taken"] == 1);
    CHECK(shm({"recv", ch, "-n"}).out == "b\n");
    CHECK(stat_json(ch)["messages"] == 0);
    SECTION("a sender sleeping for room wakes although the receiver died before waking it") {
        while (shm({"send", ch, "-n", std::string(60, 'f')}).status == 0) {
        }
        auto sender = start({"send", ch, "-w", "block", "-t", "10s", "late"});
        std::this_thread::sleep_for(100ms);
        CHECK(testing::run({"env", "IPC_FAULT=ring.recv.after_take", bin, "recv", ch.name}).status == 128 + SIGKILL);
        CHECK(sender.wait().status == 0);  // within a wait slice, not at its timeout
    }
}

TEST_CASE("shm consistent: readers need only read permission", "[shm][consistent][perm]") {
    if (testing::thread_sanitized()) {
        WARN("skipped under TSan: there the reader's second look is a read-modify-write (TSan has no fences)");
        return;
    }
    shm_name c;
    REQUIRE(shm({"create", c, "--consistent", "--size", "16", "-m", "0644"}).status == 0);
    REQUIRE(shm({"write", c, "--data", "shared"}).status == 0);
    auto r = testing::sh(nobody() + "'" + bin + "' read " + c.name + " --length 6");
    CHECK(r.status == 0);
    CHECK(r.out == "shared");
    CHECK(testing::sh(nobody() + "'" + bin + "' write " + c.name + " --data x").status == 77);
}

TEST_CASE("shm watch: a missing object is reported at once", "[shm][watch]") {
    shm_name s;
    auto r = shm({"watch", s, "-c", "1", "-o", "jsonl"}, std::nullopt, 10s);
    CHECK(r.status == 0);
    CHECK(parse_json(r.out)["exists"] == false);
}

TEST_CASE("shm: names of semaphore files are not segment names", "[shm][names]") {
    shm_name s;
    std::string clash = "sem." + s.name.substr(1);
    auto r = shm({"create", clash, "--size", "4K"});
    CHECK(r.status == 64);
    CHECK(r.err.find("where POSIX semaphores live") != std::string::npos);
    CHECK(shm({"create", clash, "--channel", "--max-bytes", "4K"}).status == 64);
    CHECK(::access(("/dev/shm/" + clash).c_str(), F_OK) != 0);
    // A file under a semaphore's name that is no semaphore is another tool's:
    // listed as such, and not removed unless asked.
    {
        std::ofstream junk("/dev/shm/" + clash);
        junk << "x";
    }
    auto st = parse_json(shm({"stat", s, "--json"}).out)["objects"][0];
    CHECK(st["kind"] == "other");
    auto rm = shm({"rm", s});
    CHECK(rm.status == 65);
    CHECK(rm.err.find("--kind other") != std::string::npos);
    CHECK(::access(("/dev/shm/" + clash).c_str(), F_OK) == 0);
    ::unlink(("/dev/shm/" + clash).c_str());
}

TEST_CASE("shm: semaphores carry their creator, as segments do", "[shm][sem]") {
    shm_name s;
    REQUIRE(shm({"create", s, "--semaphore", "--value", "1"}).status == 0);
    auto st = parse_json(shm({"stat", s, "--json"}).out)["objects"][0];
    CHECK(st["kind"] == "semaphore");
    CHECK(st["creator_pid"].is_number());
    CHECK(st["creator_alive"] == false);  // the create has exited
}

TEST_CASE("shm read: -q shows nothing, -o jsonl gives a record", "[shm][read]") {
    shm_name s;
    REQUIRE(shm({"create", s, "--size", "8"}).status == 0);
    REQUIRE(shm({"write", s, "--data", "hi"}).status == 0);
    auto q = shm({"read", s, "-q"});
    CHECK(q.status == 0);
    CHECK(q.out.empty());
    auto j = parse_json(shm({"read", s, "--length", "2", "-o", "jsonl"}).out);
    CHECK(j["data"] == "hi");
    CHECK(j["length_bytes"] == 2);
    REQUIRE(shm({"write", s, "--offset", "2", "--data", std::string("\xff\xfe", 2)}).status == 0);
    auto b = parse_json(shm({"read", s, "--length", "4", "-o", "jsonl"}).out);
    CHECK(b["data_base64"] == "aGn//g==");
    CHECK(shm({"read", s, "--hex", "-o", "json"}).status == 64);
}

TEST_CASE("shm rm --stale: a create killed before linking leaves nothing behind for long", "[shm][rm]") {
    shm_name s;
    // What a create killed half-way leaves: its temporary file, its pid gone.
    child gone({"true"});
    pid_t dead = gone.pid();
    gone.wait();
    std::string tmp = "/dev/shm/.ipc-tmp-" + std::to_string(dead) + "-" + s.name.substr(1);
    { std::ofstream f(tmp); }
    std::string stem = s.name.substr(1);
    auto dry = shm({"rm", "--stale", "--match", stem, "--dry-run", "--json"});
    CHECK(dry.status == 0);
    CHECK(::access(tmp.c_str(), F_OK) == 0);
    auto r = shm({"rm", "--stale", "--match", stem, "--json"});
    CHECK(r.status == 0);
    CHECK(parse_json(r.out)["objects"][0]["name"] == tmp.substr(9));
    CHECK(::access(tmp.c_str(), F_OK) != 0);
    ::unlink(tmp.c_str());
}

TEST_CASE("shm: a full /dev/shm is an error, never SIGBUS, and loses nothing", "[shm][space]") {
    // In a private mount namespace, over a 1 MiB /dev/shm.
    auto r = testing::sh("unshare -m sh -c 'mount -t tmpfs -o size=1M tmpfs /dev/shm && "
                         "\"" + bin + "\" create big --size 4M; echo create=$?; ls -a /dev/shm | grep -c . ; "
                         "\"" + bin + "\" create c --channel --max-bytes 8M; echo channel=$?; "
                         "truncate -s 4M /dev/shm/sparse && head -c 2M /dev/zero > /dev/shm/fill 2>/dev/null; "
                         "\"" + bin + "\" write sparse --offset 3M --data hello; echo write=$?; "
                         "\"" + bin + "\" read sparse --offset 3M --length 5 | od -An -c | tr -d \" \\n\"; echo; "
                         "rm /dev/shm/fill; \"" + bin + "\" create small --size 64K; echo small=$?; "
                         "head -c 2M /dev/zero > /dev/shm/fill 2>/dev/null; "
                         "\"" + bin + "\" resize small --size 8M; echo resize=$?; stat -c %s /dev/shm/small'");
    INFO(r.out << r.err);
    CHECK(r.out.find("create=71") != std::string::npos);
    CHECK(r.out.find("\n2\n") != std::string::npos);  // only . and .. : no leftover
    CHECK(r.out.find("channel=71") != std::string::npos);
    CHECK(r.out.find("write=71") != std::string::npos);
    CHECK(r.out.find("\\0\\0\\0\\0\\0") != std::string::npos);  // nothing written
    CHECK(r.out.find("small=0") != std::string::npos);
    CHECK(r.out.find("resize=71") != std::string::npos);
    CHECK(r.out.find("\n65536\n") != std::string::npos);  // the old size stands
    CHECK(r.err.find("No space left on device") != std::string::npos);
}

TEST_CASE("shm: using another user's object says so", "[shm][perm]") {
    shm_name s;
    REQUIRE(shm({"create", s, "--size", "8", "-m", "0644"}).status == 0);
    auto r = testing::sh(nobody() + "'" + bin + "' read " + s.name + " > /dev/null");
    CHECK(r.status == 0);
    CHECK(r.err.find("belongs to another user (root)") != std::string::npos);
    CHECK(shm({"read", s}).err.empty());  // not for one's own
}

TEST_CASE("shm run: the unit goes back to the semaphore it came from", "[shm][sem][run]") {
    shm_name s;
    REQUIRE(shm({"create", s, "--semaphore", "--value", "1"}).status == 0);
    // The command replaces the semaphore by a new one of the same name.
    auto r = shm({"run", s, "--", "sh", "-c",
                  "'" + bin + "' rm " + s.name + " && '" + bin + "' create -q " + s.name + " --semaphore --value 0"});
    INFO(r.err);
    CHECK(r.status == 0);
    CHECK(parse_json(shm({"stat", s, "--json"}).out)["objects"][0]["value"] == 0);
}

TEST_CASE("shm: a symbolic link is not an object, for every verb alike", "[shm][names]") {
    shm_name s;
    REQUIRE(::symlink("/etc/passwd", ("/dev/shm" + s.name).c_str()) == 0);
    for (std::vector<std::string> v : {std::vector<std::string>{"stat"}, {"read"}, {"write", "--data", "x"}, {"send", "x"},
                                       {"recv", "-n"}, {"rm"}, {"resize", "--size", "1"}}) {
        v.insert(v.begin() + 1, s.name);
        auto r = shm(v);
        CAPTURE(v[0]);
        CHECK(r.status == 65);
        CHECK(r.err.find("is not a shared memory object") != std::string::npos);
    }
    ::unlink(("/dev/shm" + s.name).c_str());
}

TEST_CASE("shm create: an existing object is left as it is, and said so, for every kind", "[shm][create]") {
    shm_name seg, sem;
    sysv_key k;
    REQUIRE(shm({"create", seg, "--size", "8"}).status == 0);
    REQUIRE(shm({"create", sem, "--semaphore", "--value", "3"}).status == 0);
    REQUIRE(shm({"create", "--key", k.text, "--size", "8"}).status == 0);
    auto a = shm({"create", seg, "--size", "16"});
    CHECK(a.status == 0);
    CHECK(a.err.find("exists; it is left as it is") != std::string::npos);
    auto b = shm({"create", sem, "--semaphore", "--value", "1"});
    CHECK(b.status == 0);
    CHECK(b.err.find("exists; it is left as it is") != std::string::npos);
    CHECK(parse_json(shm({"stat", sem, "--json"}).out)["objects"][0]["value"] == 3);
    auto c = shm({"create", "--key", k.text, "--size", "8"});
    CHECK(c.status == 0);
    CHECK(c.err.find("exists; it is left as it is") != std::string::npos);
    CHECK(shm({"create", sem, "--semaphore", "-x"}).status == 73);
}
