// SPDX-License-Identifier: MIT
// Probes for the shared-memory channel benchmark: the channel itself (through
// its C++ API) and the raw baselines it is held against, each between two
// processes. One probe per run; bench/shm-channel.sh alternates them.
//
//   bench_shm rt-channel spin|block|adaptive N   64-byte round trips: p50, p90, p99 (ns)
//   bench_shm rt-atomic N                        bare two-atomic spin ping-pong
//   bench_shm rt-futex N                         bare futex ping-pong
//   bench_shm rt-compare spin|block|adaptive N [BLOCKS]
//                                                the channel and its baseline (two-atomic
//                                                for spin, futex otherwise) alternating
//                                                in blocks within one pair of processes
//                                                (BENCH_MSG=SIZE: the message size, default 64)
//   bench_shm rt-pipe N | rt-socket N            64-byte round trips through the kernel
//   bench_shm stream-channel SIZE N              one-way messages/s (channel, adaptive, bursts)
//   bench_shm stream-channel-single SIZE N       the same, one send/receive call per message
//   bench_shm stream-spsc SIZE N                 bare single-producer single-consumer ring
//   bench_shm stream-pipe SIZE N | stream-socket SIZE N
//
// CPU placement: the parent runs on CPU A and the child on CPU B, from
// BENCH_CPUS="A,B" (default "0,1"; "same" puts both on CPU 0; "none" pins
// nothing). The placement obtained is printed with every result.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <linux/futex.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ipc/ring.hpp"

using namespace ipc;
using clk = std::chrono::steady_clock;

namespace {

int cpu_a = 0, cpu_b = 1;
bool pin = true;

void place(bool child) {
    if (!pin) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(child ? cpu_b : cpu_a, &set);
    sched_setaffinity(0, sizeof set, &set);
}

std::string placement() {
    if (!pin) return "none";
    return cpu_a == cpu_b ? "same CPU (" + std::to_string(cpu_a) + ")"
                          : "CPUs " + std::to_string(cpu_a) + "," + std::to_string(cpu_b);
}

void* shared(std::size_t n) {
    void* m = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) std::exit(71);
    std::memset(m, 0, n);
    return m;
}

void report_latency(const char* what, std::vector<std::int64_t>& ns) {
    std::sort(ns.begin(), ns.end());
    auto at = [&](double q) { return ns[std::min(ns.size() - 1, static_cast<std::size_t>(q * static_cast<double>(ns.size())))]; };
    std::printf("%s p50_ns=%lld p90_ns=%lld p99_ns=%lld min_ns=%lld placement=\"%s\"\n", what,
                static_cast<long long>(at(0.5)), static_cast<long long>(at(0.9)), static_cast<long long>(at(0.99)),
                static_cast<long long>(ns.front()), placement().c_str());
}

template <class Child, class Parent>
void two_processes(Child child, Parent parent) {
    pid_t pid = fork();
    if (pid == 0) {
        place(true);
        child();
        _exit(0);
    }
    place(false);
    parent();
    int st;
    waitpid(pid, &st, 0);
}

// ---------------------------------------------------------------- round trips

void rt_channel(sync::wait_mode mode, int n) {
    std::size_t sz = ring::region_size(65536);
    auto* a = static_cast<std::byte*>(shared(sz));
    auto* b = static_cast<std::byte*>(shared(sz));
    ring::channel::format({a, sz}, 65536, 4096);
    ring::channel::format({b, sz}, 65536, 4096);
    std::string msg(64, 'p');
    std::vector<std::int64_t> times;
    times.reserve(static_cast<std::size_t>(n));
    two_processes(
        [&] {
            ring::channel in({a, sz}), out({b, sz});
            std::string buf;
            for (int i = 0; i < n + 1000; ++i) {
                in.receive_into(buf, deadline::never(), mode);
                out.send(buf, deadline::never(), mode);
            }
        },
        [&] {
            ring::channel out({a, sz}), in({b, sz});
            std::string buf;
            for (int i = 0; i < n + 1000; ++i) {
                auto t0 = clk::now();
                out.send(msg, deadline::never(), mode);
                in.receive_into(buf, deadline::never(), mode);
                if (i >= 1000) times.push_back((clk::now() - t0).count());  // after warm-up
            }
        });
    report_latency("rt-channel", times);
}

void rt_atomic(int n) {
    auto* flag = new (shared(4096)) std::atomic<std::uint32_t>(0);
    std::vector<std::int64_t> times;
    two_processes(
        [&] {
            for (std::uint32_t i = 0; i < static_cast<std::uint32_t>(n + 1000); ++i) {
                while (flag->load(std::memory_order_acquire) != 2 * i + 1) sync::cpu_relax();
                flag->store(2 * i + 2, std::memory_order_release);
            }
        },
        [&] {
            for (std::uint32_t i = 0; i < static_cast<std::uint32_t>(n + 1000); ++i) {
                auto t0 = clk::now();
                flag->store(2 * i + 1, std::memory_order_release);
                while (flag->load(std::memory_order_acquire) != 2 * i + 2) sync::cpu_relax();
                if (i >= 1000) times.push_back((clk::now() - t0).count());
            }
        });
    report_latency("rt-atomic", times);
}

void futex_wait(std::atomic<std::uint32_t>* w, std::uint32_t v) {
    syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(w), FUTEX_WAIT, v, nullptr, nullptr, 0);
}
void futex_wake(std::atomic<std::uint32_t>* w) {
    syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(w), FUTEX_WAKE, 1, nullptr, nullptr, 0);
}

void rt_futex(int n) {
    auto* flag = new (shared(4096)) std::atomic<std::uint32_t>(0);
    std::vector<std::int64_t> times;
    two_processes(
        [&] {
            for (std::uint32_t i = 0; i < static_cast<std::uint32_t>(n + 1000); ++i) {
                std::uint32_t v;
                while ((v = flag->load()) != 2 * i + 1) futex_wait(flag, v);
                flag->store(2 * i + 2);
                futex_wake(flag);
            }
        },
        [&] {
            for (std::uint32_t i = 0; i < static_cast<std::uint32_t>(n + 1000); ++i) {
                auto t0 = clk::now();
                flag->store(2 * i + 1);
                futex_wake(flag);
                std::uint32_t v;
                while ((v = flag->load()) != 2 * i + 2) futex_wait(flag, v);
                if (i >= 1000) times.push_back((clk::now() - t0).count());
            }
        });
    report_latency("rt-futex", times);
}

// The channel and its bare baseline in the same two processes, in
// alternating blocks (A B A B ...): a change of the machine's state (on a VM
// the host moves virtual CPUs about) hits both alike. The baseline for spin
// is a two-atomic ping-pong (ping and pong on their own cache lines); for
// block and adaptive, a futex ping-pong. Prints both p50s and the median of
// the per-block ratios.
void rt_compare(sync::wait_mode mode, int n, int blocks) {
    std::size_t sz = ring::region_size(65536);
    auto* a = static_cast<std::byte*>(shared(sz));
    auto* b = static_cast<std::byte*>(shared(sz));
    ring::channel::format({a, sz}, 65536, 4096);
    ring::channel::format({b, sz}, 65536, 4096);
    auto* words = static_cast<std::byte*>(shared(4096));
    auto* ping = new (words) std::atomic<std::uint32_t>(0);
    auto* pong = new (words + 128) std::atomic<std::uint32_t>(0);  // apart: no adjacent-line pairing either
    const bool spin = mode == sync::wait_mode::spin;
    const int per = std::max(1, n / blocks);
    const int warm = 1000;
    std::string msg(std::getenv("BENCH_MSG") ? std::atoi(std::getenv("BENCH_MSG")) : 64, 'p');
    std::vector<std::vector<std::int64_t>> ch(static_cast<std::size_t>(blocks)), base(static_cast<std::size_t>(blocks));
    auto bare_wait = [&](std::atomic<std::uint32_t>* w, std::uint32_t want) {
        std::uint32_t v;
        while ((v = w->load(std::memory_order_acquire)) != want) {
            if (spin) sync::cpu_relax();
            else futex_wait(w, v);
        }
    };
    auto bare_post = [&](std::atomic<std::uint32_t>* w, std::uint32_t v) {
        w->store(v, spin ? std::memory_order_release : std::memory_order_seq_cst);
        if (!spin) futex_wake(w);
    };
    // One side echoes, the other measures: the same blocks in the same order.
    auto side = [&](bool measuring) {
        ring::channel on_a({a, sz}), on_b({b, sz});  // a carries requests, b replies
        std::string buf;
        std::uint32_t k = 0;
        for (int blk = -1; blk < blocks; ++blk) {
            int m = blk < 0 ? warm : per;
            auto keep = [&](std::vector<std::vector<std::int64_t>>& into, clk::time_point t0) {
                if (measuring && blk >= 0) into[static_cast<std::size_t>(blk)].push_back((clk::now() - t0).count());
            };
            for (int i = 0; i < m; ++i) {
                auto t0 = clk::now();
                if (measuring) {
                    on_a.send(msg, deadline::never(), mode);
                    on_b.receive_into(buf, deadline::never(), mode);
                } else {
                    on_a.receive_into(buf, deadline::never(), mode);
                    on_b.send(buf, deadline::never(), mode);
                }
                keep(ch, t0);
            }
            for (int i = 0; i < m; ++i) {
                ++k;
                auto t0 = clk::now();
                if (measuring) {
                    bare_post(ping, k);
                    bare_wait(pong, k);
                } else {
                    bare_wait(ping, k);
                    bare_post(pong, k);
                }
                keep(base, t0);
            }
        }
    };
    two_processes([&] { side(false); }, [&] { side(true); });
    auto p50 = [](std::vector<std::int64_t> v) {
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
    };
    std::vector<double> ratios;
    std::vector<std::int64_t> all_ch, all_base;
    for (int blk = 0; blk < blocks; ++blk) {
        auto& c = ch[static_cast<std::size_t>(blk)];
        auto& d = base[static_cast<std::size_t>(blk)];
        ratios.push_back(static_cast<double>(p50(c)) / static_cast<double>(std::max<std::int64_t>(1, p50(d))));
        all_ch.insert(all_ch.end(), c.begin(), c.end());
        all_base.insert(all_base.end(), d.begin(), d.end());
    }
    std::sort(ratios.begin(), ratios.end());
    std::printf("rt-compare mode=%s channel_p50_ns=%lld baseline=%s baseline_p50_ns=%lld ratio=%.2f ratio_min=%.2f "
                "ratio_max=%.2f blocks=%d placement=\"%s\"\n",
                spin ? "spin" : (mode == sync::wait_mode::block ? "block" : "adaptive"),
                static_cast<long long>(p50(all_ch)), spin ? "two-atomic" : "futex",
                static_cast<long long>(p50(all_base)), ratios[ratios.size() / 2], ratios.front(), ratios.back(), blocks,
                placement().c_str());
}

void rt_fds(bool socket, int n) {
    int ab[2], ba[2];
    if (socket) {
        socketpair(AF_UNIX, SOCK_STREAM, 0, ab);
        ba[0] = ab[1];
        ba[1] = ab[0];
    } else if (pipe(ab) < 0 || pipe(ba) < 0) {
        std::exit(71);
    }
    char buf[64] = {};
    std::vector<std::int64_t> times;
    auto full = [&](int fd, bool rd) {
        std::size_t done = 0;
        while (done < 64) {
            ssize_t r = rd ? read(fd, buf + done, 64 - done) : write(fd, buf + done, 64 - done);
            if (r <= 0) std::exit(74);
            done += static_cast<std::size_t>(r);
        }
    };
    two_processes(
        [&] {
            for (int i = 0; i < n + 1000; ++i) {
                full(ab[0], true);
                full(ba[1], false);
            }
        },
        [&] {
            for (int i = 0; i < n + 1000; ++i) {
                auto t0 = clk::now();
                full(ab[1], false);
                full(ba[0], true);
                if (i >= 1000) times.push_back((clk::now() - t0).count());
            }
        });
    report_latency(socket ? "rt-socket" : "rt-pipe", times);
}

// ------------------------------------------------------------------- streaming

void report_rate(const char* what, std::size_t size, int n, clk::duration d) {
    double s = std::chrono::duration<double>(d).count();
    std::printf("%s size=%zu msgs_per_s=%.0f bytes_per_s=%.0f placement=\"%s\"\n", what, size, n / s,
                static_cast<double>(n) * static_cast<double>(size) / s, placement().c_str());
}

// One-way streaming through the channel. Batched (the default): the sender
// hands bursts of up to 32 messages to send_many() and the receiver takes up
// to 64 at a time with receive_many(), copying each out, as ipc-shm recv
// does. Single: one send() and one receive_into() per message.
void stream_channel(std::size_t size, int n, bool batched) {
    std::uint64_t cap = std::max<std::uint64_t>(1 << 20, 8 * ring::record_size(size));
    std::size_t sz = ring::region_size(cap);
    auto* a = static_cast<std::byte*>(shared(sz));
    ring::channel::format({a, sz}, cap, std::max<std::uint64_t>(size, 64));
    std::string msg(size, 's');
    auto t0 = clk::now();
    two_processes(
        [&] {
            ring::channel in({a, sz});
            std::string buf;
            if (!batched) {
                for (int i = 0; i < n; ++i) in.receive_into(buf, deadline::never(), sync::wait_mode::adaptive);
                return;
            }
            buf.resize(size);
            for (int i = 0; i < n;)
                i += static_cast<int>(in.receive_many(
                    64, [&](std::uint64_t, std::string_view d) { std::memcpy(buf.data(), d.data(), d.size()); },
                    deadline::never(), sync::wait_mode::adaptive));
        },
        [&] {
            ring::channel out({a, sz});
            if (!batched) {
                for (int i = 0; i < n; ++i) out.send(msg, deadline::never(), sync::wait_mode::adaptive);
                return;
            }
            std::vector<std::string_view> burst(32, msg);
            for (int i = 0; i < n;) {
                std::size_t k = std::min<std::size_t>(burst.size(), static_cast<std::size_t>(n - i));
                i += static_cast<int>(
                    out.send_many({burst.data(), k}, deadline::never(), sync::wait_mode::adaptive));
            }
        });
    // From before the fork until the receiver has taken the last message.
    report_rate(batched ? "stream-channel" : "stream-channel-single", size, n, clk::now() - t0);
}

// A bare single-producer single-consumer byte ring: the same copies in and
// out, a 4-byte length per message, spinning when full or empty.
struct alignas(64) spsc {
    alignas(64) std::atomic<std::uint64_t> head{0};
    alignas(64) std::atomic<std::uint64_t> tail{0};
};

void stream_spsc(std::size_t size, int n) {
    std::uint64_t cap = std::max<std::uint64_t>(1 << 20, 8 * (size + 16));
    auto* ctl = new (shared(4096)) spsc;
    auto* data = static_cast<char*>(shared(cap));
    std::uint64_t rec = (size + 4 + 15) & ~std::uint64_t{15};
    std::string msg(size, 's');
    auto t0 = clk::now();
    two_processes(
        [&] {
            std::string buf(size, '\0');
            std::uint64_t h = 0;
            for (int i = 0; i < n; ++i) {
                while (ctl->tail.load(std::memory_order_acquire) == h) sync::cpu_relax();
                std::uint64_t pos = h % cap;
                if (cap - pos < rec) {
                    h += cap - pos;
                    pos = 0;
                    while (ctl->tail.load(std::memory_order_acquire) < h + rec) sync::cpu_relax();
                }
                std::uint32_t len;
                std::memcpy(&len, data + pos, 4);
                std::memcpy(buf.data(), data + pos + 4, len);
                h += rec;
                ctl->head.store(h, std::memory_order_release);
            }
        },
        [&] {
            std::uint64_t t = 0;
            for (int i = 0; i < n; ++i) {
                std::uint64_t pos = t % cap;
                std::uint64_t need = rec + (cap - pos < rec ? cap - pos : 0);
                while (cap - (t - ctl->head.load(std::memory_order_acquire)) < need) sync::cpu_relax();
                if (cap - pos < rec) {
                    t += cap - pos;
                    pos = 0;
                }
                std::uint32_t len = static_cast<std::uint32_t>(size);
                std::memcpy(data + pos, &len, 4);
                std::memcpy(data + pos + 4, msg.data(), size);
                t += rec;
                ctl->tail.store(t, std::memory_order_release);
            }
        });
    report_rate("stream-spsc", size, n, clk::now() - t0);
}

void stream_fds(bool socket, std::size_t size, int n) {
    int fds[2];
    if (socket ? socketpair(AF_UNIX, SOCK_STREAM, 0, fds) < 0 : pipe(fds) < 0) std::exit(71);
    std::string msg(size, 's');
    auto t0 = clk::now();
    two_processes(
        [&] {
            close(fds[1]);
            std::string buf(size, '\0');
            for (int i = 0; i < n; ++i) {
                std::size_t done = 0;
                while (done < size) {
                    ssize_t r = read(fds[0], buf.data() + done, size - done);
                    if (r <= 0) _exit(74);
                    done += static_cast<std::size_t>(r);
                }
            }
        },
        [&] {
            close(fds[0]);
            for (int i = 0; i < n; ++i) {
                std::size_t done = 0;
                while (done < size) {
                    ssize_t r = write(fds[1], msg.data() + done, size - done);
                    if (r <= 0) std::exit(74);
                    done += static_cast<std::size_t>(r);
                }
            }
            close(fds[1]);
        });
    report_rate(socket ? "stream-socket" : "stream-pipe", size, n, clk::now() - t0);
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: bench_shm PROBE [ARGS] N (see the source)\n");
        return 64;
    }
    if (const char* c = std::getenv("BENCH_CPUS")) {
        std::string s = c;
        if (s == "none") pin = false;
        else if (s == "same") cpu_a = cpu_b = 0;
        else std::sscanf(c, "%d,%d", &cpu_a, &cpu_b);
    }
    std::string probe = argv[1];
    if (probe == "rt-channel") rt_channel(sync::parse_wait_mode(argv[2]), std::atoi(argv[3]));
    else if (probe == "rt-atomic") rt_atomic(std::atoi(argv[2]));
    else if (probe == "rt-compare")
        rt_compare(sync::parse_wait_mode(argv[2]), std::atoi(argv[3]), argc > 4 ? std::atoi(argv[4]) : 10);
    else if (probe == "rt-futex") rt_futex(std::atoi(argv[2]));
    else if (probe == "rt-pipe") rt_fds(false, std::atoi(argv[2]));
    else if (probe == "rt-socket") rt_fds(true, std::atoi(argv[2]));
    else if (probe == "stream-channel") stream_channel(std::strtoul(argv[2], nullptr, 10), std::atoi(argv[3]), true);
    else if (probe == "stream-channel-single")
        stream_channel(std::strtoul(argv[2], nullptr, 10), std::atoi(argv[3]), false);
    else if (probe == "stream-spsc") stream_spsc(std::strtoul(argv[2], nullptr, 10), std::atoi(argv[3]));
    else if (probe == "stream-pipe") stream_fds(false, std::strtoul(argv[2], nullptr, 10), std::atoi(argv[3]));
    else if (probe == "stream-socket") stream_fds(true, std::strtoul(argv[2], nullptr, 10), std::atoi(argv[3]));
    else return 64;
    return 0;
}
