// SPDX-License-Identifier: MIT
#include "ipc/sync.hpp"

#include "ipc/proc.hpp"

#include <cerrno>
#include <climits>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <csignal>

#include <fcntl.h>
#include <pthread.h>

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fmt/format.h>

#include "ipc/error.hpp"

namespace ipc::sync {

namespace {

// An infinite wait still wakes now and then, so that a SIGINT that landed
// just before the sleeping system call (which has no signal mask argument)
// is seen within this long.
constexpr auto slice = std::chrono::milliseconds(250);

timespec monotonic_after(std::chrono::nanoseconds d) {
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    std::int64_t ns = static_cast<std::int64_t>(now.tv_nsec) + d.count();
    return timespec{now.tv_sec + static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
}

std::chrono::nanoseconds next_slice(const deadline& until) {
    auto left = until.remaining();
    return left && *left < slice ? *left : std::chrono::nanoseconds(slice);
}

} // namespace

bool futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected, const deadline& until) {
    static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
    check_interrupt();
    if (until.expired()) return false;
    timespec abs = monotonic_after(next_slice(until));
    long r = ::syscall(SYS_futex, reinterpret_cast<const std::uint32_t*>(&word), FUTEX_WAIT_BITSET, expected, &abs,
                       nullptr, FUTEX_BITSET_MATCH_ANY);
    if (r == 0 || errno == EAGAIN) return true;  // woken, or the word had already changed
    if (errno == EINTR) {
        check_interrupt();
        return true;
    }
    if (errno == ETIMEDOUT) return !until.expired();  // a slice ended: the caller looks again
    throw last_system_error("wait on", "futex", "");
}

int futex_wake(const std::atomic<std::uint32_t>& word, int n) {
    long r = ::syscall(SYS_futex, reinterpret_cast<const std::uint32_t*>(&word), FUTEX_WAKE, n, nullptr, nullptr, 0);
    return r < 0 ? 0 : static_cast<int>(r);
}

int waiter_set::enter() noexcept {
    std::int32_t me = static_cast<std::int32_t>(::getpid());
    for (int i = 0; i < slots; ++i) {
        std::int32_t free = 0;
        if (pid[i].load(std::memory_order_relaxed) == 0 &&
            pid[i].compare_exchange_strong(free, me, std::memory_order_acq_rel, std::memory_order_relaxed)) {
            mask.fetch_or(1u << i, std::memory_order_seq_cst);
            return i;
        }
    }
    overflow.fetch_add(1, std::memory_order_seq_cst);
    return -1;
}

void waiter_set::leave(int slot) noexcept {
    if (slot < 0) {
        overflow.fetch_sub(1, std::memory_order_seq_cst);
        return;
    }
    // The bit before the slot: once the slot is free another may take it.
    mask.fetch_and(~(1u << slot), std::memory_order_seq_cst);
    pid[slot].store(0, std::memory_order_release);
}

std::uint32_t waiter_set::count_alive() const noexcept {
    std::uint32_t n = overflow.load(std::memory_order_acquire);
    std::uint32_t m = mask.load(std::memory_order_acquire);
    for (int i = 0; i < slots; ++i) {
        std::int32_t p = pid[i].load(std::memory_order_acquire);
        if ((m & (1u << i)) && p > 0 && proc::alive(p)) ++n;
    }
    return n;
}

std::uint32_t waiter_set::count_dead() const noexcept {
    std::uint32_t n = 0;
    for (int i = 0; i < slots; ++i) {
        std::int32_t p = pid[i].load(std::memory_order_acquire);
        if (p > 0 && !proc::alive(p)) ++n;
    }
    return n;
}

int waiter_set::heal() noexcept {
    int freed = 0;
    for (int i = 0; i < slots; ++i) {
        std::int32_t p = pid[i].load(std::memory_order_acquire);
        if (p <= 0 || proc::alive(p)) continue;
        // One healer wins the slot (-1: being freed; nobody claims it), clears
        // its bit, then frees it.
        if (!pid[i].compare_exchange_strong(p, -1, std::memory_order_acq_rel, std::memory_order_relaxed)) continue;
        mask.fetch_and(~(1u << i), std::memory_order_seq_cst);
        pid[i].store(0, std::memory_order_release);
        ++freed;
    }
    return freed;
}

void wake_if_waiting_slow(const std::atomic<std::uint32_t>& word, waiter_set& waiters, int n) {
    if (futex_wake(word, n) > 0) return;
    // Nobody woke: a waiter between registering and sleeping, or one that
    // died asleep. Look at who is registered once in a while.
    thread_local std::uint32_t idle = 0;
    if (idle++ % 64 == 0) waiters.heal();
}

wait_mode parse_wait_mode(std::string_view text) {
    if (text == "spin") return wait_mode::spin;
    if (text == "block") return wait_mode::block;
    if (text == "adaptive") return wait_mode::adaptive;
    throw usage_error(fmt::format("invalid wait mode '{}': expected spin, block or adaptive", text));
}

unsigned usable_cpus() noexcept {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) != 0) return 1;
    return static_cast<unsigned>(CPU_COUNT(&set));
}

namespace {

// A forked child is another thread: it must not take locks under its
// parent's identity.
extern "C" void forget_identity() { robust_mutex::forget_self(); }

} // namespace

constinit thread_local robust_mutex::identity robust_mutex::t_self_{0, 0};

const robust_mutex::identity& robust_mutex::self_slow() {
    static bool registered = [] { return ::pthread_atfork(nullptr, nullptr, forget_identity) == 0; }();
    (void)registered;
    t_self_.tid = static_cast<std::uint32_t>(::gettid());
    t_self_.start = proc::start_time(static_cast<pid_t>(t_self_.tid)).value_or(0);
    return t_self_;
}

namespace {

// Whether the thread that took the lock is gone.
bool owner_gone(std::uint32_t tid, std::uint64_t start) {
    if (::kill(static_cast<pid_t>(tid), 0) < 0 && errno == ESRCH) return true;
    auto now = proc::start_time(static_cast<pid_t>(tid));
    // No start time: gone, or a zombie (dead, not reaped yet: it never
    // unlocks) - when /proc is there to tell.
    static const bool have_proc = ::access("/proc/self/stat", F_OK) == 0;
    if (!now) return have_proc;
    return start != 0 && *now != start;  // the id now names another thread
}

} // namespace

void robust_mutex::init() {
    word_.store(0);
    reserved_.store(0);
    owner_start_.store(0);
}

std::uint32_t robust_mutex::owner() const noexcept { return word_.load(std::memory_order_relaxed) & ~waiters_bit; }

robust_mutex::outcome robust_mutex::lock_slow(const deadline& until) {
    outcome fast;
    // Held locks are held briefly: with a CPU for the holder to run on, look
    // again for a couple of microseconds before paying for a futex sleep.
    static const bool spin = usable_cpus() > 1;
    if (spin)
        for (int i = 0; i < 64; ++i) {
            cpu_relax();
            if (word_.load(std::memory_order_relaxed) == 0 && try_lock(&fast)) return fast;
        }
    const auto& me = self();
    auto waited_since = std::chrono::steady_clock::now();
    for (;;) {
        check_interrupt();
        std::uint32_t v = word_.load(std::memory_order_relaxed);
        if (v == 0) {
            // Others may still sleep: keep the waiters bit, so unlock wakes them.
            if (word_.compare_exchange_strong(v, me.tid | waiters_bit, std::memory_order_acquire)) break;
            continue;
        }
        // A dead owner never unlocks: take over at once. (The start-time check
        // against a reused thread id costs a /proc read: only after a while.)
        std::uint32_t owner = v & ~waiters_bit;
        bool long_wait = std::chrono::steady_clock::now() - waited_since > std::chrono::milliseconds(20);
        bool gone = (::kill(static_cast<pid_t>(owner), 0) < 0 && errno == ESRCH) ||
                    (long_wait && owner_gone(owner, owner_start_.load(std::memory_order_relaxed)));
        if (gone) {
            if (word_.compare_exchange_strong(v, me.tid | (v & waiters_bit), std::memory_order_acquire)) {
                owner_start_.store(me.start, std::memory_order_relaxed);
                return outcome::recovered;
            }
            continue;
        }
        if (until.expired()) return outcome::timeout;
        if (!(v & waiters_bit) && !word_.compare_exchange_strong(v, v | waiters_bit, std::memory_order_relaxed))
            continue;
        // Sleep in short slices: a dead owner never wakes anyone.
        auto left = until.remaining();
        futex_wait(word_, v | waiters_bit,
                   left && *left < std::chrono::milliseconds(20) ? until
                                                                 : deadline::after(std::chrono::milliseconds(20)));
    }
    owner_start_.store(me.start, std::memory_order_relaxed);
    return outcome::acquired;
}

void robust_mutex::wake_one() { futex_wake(word_, 1); }

bool spin_until(bool (*ready)(const void*), const void* ctx, wait_mode mode, const deadline& until,
                std::chrono::nanoseconds spin_budget) {
    if (ready(ctx)) return true;
    if (mode == wait_mode::block) return false;
    // Spin with pause for a few microseconds (a peer on another CPU answers
    // well within that); after that, yield at every turn, so that a peer that
    // shares our CPU gets to run at once rather than after our time slice. On
    // a machine with one CPU the peer can only run if we yield: yield from
    // the start.
    static const bool one_cpu = ::sysconf(_SC_NPROCESSORS_ONLN) < 2;
    constexpr auto pause_for = std::chrono::microseconds(5);
    // The clock is first read at the first check, 64 turns in, not before
    // the first look: a peer that answers at once is seen without a clock
    // read's delay (tens of ns on a VM). The budgets count from there.
    std::chrono::steady_clock::time_point start{};
    bool yielding = one_cpu;
    for (std::uint32_t i = 1;; ++i) {
        if (ready(ctx)) return true;
        if (yielding) ::sched_yield();
        else cpu_relax();
        if (yielding || i % 64 == 0) {
            if (pending_interrupt()) check_interrupt();
            if (until.expired()) return false;
            auto now = std::chrono::steady_clock::now();
            if (start == std::chrono::steady_clock::time_point{}) start = now;
            auto spent = now - start;
            if (mode == wait_mode::adaptive && spent > spin_budget) return false;
            yielding = yielding || spent > pause_for;
        }
    }
}

bool wait_while_equal(const std::atomic<std::uint32_t>& word, std::uint32_t observed, waiter_set& waiters,
                      wait_mode mode, const deadline& until, std::chrono::nanoseconds spin_budget) {
    struct look {
        const std::atomic<std::uint32_t>* word;
        std::uint32_t observed;
    } l{&word, observed};
    auto moved = [](const void* p) {
        auto* x = static_cast<const look*>(p);
        return x->word->load(std::memory_order_acquire) != x->observed;
    };
    if (spin_until(moved, &l, mode, until, spin_budget)) return true;
    if (mode == wait_mode::spin || until.expired()) return false;
    // Dekker with the waker: we publish "waiting" then re-read the word; it
    // publishes the word then reads "waiting" (both seq_cst). One of the two
    // sees the other, and futex_wait re-checks the word atomically in the
    // kernel, so a wake-up cannot fall between our check and our sleep.
    struct leave {
        waiter_set& w;
        int slot;
        ~leave() { w.leave(slot); }
    } guard{waiters, waiters.enter()};
    // One sleep (at most one slice): the caller looks at its real condition
    // again, so a change whose waker died before storing the word (a peer
    // killed between its two stores) still ends the wait within a slice.
    if (word.load(std::memory_order_seq_cst) != observed) return true;
    if (!futex_wait(word, observed, until)) return word.load(std::memory_order_seq_cst) != observed;
    return true;
}

} // namespace ipc::sync
