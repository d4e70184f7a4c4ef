// SPDX-License-Identifier: MIT
#include "ipc/sync.hpp"

#include <cerrno>
#include <climits>
#include <ctime>

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

void futex_wake(const std::atomic<std::uint32_t>& word, int n) {
    ::syscall(SYS_futex, reinterpret_cast<const std::uint32_t*>(&word), FUTEX_WAKE, n, nullptr, nullptr, 0);
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

void robust_mutex::init() {
    pthread_mutexattr_t a;
    ::pthread_mutexattr_init(&a);
    ::pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    ::pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    ::pthread_mutex_init(&m_, &a);
    ::pthread_mutexattr_destroy(&a);
}

robust_mutex::outcome robust_mutex::lock(const deadline& until) {
    for (;;) {
        check_interrupt();
        // timedlock (CLOCK_REALTIME) rather than clocklock: sanitizers know it.
        // Each slice is short, so a clock step only shifts one slice.
        timespec abs{};
        ::clock_gettime(CLOCK_REALTIME, &abs);
        std::int64_t ns = static_cast<std::int64_t>(abs.tv_nsec) + next_slice(until).count();
        abs.tv_sec += static_cast<time_t>(ns / 1'000'000'000);
        abs.tv_nsec = static_cast<long>(ns % 1'000'000'000);
        int r = ::pthread_mutex_timedlock(&m_, &abs);
        if (r == 0) return outcome::acquired;
        if (r == EOWNERDEAD) {
            // The holder died: the lock is ours; the caller repairs its data.
            ::pthread_mutex_consistent(&m_);
            return outcome::recovered;
        }
        if (r == ETIMEDOUT) {
            if (until.expired()) return outcome::timeout;
            continue;
        }
        if (r == ENOTRECOVERABLE)
            throw error(exit_code::data, "a lock in shared memory is unrecoverable (its holder died and nobody repaired it)",
                        r);
        throw system_error(r, "lock", "mutex", "");
    }
}

bool robust_mutex::try_lock(outcome* how) {
    int r = ::pthread_mutex_trylock(&m_);
    if (r == 0) {
        if (how) *how = outcome::acquired;
        return true;
    }
    if (r == EOWNERDEAD) {
        ::pthread_mutex_consistent(&m_);
        if (how) *how = outcome::recovered;
        return true;
    }
    if (r == EBUSY) return false;
    throw system_error(r, "lock", "mutex", "");
}

void robust_mutex::unlock() { ::pthread_mutex_unlock(&m_); }

bool wait_while_equal(const std::atomic<std::uint32_t>& word, std::uint32_t observed,
                      std::atomic<std::uint32_t>& waiters, wait_mode mode, const deadline& until,
                      std::chrono::nanoseconds spin_budget) {
    if (word.load(std::memory_order_acquire) != observed) return true;
    if (mode != wait_mode::block) {
        // With one CPU the peer cannot run while we spin: yield at every turn.
        static const bool alone = usable_cpus() < 2;
        auto start = std::chrono::steady_clock::now();
        for (std::uint32_t i = 1;; ++i) {
            if (word.load(std::memory_order_acquire) != observed) return true;
            if (alone || i % 1024 == 0) ::sched_yield();
            else cpu_relax();
            if (i % 256 == 0) {
                if (pending_interrupt()) check_interrupt();
                if (until.expired()) return false;
                if (mode == wait_mode::adaptive && std::chrono::steady_clock::now() - start > spin_budget) break;
            }
        }
    }
    // Dekker with the waker: we publish "waiting" then re-read the word; it
    // publishes the word then reads "waiting" (both seq_cst). One of the two
    // sees the other, and futex_wait re-checks the word atomically in the
    // kernel, so a wake-up cannot fall between our check and our sleep.
    waiters.fetch_add(1, std::memory_order_seq_cst);
    struct leave {
        std::atomic<std::uint32_t>& w;
        ~leave() { w.fetch_sub(1, std::memory_order_seq_cst); }
    } guard{waiters};
    while (word.load(std::memory_order_seq_cst) == observed)
        if (!futex_wait(word, observed, until)) return word.load(std::memory_order_seq_cst) != observed;
    return true;
}

} // namespace ipc::sync
