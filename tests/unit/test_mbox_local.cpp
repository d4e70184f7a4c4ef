// SPDX-License-Identifier: MIT
// The local mailbox backend through the library API: the model's guarantees
// with real processes (fork), crashes at fault-injection points, and damaged
// files.
#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <set>

#include <fmt/format.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ipc/error.hpp"
#include "ipc/fault.hpp"
#include "ipc/mbox.hpp"
#include "process.hpp"

using namespace ipc;
using namespace std::chrono_literals;

namespace {

struct box_guard {
    mbox::location l;
    ~box_guard() {
        for (auto suffix : {"", ".dead"}) {
            auto d = l;
            d.name += suffix;
            try {
                mbox::local::remove(d);
            } catch (...) {
            }
        }
    }
};

mbox::location fresh(const std::string& stem, const std::string& dir = "") {
    return mbox::location{"/" + testing::unique_name(stem), "", dir};
}

std::unique_ptr<mbox::mailbox> make(const mbox::location& l, std::uint64_t max_msgs = 4096,
                                    mbox::overflow_policy ov = mbox::overflow_policy::block) {
    mbox::create_options c;
    c.lim.max_msgs = max_msgs;
    c.lim.max_bytes = 1 << 20;
    c.lim.max_msg_size = 4096;
    c.overflow = ov;
    c.exclusive = true;
    REQUIRE(mbox::create(l, c));
    return mbox::open(l);
}

mbox::recv_options in_group(const std::string& g, std::chrono::milliseconds timeout = 0ms) {
    mbox::recv_options ro;
    ro.group.name = g;
    ro.until = deadline::after(timeout);
    ro.wait = sync::wait_mode::block;
    return ro;
}

std::vector<mbox::message> take(mbox::mailbox& b, mbox::recv_options ro, std::size_t n,
                                std::chrono::milliseconds timeout = 0ms) {
    std::vector<mbox::message> out;
    ro.max_batch = n;
    while (out.size() < n) {
        ro.until = deadline::after(timeout);
        if (b.recv(ro, [&](mbox::message& m) { out.push_back(std::move(m)); }) == 0) break;
    }
    return out;
}

void send(mbox::mailbox& b, const std::string& data, const std::string& as = "", const std::string& topic = "",
          const std::string& to = "") {
    mbox::send_options so;
    so.as = as;
    mbox::outgoing o{data, topic, to};
    auto r = b.send(std::span(&o, 1), so);
    REQUIRE(r.seqs.size() == 1);
}

// Runs fn in a child process; its exit status is 0 when fn returns, 1 when it throws.
template <class F>
pid_t spawn(F fn) {
    pid_t p = ::fork();
    if (p == 0) {
        int rc = 0;
        try {
            fn();
        } catch (const std::exception& e) {
            ::dprintf(2, "child: %s\n", e.what());
            rc = 1;
        }
        ::_exit(rc);
    }
    REQUIRE(p > 0);
    return p;
}

int reap(pid_t p) {
    int st = 0;
    REQUIRE(::waitpid(p, &st, 0) == p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

} // namespace

TEST_CASE("mbox local: seqs from 1, sender identity, topic, a copy per group", "[mbox][local]") {
    auto l = fresh("mbox-basic");
    box_guard g{l};
    auto b = make(l);
    take(*b, in_group("a"), 1);  // groups made before the messages
    take(*b, in_group("b"), 1);
    send(*b, "one", "alice", "news");
    send(*b, "two", "bob");
    for (auto grp : {"a", "b"}) {
        auto got = take(*b, in_group(grp), 5);
        REQUIRE(got.size() == 2);
        CHECK(got[0].seq == 1);
        CHECK(got[0].data == "one");
        CHECK(got[0].sender.name == "alice");
        CHECK(got[0].sender.pid == ::getpid());
        CHECK(got[0].sender.uid == ::getuid());
        CHECK(got[0].topic == "news");
        CHECK(got[1].seq == 2);
        CHECK(got[1].sender.name == "bob");
        CHECK(got[0].timestamp_ns > 0);
        CHECK(got[0].skipped.empty());
    }
    auto st = b->stat();
    CHECK(st.msgs == 0);  // every group took both: freed
    CHECK(st.next_seq == 3);
    CHECK(st.groups.size() == 2);
}

TEST_CASE("mbox local: messages wait for the first group - a new group starts at the oldest retained or, asked, after the newest",
          "[mbox][local]") {
    auto l = fresh("mbox-start");
    box_guard g{l};
    auto b = make(l);
    send(*b, "early");
    auto st = b->stat();
    CHECK(st.msgs == 1);
    auto ro = in_group("late");
    ro.group.new_only = true;
    CHECK(take(*b, ro, 1).empty());
    auto got = take(*b, in_group("first"), 1);
    REQUIRE(got.size() == 1);
    CHECK(got[0].data == "early");
}

TEST_CASE("mbox local: concurrent sender and receiver processes: one order, every message once per group",
          "[mbox][local][processes]") {
    auto l = fresh("mbox-conc");
    box_guard g{l};
    auto b = make(l, 64);  // small: senders block on a full mailbox too
    testing::temp_dir tmp;
    constexpr int senders = 4, per_sender = 400, receivers_per_group = 2;
    const std::vector<std::string> groups{"ga", "gb"};
    for (const auto& grp : groups) take(*b, in_group(grp), 1);
    std::vector<pid_t> recv_pids;
    for (const auto& grp : groups)
        for (int r = 0; r < receivers_per_group; ++r)
            recv_pids.push_back(spawn([&, grp, r] {
                auto box = mbox::open(l);
                std::ofstream out(tmp / fmt::format("{}-{}", grp, r));
                auto ro = in_group(grp, 60000ms);
                ro.max_batch = 8;
                ro.as = fmt::format("r{}", r);
                for (bool stop = false; !stop;) {
                    ro.until = deadline::after(60s);
                    if (box->recv(ro, [&](mbox::message& m) {
                            if (m.data == "STOP") stop = true;
                            out << m.seq << ' ' << m.sender.name << ' ' << m.data << '\n';
                        }) == 0)
                        throw std::runtime_error("receiver timed out");
                }
            }));
    std::vector<pid_t> send_pids;
    for (int s = 0; s < senders; ++s)
        send_pids.push_back(spawn([&, s] {
            auto box = mbox::open(l);
            mbox::send_options so;
            so.as = fmt::format("s{}", s);
            for (int k = 0; k < per_sender; ++k) {
                mbox::outgoing o{std::to_string(k), "", ""};
                if (box->send(std::span(&o, 1), so).timed_out) throw std::runtime_error("send timed out");
            }
        }));
    for (auto p : send_pids) CHECK(reap(p) == 0);
    // A STOP addressed to each receiver (in every group).
    for (int r = 0; r < receivers_per_group; ++r) send(*b, "STOP", "parent", "", fmt::format("r{}", r));
    for (auto p : recv_pids) CHECK(reap(p) == 0);

    std::map<std::string, std::map<std::uint64_t, std::string>> by_group;  // seq -> "sender data"
    for (const auto& grp : groups) {
        for (int r = 0; r < receivers_per_group; ++r) {
            std::ifstream in(tmp / fmt::format("{}-{}", grp, r));
            std::uint64_t seq, last = 0;
            std::string who, data;
            while (in >> seq >> who >> data) {
                CHECK(seq > last);  // each receiver sees increasing seqs
                last = seq;
                CHECK(by_group[grp].emplace(seq, who + " " + data).second);  // never twice in a group
            }
        }
    }
    const std::size_t total = senders * per_sender + receivers_per_group;
    for (const auto& grp : groups) {
        REQUIRE(by_group[grp].size() == total);
        CHECK(by_group[grp].begin()->first == 1);
        CHECK(by_group[grp].rbegin()->first == total);  // gap-free
    }
    CHECK(by_group["ga"] == by_group["gb"]);  // the same order in every group
    std::map<std::string, int> next;  // per-sender order
    for (const auto& [seq, text] : by_group["ga"]) {
        auto sp = text.find(' ');
        std::string who = text.substr(0, sp), data = text.substr(sp + 1);
        if (who == "parent") continue;
        CHECK(std::stoi(data) == next[who]++);
    }
    CHECK(b->stat().msgs == 0);
}

TEST_CASE("mbox local: topic and sender subscriptions - skipped seqs are reported", "[mbox][local]") {
    auto l = fresh("mbox-topic");
    box_guard g{l};
    auto b = make(l);
    auto sports = in_group("sports");
    sports.group.topic = "sport.*";
    auto bobs = in_group("bobs");
    bobs.group.from = "bob";
    auto anon = in_group("");
    anon.group.topic = "weather";
    take(*b, sports, 1);
    take(*b, bobs, 1);
    take(*b, anon, 1);
    send(*b, "goal", "alice", "sport.football");  // 1
    send(*b, "rain", "bob", "weather");           // 2
    send(*b, "news", "alice", "politics");        // 3
    send(*b, "set", "bob", "sport.tennis");       // 4
    auto s = take(*b, sports, 5);
    REQUIRE(s.size() == 2);
    CHECK(s[0].seq == 1);
    CHECK(s[1].seq == 4);
    REQUIRE(s[1].skipped.size() == 1);
    CHECK(s[1].skipped[0].first == 2);
    CHECK(s[1].skipped[0].last == 3);
    CHECK(s[1].skipped[0].reason == "filtered");
    auto f = take(*b, bobs, 5);
    REQUIRE(f.size() == 2);
    CHECK(f[0].seq == 2);
    REQUIRE(f[0].skipped.size() == 1);
    CHECK(f[0].skipped[0].first == 1);
    CHECK(f[1].seq == 4);
    CHECK(f[1].skipped[0].first == 3);
    // a group's subscription is fixed by the receiver that made it
    auto wrong = in_group("sports");
    wrong.group.topic = "other";
    CHECK_THROWS_MATCHES(take(*b, wrong, 1), error,
                         Catch::Predicate<error>([](const error& e) { return e.code() == exit_code::usage; }));
    // without a name, receivers with the same filter share a group named after it
    auto w = take(*b, anon, 5);
    REQUIRE(w.size() == 1);
    CHECK(w[0].seq == 2);
    bool found = false;
    for (const auto& gs : b->stat().groups) found = found || (gs.name == "topic=weather" && gs.filtered == 3);
    CHECK(found);
}

TEST_CASE("mbox local: a message sent --to a name is held for that receiver", "[mbox][local]") {
    auto l = fresh("mbox-to");
    box_guard g{l};
    auto b = make(l);
    take(*b, in_group("w"), 1);
    send(*b, "for bob", "", "", "bob");  // 1
    send(*b, "for all");                 // 2
    auto alice = in_group("w");
    alice.as = "alice";
    auto a = take(*b, alice, 5);
    REQUIRE(a.size() == 1);
    CHECK(a[0].seq == 2);
    REQUIRE(a[0].skipped.size() == 1);
    CHECK(a[0].skipped[0].reason == "addressed");
    auto st = b->stat();
    CHECK(st.groups[0].held == 1);
    CHECK(st.msgs == 2);  // kept for bob (and what follows it: a log frees from its oldest end)
    auto bob = in_group("w");
    bob.as = "bob";
    auto bb = take(*b, bob, 5);
    REQUIRE(bb.size() == 1);
    CHECK(bb[0].seq == 1);
    CHECK(bb[0].to == "bob");
    CHECK(b->stat().msgs == 0);
}

TEST_CASE("mbox local: a full mailbox blocks until the deadline, or drops the oldest and says so", "[mbox][local]") {
    SECTION("block") {
        auto l = fresh("mbox-full");
        box_guard g{l};
        auto b = make(l, 2);
        take(*b, in_group("g"), 1);
        std::vector<mbox::outgoing> three(3, mbox::outgoing{"x", "", ""});
        mbox::send_options so;
        so.until = deadline::after(50ms);
        auto r = b->send(three, so);
        CHECK(r.seqs.size() == 2);
        CHECK(r.timed_out);
        CHECK(b->stat().msgs == 2);
        // a receiver frees room for a blocked sender in another process
        pid_t p = spawn([&] {
            auto box = mbox::open(l);
            mbox::send_options s2;
            s2.until = deadline::after(30s);
            mbox::outgoing o{"late", "", ""};
            if (box->send(std::span(&o, 1), s2).timed_out) throw std::runtime_error("timed out");
        });
        CHECK(testing::eventually([&] { return b->stat().senders_waiting == 1; }));
        auto got = take(*b, in_group("g"), 3, 10000ms);
        CHECK(reap(p) == 0);
        REQUIRE(got.size() == 3);
        CHECK(got[1].seq == 2);
        CHECK(got[2].data == "late");
        CHECK(got[2].seq == 3);
    }
    SECTION("drop-oldest") {
        auto l = fresh("mbox-drop");
        box_guard g{l};
        auto b = make(l, 2, mbox::overflow_policy::drop_oldest);
        take(*b, in_group("g"), 1);
        for (auto d : {"1", "2", "3", "4"}) send(*b, d);
        auto st = b->stat();
        CHECK(st.dropped == 2);
        CHECK(st.groups[0].dropped == 2);
        auto got = take(*b, in_group("g"), 5);
        REQUIRE(got.size() == 2);
        CHECK(got[0].seq == 3);
        REQUIRE(got[0].skipped.size() == 1);
        CHECK(got[0].skipped[0].first == 1);
        CHECK(got[0].skipped[0].last == 2);
        CHECK(got[0].skipped[0].reason == "dropped");
    }
}

TEST_CASE("mbox local: rendezvous: send returns once the message is taken - not taken in time, it is withdrawn",
          "[mbox][local][processes]") {
    auto l = fresh("mbox-rdv");
    box_guard g{l};
    auto b = make(l, 0);
    mbox::send_options so;
    so.until = deadline::after(50ms);
    mbox::outgoing o{"nobody", "", ""};
    auto r = b->send(std::span(&o, 1), so);
    CHECK(r.timed_out);
    CHECK(r.seqs.empty());
    CHECK(b->stat().withdrawn == 1);
    pid_t p = spawn([&] {
        auto box = mbox::open(l);
        auto got = take(*box, in_group("g"), 1, 30000ms);
        if (got.size() != 1 || got[0].data != "hello" || got[0].skipped.size() != 1 ||
            got[0].skipped[0].reason != "withdrawn")
            throw std::runtime_error("wrong message");
    });
    so.until = deadline::after(30s);
    mbox::outgoing h{"hello", "", ""};
    auto r2 = b->send(std::span(&h, 1), so);
    CHECK_FALSE(r2.timed_out);
    REQUIRE(r2.seqs.size() == 1);
    CHECK(r2.seqs[0] == 2);
    CHECK(reap(p) == 0);
}

TEST_CASE("mbox local: --ack: a killed receiver's message is delivered again - leases, release, dead letters",
          "[mbox][local][processes]") {
    auto l = fresh("mbox-ack");
    box_guard g{l};
    auto b = make(l);
    auto worker = in_group("w");
    worker.ack = true;
    take(*b, worker, 1);
    send(*b, "job");
    SECTION("the holder dies") {
        pid_t p = spawn([&] {
            auto box = mbox::open(l);
            auto ro = worker;
            ro.holder_alive = true;
            auto got = take(*box, ro, 1);
            if (got.size() != 1) throw std::runtime_error("no job");
            ::raise(SIGKILL);
        });
        CHECK(reap(p) == 128 + SIGKILL);
        CHECK(b->stat().groups[0].pending == 1);
        auto again = take(*b, worker, 1, 20000ms);
        REQUIRE(again.size() == 1);
        CHECK(again[0].seq == 1);
        CHECK(again[0].deliveries == 2);
        CHECK(b->ack("w", std::vector<std::uint64_t>{1}) == 1);
        auto st = b->stat();
        CHECK(st.groups[0].pending == 0);
        CHECK(st.groups[0].redelivered == 1);
        CHECK(st.msgs == 0);
    }
    SECTION("the lease ends") {
        auto ro = worker;
        ro.lease = 100ms;
        REQUIRE(take(*b, ro, 1).size() == 1);
        CHECK(take(*b, ro, 1).empty());  // leased: not for anyone else yet
        auto again = take(*b, ro, 1, 20000ms);
        REQUIRE(again.size() == 1);
        CHECK(again[0].deliveries == 2);
        b->release("w", 1);  // given back at once
        auto third = take(*b, ro, 1);
        REQUIRE(third.size() == 1);
        CHECK(third[0].deliveries == 3);
        CHECK(b->ack("w", std::vector<std::uint64_t>{1, 99}) == 1);
    }
    SECTION("too many deliveries: the dead-letter mailbox") {
        auto ro = worker;
        ro.lease = 1ms;
        ro.max_deliveries = 2;
        REQUIRE(take(*b, ro, 1).size() == 1);
        REQUIRE(take(*b, ro, 1, 20000ms).size() == 1);  // the second delivery
        ::usleep(5000);
        CHECK(take(*b, ro, 1, 50ms).empty());  // the third goes to the dead letters
        auto st = b->stat();
        CHECK(st.groups[0].dead_lettered == 1);
        CHECK(st.msgs == 0);
        auto dl = l;
        dl.name += ".dead";
        auto dead = mbox::open(dl);
        auto got = take(*dead, in_group("x"), 1);
        REQUIRE(got.size() == 1);
        CHECK(got[0].data == "job");
        CHECK(got[0].origin_seq == 1);
    }
}

TEST_CASE("mbox local: a process killed mid-operation never leaves a torn or lost message",
          "[mbox][local][crash]") {
    testing::temp_dir tmp;
    // Every fault point, at several passes: the child dies there; the
    // mailbox rolls the operation back and goes on.
    for (const char* point : {"mbox.txn.logged", "mbox.txn.set", "mbox.txn.commit", "mbox.send.mid_copy"}) {
        for (int n = 1; n <= 7; n += 2) {
            INFO(point << ":" << n);
            auto l = fresh("mbox-crash", tmp.path().string());
            box_guard g{l};
            auto b = make(l, 8);
            take(*b, in_group("g"), 1);
            send(*b, "before");
            std::string spec = fmt::format("{}:{}", point, n);
            pid_t p = spawn([&] {
                fault::arm(spec);
                auto box = mbox::open(l);
                for (int i = 0; i < 3; ++i) send(*box, "child" + std::to_string(i));
                take(*box, in_group("g"), 2);
            });
            int rc = reap(p);
            CHECK((rc == 0 || rc == 128 + SIGKILL));
            auto box = mbox::open(l);
            auto st = box->stat();
            CHECK(st.next_seq - st.first_seq == st.msgs);
            send(*box, "after");
            auto got = take(*box, in_group("g"), 10);
            REQUIRE_FALSE(got.empty());
            // every message whole, seqs increasing, and "after" last
            for (std::size_t i = 1; i < got.size(); ++i) CHECK(got[i].seq > got[i - 1].seq);
            for (const auto& m : got) CHECK((m.data == "before" || m.data == "after" || m.data.starts_with("child")));
            CHECK(got.back().data == "after");
            if (rc != 0) CHECK(st.recoveries >= 1);  // it died holding the lock
        }
    }
}

TEST_CASE("mbox local: a damaged file is refused with status 65, never a crash", "[mbox][local]") {
    testing::temp_dir tmp;
    auto l = fresh("mbox-bad", tmp.path().string());
    box_guard g{l};
    {
        auto b = make(l);
        take(*b, in_group("g"), 1);
        send(*b, "payload-one");
    }
    std::string path = mbox::local::path_of(l);
    auto is65 = Catch::Predicate<error>([](const error& e) { return e.code() == exit_code::data; });
    SECTION("a payload byte") {
        std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
        std::string all((std::istreambuf_iterator<char>(f)), {});
        auto at = all.find("payload-one");
        REQUIRE(at != std::string::npos);
        f.seekp(static_cast<std::streamoff>(at));
        f.put('X');
        f.close();
        auto b = mbox::open(l);
        CHECK_THROWS_MATCHES(take(*b, in_group("g"), 1), error, is65);
    }
    SECTION("the header") {
        int fd = ::open(path.c_str(), O_WRONLY);
        REQUIRE(fd >= 0);
        std::uint64_t junk = 0xffffffffffffull;
        REQUIRE(::pwrite(fd, &junk, sizeof junk, 16) == sizeof junk);  // max_msgs
        ::close(fd);
        CHECK_THROWS_MATCHES(mbox::open(l), error, is65);
    }
    SECTION("not a mailbox at all") {
        std::ofstream(path, std::ios::trunc) << "hello";
        CHECK_THROWS_MATCHES(mbox::open(l), error, is65);
    }
}

TEST_CASE("mbox local: a durable mailbox in a directory is reopened intact after its processes are killed",
          "[mbox][local][processes]") {
    testing::temp_dir tmp;
    auto l = fresh("mbox-durable", tmp.path().string());
    box_guard g{l};
    mbox::create_options c;
    c.sync = mbox::sync_policy::always;
    REQUIRE(mbox::create(l, c));
    pid_t p = spawn([&] {
        auto box = mbox::open(l);
        for (int i = 0; i < 5; ++i) send(*box, "m" + std::to_string(i));
        ::raise(SIGKILL);
    });
    CHECK(reap(p) == 128 + SIGKILL);
    auto b = mbox::open(l);
    auto got = take(*b, in_group("g"), 10);
    REQUIRE(got.size() == 5);
    CHECK(got[4].data == "m4");
    CHECK(b->stat().sync == mbox::sync_policy::always);
}
