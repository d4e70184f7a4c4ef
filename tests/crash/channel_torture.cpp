// SPDX-License-Identifier: MIT
// Crash torture for the shared-memory channel: senders and receivers in
// separate processes are killed at random moments (SIGKILL after a random
// delay) or at fault-injection points, all drawn from one printed seed.
// Afterwards every message is accounted for:
//   torn       received with a bad checksum              must be 0
//   duplicated received twice                             must be 0
//   seq        sequence numbers: none seen twice; none missing beyond what
//              killed receivers took
//   lost       committed (logged by its sender after send() returned) and
//              never received                             at most what killed receivers
//                                                         had taken: one each with receive(),
//                                                         up to its burst with receive_many()
// Senders use send() or send_many() (bursts of 2..8), receivers receive_into()
// or receive_many() (bursts of 2..4), also drawn from the seed.
// and nothing hangs (every wait has a deadline; CTest has a TIMEOUT).
//
// Usage: channel_torture [--rounds N] [--seed S]   (env IPC_TORTURE_SEED too)
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <csignal>
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ipc/codec.hpp"
#include "ipc/fault.hpp"
#include "ipc/ring.hpp"

using namespace ipc;
using namespace std::chrono_literals;

namespace {

const char* const send_points[] = {"ring.send.padded", "ring.send.mid_copy", "ring.send.before_commit",
                                   "ring.send.committed", "ring.send.after_commit"};
const char* const recv_points[] = {"ring.recv.before_take", "ring.recv.after_take"};

struct shared_state {
    std::atomic<int> stop{0};
};

std::string message(int sender, int n, std::size_t size) {
    std::string body = std::to_string(sender) + ":" + std::to_string(n) + ":";
    while (body.size() < size) body += static_cast<char>('a' + (sender * 13 + n + body.size()) % 26);
    auto crc = codec::crc32c(body);
    body.append(reinterpret_cast<const char*>(&crc), 4);
    return body;
}

bool parse(const std::string& m, int& sender, int& n) {
    if (m.size() < 4) return false;
    std::uint32_t crc;
    std::memcpy(&crc, m.data() + m.size() - 4, 4);
    std::string_view body(m.data(), m.size() - 4);
    if (codec::crc32c(body) != crc) return false;
    std::sscanf(std::string(body).c_str(), "%d:%d:", &sender, &n);
    return true;
}

void write_all(int fd, const std::string& s) {
    std::size_t done = 0;
    while (done < s.size()) {
        ssize_t w = ::write(fd, s.data() + done, s.size() - done);
        if (w <= 0) return;
        done += static_cast<std::size_t>(w);
    }
}

struct round_result {
    std::size_t torn = 0, duplicated = 0, lost = 0, committed = 0, received = 0;
    std::size_t seq_duplicated = 0, seq_gaps = 0;  // sequence numbers seen twice; never seen
    int killed_receivers = 0, killed_senders = 0;
    std::size_t loss_allowed = 0;  // what killed receivers may have held
    std::uint64_t sender_recoveries = 0, receiver_recoveries = 0;
};

round_result run_round(std::mt19937_64& rng, int round) {
    const int senders = 3, receivers = 2, per_sender = 300;
    std::uint64_t capacity = 4096 << (rng() % 3);
    std::size_t size = ring::region_size(capacity);
    int fd = ::memfd_create("torture", MFD_CLOEXEC);
    if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(size)) < 0) std::exit(70);
    void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    std::span<std::byte> region(static_cast<std::byte*>(base), size);
    ring::channel::format(region, capacity, ring::largest_message(capacity));
    void* st_mem = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    auto* state = new (st_mem) shared_state;

    struct proc {
        pid_t pid;
        int log;
        bool sender;
        std::size_t burst;  // 1: one message per call
    };
    std::vector<proc> procs;
    auto spawn = [&](bool is_sender, int index) {
        int p[2];
        if (::pipe(p) < 0) std::exit(70);
        // The fate of this process, drawn in the parent so the seed decides it.
        int fate = static_cast<int>(rng() % 4);  // 0: lives, 1: fault point, 2: killed at a random time
        const char* point = is_sender ? send_points[rng() % 5] : recv_points[rng() % 2];
        long nth = 1 + static_cast<long>(rng() % (is_sender ? per_sender : 100));
        std::uint64_t max_msg = ring::largest_message(capacity);
        std::uint64_t seed = rng();
        std::size_t burst = rng() % 2 ? 1 : 2 + rng() % (is_sender ? 7 : 3);
        pid_t pid = ::fork();
        if (pid == 0) {
            ::close(p[0]);
            if (fate == 1) fault::arm(std::string(point) + ":" + std::to_string(nth));
            ring::channel ch(region);
            std::mt19937_64 local(seed);
            if (is_sender) {
                for (int n = 0; n < per_sender;) {
                    auto mode = local() % 2 ? sync::wait_mode::adaptive : sync::wait_mode::block;
                    std::vector<std::string> ms;
                    for (std::size_t k = 0; k < burst && n + static_cast<int>(k) < per_sender; ++k)
                        ms.push_back(message(index, n + static_cast<int>(k),
                                             8 + local() % std::min<std::uint64_t>(max_msg - 4, 600)));
                    std::size_t sent = 0;
                    if (burst == 1) sent = ch.send(ms[0], deadline::after(2s), mode) ? 1 : 0;
                    else {
                        std::vector<std::string_view> views(ms.begin(), ms.end());
                        sent = ch.send_many(views, deadline::after(2s), mode);
                    }
                    // Logged after the call returned: the messages are committed.
                    std::string log;
                    for (std::size_t k = 0; k < sent; ++k) log += std::to_string(index) + " " + std::to_string(n + static_cast<int>(k)) + "\n";
                    write_all(p[1], log);
                    if (sent < ms.size()) ::_exit(3);
                    n += static_cast<int>(sent);
                }
            } else {
                std::string buf;
                std::vector<std::pair<std::uint64_t, std::string>> got;
                // Every other receiver spins: the spinning receiver's path
                // (a record taken before its sender moves tail) is killed too.
                const auto rmode = local() % 2 ? sync::wait_mode::spin : sync::wait_mode::adaptive;
                auto record = [&](std::uint64_t seq, const std::string& m) {
                    int s = -1, n = -1;
                    bool ok = parse(m, s, n);
                    return std::to_string(s) + " " + std::to_string(n) + " " + (ok ? "1" : "0") + " " +
                           std::to_string(seq) + "\n";
                };
                while (true) {
                    std::size_t k = 0;
                    std::uint64_t one = 0;
                    if (burst == 1) {
                        auto seq = ch.receive_into(buf, deadline::after(20ms), rmode);
                        k = seq ? 1 : 0;
                        one = seq.value_or(0);
                    } else {
                        got.clear();
                        k = ch.receive_many(
                            burst, [&](std::uint64_t seq, std::string_view d) { got.emplace_back(seq, std::string(d)); },
                            deadline::after(20ms), rmode);
                    }
                    if (!k) {
                        if (state->stop.load()) break;
                        continue;
                    }
                    std::string log;
                    if (burst == 1) log = record(one, buf);
                    else
                        for (auto& [seq, m] : got) log += record(seq, m);
                    write_all(p[1], log);
                }
            }
            ::_exit(0);
        }
        ::close(p[1]);
        procs.push_back({pid, p[0], is_sender, burst});
        return std::pair{pid, fate == 2};
    };
    std::vector<std::pair<pid_t, std::chrono::microseconds>> to_kill;
    for (int s = 0; s < senders; ++s) {
        auto [pid, kill_it] = spawn(true, s);
        if (kill_it) to_kill.emplace_back(pid, std::chrono::microseconds(rng() % 20000));
    }
    for (int r = 0; r < receivers; ++r) {
        auto [pid, kill_it] = spawn(false, r);
        if (kill_it) to_kill.emplace_back(pid, std::chrono::microseconds(rng() % 20000));
    }
    auto start = std::chrono::steady_clock::now();
    for (auto& [pid, when] : to_kill) {
        auto t = start + when;
        while (std::chrono::steady_clock::now() < t) ::usleep(100);
        ::kill(pid, SIGKILL);
    }
    // Logs are read concurrently with the processes, so no pipe fills up.
    std::map<int, std::string> logs;
    std::vector<pollfd> fds;
    for (auto& p : procs) fds.push_back({p.log, POLLIN, 0});
    std::size_t open = fds.size();
    bool senders_done = false;
    round_result res;
    auto reap_senders = [&] {
        for (auto& p : procs) {
            if (!p.sender || p.pid <= 0) continue;
            int st = 0;
            if (::waitpid(p.pid, &st, WNOHANG) == p.pid) {
                if (WIFSIGNALED(st)) ++res.killed_senders;
                p.pid = -p.pid;
            }
        }
        for (auto& p : procs)
            if (p.sender && p.pid > 0) return false;
        return true;
    };
    while (open > 0) {
        ::poll(fds.data(), fds.size(), 20);
        for (std::size_t i = 0; i < fds.size(); ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
            char buf[65536];
            ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
            if (n > 0) logs[static_cast<int>(i)].append(buf, static_cast<std::size_t>(n));
            else {
                ::close(fds[i].fd);
                fds[i].fd = -1;
                --open;
            }
        }
        if (!senders_done && reap_senders()) {
            senders_done = true;
            state->stop.store(1);
        }
    }
    for (auto& p : procs)
        if (!p.sender) {
            int st = 0;
            ::waitpid(p.pid, &st, 0);
            if (WIFSIGNALED(st)) {
                ++res.killed_receivers;
                res.loss_allowed += p.burst;
            }
        }
    // What the killed receivers left, the parent takes.
    ring::channel ch(region);
    std::string leftover;
    std::string buf;
    while (auto seq = ch.receive_into(buf, deadline::after(10ms), sync::wait_mode::block)) {
        int s = -1, n = -1;
        bool ok = parse(buf, s, n);
        leftover += std::to_string(s) + " " + std::to_string(n) + " " + (ok ? "1" : "0") + " " +
                    std::to_string(*seq) + "\n";
    }
    std::uint64_t sent_before_check = ch.stat().sent;
    // The channel still works for a new sender and receiver.
    if (!ch.send("after", deadline::after(5s), sync::wait_mode::block) ||
        ch.receive(deadline::after(5s), sync::wait_mode::block)->data != "after") {
        std::fprintf(stderr, "round %d: the channel no longer works\n", round);
        std::exit(1);
    }
    auto stats = ch.stat();
    res.sender_recoveries = stats.sender_recoveries;
    res.receiver_recoveries = stats.receiver_recoveries;

    std::set<std::pair<int, int>> committed, received;
    std::set<std::uint64_t> seqs;
    for (std::size_t i = 0; i < procs.size(); ++i) {
        std::istringstream in(logs[static_cast<int>(i)]);
        int s, n;
        if (procs[i].sender) {
            while (in >> s >> n) committed.insert({s, n});
        }
    }
    auto account = [&](const std::string& log) {
        std::istringstream in(log);
        int s, n, ok;
        std::uint64_t seq;
        while (in >> s >> n >> ok >> seq) {
            if (!seqs.insert(seq).second) ++res.seq_duplicated;
            ++res.received;
            if (!ok) ++res.torn;
            else if (!received.insert({s, n}).second) ++res.duplicated;
        }
    };
    for (std::size_t i = 0; i < procs.size(); ++i)
        if (!procs[i].sender) account(logs[static_cast<int>(i)]);
    account(leftover);
    res.committed = committed.size();
    // Every number from 1 to the count was given to a committed message: one
    // never seen was taken by a receiver killed before it logged it.
    for (std::uint64_t q = 1; q <= sent_before_check; ++q)
        if (!seqs.count(q)) ++res.seq_gaps;
    for (const auto& c : committed)
        if (!received.count(c)) ++res.lost;
    ::munmap(base, size);
    ::munmap(st_mem, 4096);
    ::close(fd);
    return res;
}

} // namespace

int main(int argc, char** argv) {
    int rounds = 20;
    std::uint64_t seed = std::random_device{}();
    if (const char* env = std::getenv("IPC_TORTURE_SEED")) seed = std::strtoull(env, nullptr, 10);
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string a = argv[i];
        if (a == "--rounds") rounds = std::atoi(argv[i + 1]);
        else if (a == "--seed") seed = std::strtoull(argv[i + 1], nullptr, 10);
    }
    std::printf("channel_torture: seed=%llu rounds=%d (rerun with --seed %llu)\n",
                static_cast<unsigned long long>(seed), rounds, static_cast<unsigned long long>(seed));
    std::fflush(stdout);
    std::mt19937_64 rng(seed);
    round_result total;
    int failed = 0;
    for (int r = 0; r < rounds; ++r) {
        auto res = run_round(rng, r);
        bool ok = res.torn == 0 && res.duplicated == 0 && res.lost <= res.loss_allowed && res.seq_duplicated == 0 &&
                  res.seq_gaps <= res.loss_allowed;
        if (!ok) {
            ++failed;
            std::printf("round %d FAILED: torn=%zu duplicated=%zu lost=%zu seq_duplicated=%zu seq_gaps=%zu (killed "
                        "receivers %d, may lose %zu)\n",
                        r, res.torn, res.duplicated, res.lost, res.seq_duplicated, res.seq_gaps, res.killed_receivers,
                        res.loss_allowed);
        }
        total.torn += res.torn;
        total.duplicated += res.duplicated;
        total.lost += res.lost;
        total.seq_gaps += res.seq_gaps;
        total.committed += res.committed;
        total.received += res.received;
        total.killed_senders += res.killed_senders;
        total.killed_receivers += res.killed_receivers;
        total.sender_recoveries += res.sender_recoveries;
        total.receiver_recoveries += res.receiver_recoveries;
    }
    std::printf("committed=%zu received=%zu torn=%zu duplicated=%zu lost=%zu seq_gaps=%zu killed_senders=%d "
                "killed_receivers=%d sender_recoveries=%llu receiver_recoveries=%llu\n",
                total.committed, total.received, total.torn, total.duplicated, total.lost, total.seq_gaps,
                total.killed_senders,
                total.killed_receivers, static_cast<unsigned long long>(total.sender_recoveries),
                static_cast<unsigned long long>(total.receiver_recoveries));
    std::printf("%s\n", failed ? "FAILED" : "ok");
    return failed ? 1 : 0;
}
