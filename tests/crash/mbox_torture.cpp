// SPDX-License-Identifier: MIT
// Crash torture for the local mailbox: sender and receiver processes are
// killed at random moments (SIGKILL after a random delay) or at
// fault-injection points inside the mailbox's transactions, all drawn from
// one printed seed. Two groups read the same mailbox: "once" takes messages
// (at most once), "sure" leases them with --ack semantics (at least once).
// Afterwards, every message is accounted for:
//   torn       a payload that is not what its sender wrote    must be 0
//   order      a seq standing for different messages in the two groups, or a
//              sender's messages out of order                   must be 0
//   once       a seq delivered twice in group "once"           must be 0;
//              committed messages never delivered there: at most what killed
//              receivers had taken (their batch)
//   sure       committed messages never delivered in group "sure": must be 0
//   state      after the survivors drain it, the mailbox is empty, nothing
//              pending, and it still takes messages
// and nothing hangs (every wait has a deadline; CTest has a TIMEOUT).
//
// Usage: mbox_torture [--rounds N] [--seed S]   (env IPC_TORTURE_SEED too)
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include "ipc/error.hpp"
#include "ipc/fault.hpp"
#include "ipc/mbox.hpp"

using namespace ipc;
using namespace std::chrono_literals;

namespace {

const char* const points[] = {"mbox.txn.logged", "mbox.txn.set", "mbox.txn.commit", "mbox.send.mid_copy",
                              "mbox.recv.taken"};
constexpr int senders = 3, per_sender = 150, receivers_per_group = 2, batch = 4;

std::string payload(int sender, int k) {
    std::string p = fmt::format("{}:{}:", sender, k);
    for (int i = 0; i < (k * 7 + sender) % 40; ++i) p += static_cast<char>('a' + (i + k) % 26);
    return p;
}

void log_line(int fd, const std::string& line) {
    std::string l = line + "\n";
    if (::write(fd, l.data(), l.size()) != static_cast<ssize_t>(l.size())) ::_exit(3);
}

struct fate {
    enum { normal, killed, fault } how = normal;
    std::chrono::microseconds delay{0};
    std::string spec;
};

fate draw(std::mt19937_64& rng) {
    fate f;
    auto r = rng() % 10;
    if (r < 3) return f;
    if (r < 6) {
        f.how = fate::killed;
        f.delay = std::chrono::microseconds(rng() % 30000);
        return f;
    }
    f.how = fate::fault;
    f.spec = fmt::format("{}:{}", points[rng() % std::size(points)], 1 + rng() % 300);
    return f;
}

int round_of(std::mt19937_64& rng, int round, const std::filesystem::path& dir) {
    mbox::location l{"/torture", "", dir.string()};
    mbox::create_options c;
    c.lim.max_msgs = 16;
    c.lim.max_bytes = 64 << 10;
    c.lim.max_msg_size = 1024;
    mbox::create(l, c);
    auto box = mbox::open(l);
    auto recv_opts = [](const std::string& g) {
        mbox::recv_options ro;
        ro.group.name = g;
        ro.ack = g == "sure";
        ro.holder_alive = true;
        ro.lease = 60s;
        ro.max_batch = batch;
        ro.wait = sync::wait_mode::block;
        return ro;
    };
    for (auto g : {"once", "sure"}) {
        auto ro = recv_opts(g);
        ro.until = deadline::after(0ns);
        box->recv(ro, [](mbox::message&) {});
    }

    struct proc {
        pid_t pid;
        fate f;
        bool receiver;
        std::string group;
    };
    std::vector<proc> procs;
    auto start = [&](fate f, auto body) {
        pid_t p = ::fork();
        if (p == 0) {
            if (f.how == fate::fault) fault::arm(f.spec);
            try {
                body();
            } catch (const std::exception& e) {
                std::fprintf(stderr, "child %d: %s\n", ::getpid(), e.what());
                ::_exit(2);
            }
            ::_exit(0);
        }
        return p;
    };
    for (int s = 0; s < senders; ++s) {
        fate f = draw(rng);
        pid_t p = start(f, [&, s] {
            auto b = mbox::open(l);
            int fd = ::open((dir / fmt::format("sent-{}", s)).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
            mbox::send_options so;
            so.as = fmt::format("s{}", s);
            for (int k = 0; k < per_sender; ++k) {
                mbox::outgoing o{payload(s, k), "", ""};
                // Receivers may all be dead or done: a mailbox that stays full
                // ends this sender (what it committed is still checked).
                so.until = deadline::after(1s);
                auto r = b->send(std::span(&o, 1), so);
                if (r.timed_out) return;
                log_line(fd, fmt::format("{} {}", k, r.seqs.at(0)));
            }
        });
        procs.push_back({p, f, false, ""});
    }
    for (auto g : {"once", "sure"})
        for (int r = 0; r < receivers_per_group; ++r) {
            fate f = draw(rng);
            std::string group = g;
            pid_t p = start(f, [&, group, r] {
                auto b = mbox::open(l);
                int fd = ::open((dir / fmt::format("got-{}-{}-{}", group, r, ::getpid())).c_str(),
                                O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
                auto ro = recv_opts(group);
                for (;;) {
                    ro.until = deadline::after(300ms);  // the senders are done, or dead
                    std::vector<std::uint64_t> seqs;
                    std::size_t n = b->recv(ro, [&](mbox::message& m) {
                        log_line(fd, fmt::format("{} {} {} {}", m.seq, m.sender.name, m.deliveries, m.data));
                        seqs.push_back(m.seq);
                    });
                    if (n == 0) return;
                    if (ro.ack) b->ack(group, seqs);
                }
            });
            procs.push_back({p, f, true, group});
        }
    // Kill the doomed at their moment.
    auto t0 = std::chrono::steady_clock::now();
    std::vector<std::pair<std::chrono::steady_clock::time_point, pid_t>> kills;
    for (const auto& p : procs)
        if (p.f.how == fate::killed) kills.push_back({t0 + p.f.delay, p.pid});
    std::sort(kills.begin(), kills.end());
    for (auto [when, pid] : kills) {
        std::this_thread::sleep_until(when);
        ::kill(pid, SIGKILL);
    }
    std::map<pid_t, int> status;
    int killed_once_receivers = 0;
    for (const auto& p : procs) {
        int st = 0;
        ::waitpid(p.pid, &st, 0);
        bool died = WIFSIGNALED(st);
        if (!died && WEXITSTATUS(st) != 0) {
            std::printf("round %d: pid %d exited with %d\n", round, p.pid, WEXITSTATUS(st));
            return 1;
        }
        if (died && p.receiver && p.group == "once") ++killed_once_receivers;
    }
    // The survivors' part: this process drains both groups.
    std::map<std::string, std::vector<std::string>> got;  // group -> lines
    for (auto g : {"once", "sure"}) {
        auto ro = recv_opts(g);
        ro.holder_alive = false;
        for (;;) {
            ro.until = deadline::after(500ms);
            std::vector<std::uint64_t> seqs;
            std::size_t n = box->recv(ro, [&](mbox::message& m) {
                got[g].push_back(fmt::format("{} {} {} {}", m.seq, m.sender.name, m.deliveries, m.data));
                seqs.push_back(m.seq);
            });
            if (n == 0) break;
            if (ro.ack) box->ack(g, seqs);
        }
    }
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        std::string n = e.path().filename().string();
        if (!n.starts_with("got-")) continue;
        std::string g = n.substr(4, 4);
        std::ifstream in(e.path());
        for (std::string line; std::getline(in, line);) got[g].push_back(line);
    }
    // committed: what senders logged after send() returned
    std::map<std::pair<int, int>, std::uint64_t> committed;  // (sender, k) -> seq
    for (int s = 0; s < senders; ++s) {
        std::ifstream in(dir / fmt::format("sent-{}", s));
        int k;
        std::uint64_t seq;
        while (in >> k >> seq) committed[{s, k}] = seq;
    }
    int torn = 0, order = 0, dup_once = 0;
    std::map<std::string, std::map<std::uint64_t, std::string>> by_seq;
    for (auto& [g, lines] : got) {
        for (const auto& line : lines) {
            std::uint64_t seq;
            char who[32];
            unsigned deliveries;
            int n = 0;
            if (std::sscanf(line.c_str(), "%lu %31s %u %n", &seq, who, &deliveries, &n) != 3) {
                ++torn;
                continue;
            }
            std::string data = line.substr(static_cast<std::size_t>(n));
            int s = -1, k = -1;
            if (std::sscanf(data.c_str(), "%d:%d:", &s, &k) != 2 || data != payload(s, k) ||
                std::string(who) != fmt::format("s{}", s)) {
                ++torn;
                continue;
            }
            auto [it, fresh] = by_seq[g].emplace(seq, data);
            if (!fresh) {
                if (it->second != data) ++order;
                if (g == "once") ++dup_once;
            }
            if (auto c = committed.find({s, k}); c != committed.end() && c->second != seq) ++order;
        }
    }
    for (const auto& [seq, data] : by_seq["once"])
        if (auto it = by_seq["sure"].find(seq); it != by_seq["sure"].end() && it->second != data) ++order;
    int lost_once = 0, lost_sure = 0;
    for (const auto& [sk, seq] : committed) {
        if (!by_seq["once"].count(seq)) ++lost_once;
        if (!by_seq["sure"].count(seq)) ++lost_sure;
    }
    // per-sender order: seq grows with k
    for (int s = 0; s < senders; ++s) {
        std::uint64_t last = 0;
        for (int k = 0; k < per_sender; ++k)
            if (auto c = committed.find({s, k}); c != committed.end()) {
                if (c->second <= last) ++order;
                last = c->second;
            }
    }
    auto st = box->stat();
    bool state_ok = st.msgs == 0;
    for (const auto& g : st.groups) state_ok = state_ok && g.pending == 0 && g.lag == 0;
    mbox::outgoing o{"after", "", ""};
    mbox::send_options so;
    so.until = deadline::after(5s);
    auto r = box->send(std::span(&o, 1), so);
    state_ok = state_ok && !r.timed_out && r.seqs.at(0) == st.next_seq;
    int allowed = killed_once_receivers * batch;
    std::printf("round %d: committed=%zu torn=%d order=%d dup_once=%d lost_once=%d (allowed %d) lost_sure=%d "
                "recoveries=%lu state=%s\n",
                round, committed.size(), torn, order, dup_once, lost_once, allowed, lost_sure,
                static_cast<unsigned long>(st.recoveries), state_ok ? "ok" : "BAD");
    bool ok = torn == 0 && order == 0 && dup_once == 0 && lost_once <= allowed && lost_sure == 0 && state_ok;
    return ok ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
    int rounds = 10;
    std::uint64_t seed = std::random_device{}();
    if (const char* env = std::getenv("IPC_TORTURE_SEED")) seed = std::strtoull(env, nullptr, 10);
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string a = argv[i];
        if (a == "--rounds") rounds = std::atoi(argv[i + 1]);
        else if (a == "--seed") seed = std::strtoull(argv[i + 1], nullptr, 10);
    }
    std::printf("mbox_torture: seed=%llu rounds=%d (rerun with --seed %llu)\n", static_cast<unsigned long long>(seed),
                rounds, static_cast<unsigned long long>(seed));
    std::fflush(stdout);
    std::mt19937_64 rng(seed);
    int failed = 0;
    for (int round = 1; round <= rounds; ++round) {
        char tmpl[] = "/tmp/ipc-mbox-torture-XXXXXX";
        if (!::mkdtemp(tmpl)) return 71;
        std::filesystem::path dir(tmpl);
        int rc = 1;
        try {
            rc = round_of(rng, round, dir);
        } catch (const std::exception& e) {
            std::printf("round %d: %s\n", round, e.what());
        }
        std::fflush(stdout);
        std::filesystem::remove_all(dir);
        if (rc != 0) ++failed;
    }
    std::printf("mbox_torture: %d of %d rounds failed (seed %llu)\n", failed, rounds,
                static_cast<unsigned long long>(seed));
    return failed ? 1 : 0;
}
