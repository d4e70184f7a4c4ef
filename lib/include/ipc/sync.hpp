// SPDX-License-Identifier: MIT
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>


#include "ipc/fd.hpp"

/// Synchronisation that works between processes through shared memory: futex
/// waits, a mutex that survives the death of its holder, and the waiting
/// strategies (spin, block, adaptive). Mechanism-neutral: the shared-memory
/// channel and the mailbox are both built on it.
namespace ipc::sync {

/// Sleeps while *word == expected, until woken, the deadline, or a signal.
/// Returns false on timeout. SIGINT/SIGTERM become ipc::interrupted. The word
/// must be in memory shared by every waker (MAP_SHARED): no FUTEX_PRIVATE.
bool futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected, const deadline& until);

/// Wakes up to n waiters of word.
/// Returns how many were woken.
int futex_wake(const std::atomic<std::uint32_t>& word, int n);

/// A pause instruction for spin loops (lets the sibling hyperthread run).
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield" ::: "memory");
#endif
}

/// How a waiter waits.
enum class wait_mode {
    spin,      ///< poll the shared word; after 5 us yield at every look; never sleep
    block,     ///< sleep on the futex at once
    adaptive,  ///< spin for a bounded time, then sleep on the futex
};

/// "spin", "block", "adaptive"; a usage error otherwise.
wait_mode parse_wait_mode(std::string_view text);

/// Number of CPUs this process may run on: with one, spinning only delays
/// the peer that would end the wait, so spinning waiters yield at once.
unsigned usable_cpus() noexcept;

/// A process-shared, robust mutex living in shared memory. When a holder
/// dies, the next lock() succeeds and reports it, so the caller can repair
/// what the dead holder left half-done.
///
/// The lock word holds the owner's thread id (and a "waiters" bit): taking a
/// free lock is one compare-and-swap, releasing it one exchange, and a futex
/// system call happens only when someone waits. A waiter that has waited a
/// while checks that the owner still lives (its thread id exists and has the
/// start time the owner recorded, so a reused id is not mistaken for it) and
/// takes the lock over from a dead one.
class robust_mutex {
public:
    /// Initialises the mutex in place (once, by the creator of the memory).
    void init();

    enum class outcome { acquired, recovered, timeout };
    /// Locks, waiting up to the deadline. `recovered`: the previous holder
    /// died holding it; the lock is now held.
    outcome lock(const deadline& until) {
        outcome fast;
        if (try_lock(&fast)) return fast;  // uncontended: one compare-and-swap
        return lock_slow(until);
    }
    bool try_lock(outcome* how = nullptr) {
        std::uint32_t expected = 0;
        const auto& me = self();
        if (!word_.compare_exchange_strong(expected, me.tid, std::memory_order_acquire, std::memory_order_relaxed))
            return false;
        owner_start_.store(me.start, std::memory_order_relaxed);
        if (how) *how = outcome::acquired;
        return true;
    }
    void unlock() {
        if (word_.exchange(0, std::memory_order_release) & waiters_bit) wake_one();
    }

    /// The holder's thread id, 0 when free (for stat and tests).
    std::uint32_t owner() const noexcept;

    /// This thread's id and start time (clock ticks since boot), read once.
    struct identity {
        std::uint32_t tid;
        std::uint64_t start;
    };
    static const identity& self() { return t_self_.tid ? t_self_ : self_slow(); }
    /// After fork(): the child reads its own identity at its next lock.
    static void forget_self() noexcept { t_self_.tid = 0; }

private:
    static constexpr std::uint32_t waiters_bit = 0x80000000u;  // thread ids stay below 2^22 (pid_max)
    static constinit thread_local identity t_self_;
    static const identity& self_slow();
    outcome lock_slow(const deadline& until);
    void wake_one();

    std::atomic<std::uint32_t> word_;
    std::atomic<std::uint32_t> reserved_;
    std::atomic<std::uint64_t> owner_start_;
};

static_assert(sizeof(robust_mutex) <= 48, "a robust_mutex fits its cache-line slot");

/// Who sleeps on a futex word, in shared memory: up to 32 processes by pid,
/// in slots, and a count of any more. A waiter killed in its sleep leaves its
/// slot taken; its pid tells that it is gone, so count_alive() leaves it out
/// and heal() frees it (pids are those of the caller's PID namespace; a pid
/// reused meanwhile looks alive). Zeroed memory is an empty set.
struct waiter_set {
    static constexpr int slots = 32;
    std::atomic<std::uint32_t> mask;      ///< bit i: slot i's waiter may sleep
    std::atomic<std::uint32_t> overflow;  ///< waiters that found no free slot
    std::atomic<std::int32_t> pid[slots]; ///< 0: free; -1: being freed

    /// Registers this process (a seq_cst read-modify-write, for the Dekker
    /// pairing with the waker); returns its slot, or -1 when counted in overflow.
    int enter() noexcept;
    void leave(int slot) noexcept;
    /// True when someone may be sleeping (seq_cst loads).
    bool any() const noexcept {
        return (mask.load(std::memory_order_seq_cst) | overflow.load(std::memory_order_seq_cst)) != 0;
    }
    /// Waiters whose process still runs, and those in overflow.
    std::uint32_t count_alive() const noexcept;
    /// Slots still held by processes that are gone (died asleep).
    std::uint32_t count_dead() const noexcept;
    /// Frees the slots of processes that are gone; returns how many.
    int heal() noexcept;
};
static_assert(sizeof(waiter_set) == 136);

/// Waits while `word` still holds `observed`, by the given mode, until the
/// deadline. `waiters` is what the waking side reads to decide whether a
/// futex wake-up is needed: this registers in it before sleeping, with the
/// ordering that makes a lost wake-up impossible (see the .cpp). Returns false
/// on timeout.
bool wait_while_equal(const std::atomic<std::uint32_t>& word, std::uint32_t observed, waiter_set& waiters,
                      wait_mode mode, const deadline& until,
                      std::chrono::nanoseconds spin_budget = std::chrono::microseconds(50));

/// The spinning half of a wait, for a condition that is not one futex word
/// (a ring's next record): looks at ready(ctx) by the mode's rules (pause;
/// after 5 us yield at every look; with one CPU yield from the start) until
/// it holds (true), the deadline passes, or, for adaptive, the spin budget is
/// spent (false: the caller then sleeps on its futex word). block: false at
/// once. SIGINT and SIGTERM are looked at every 64 turns.
bool spin_until(bool (*ready)(const void*), const void* ctx, wait_mode mode, const deadline& until,
                std::chrono::nanoseconds spin_budget = std::chrono::microseconds(50));

/// A full (store-load) barrier, as between storing a futex word and looking
/// at the waiter count. ThreadSanitizer does not support fences (GCC refuses
/// them with -Werror=tsan); there a seq_cst exchange on a private atomic
/// stands in, which is a full barrier on the hardware too.
inline void full_barrier() noexcept {
#if defined(__SANITIZE_THREAD__)
    static thread_local std::atomic<int> stand_in{0};
    stand_in.exchange(0, std::memory_order_seq_cst);
#else
    std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

/// The waking side's half: call after publishing the change to `word`
/// (with a seq_cst store or RMW). Makes the system call only when someone
/// may be sleeping.
/// Now and then a wake-up that woke nobody while the set said someone may
/// sleep frees the slots of waiters that died in their sleep, so that their
/// slots stop costing every later waker a system call.
void wake_if_waiting_slow(const std::atomic<std::uint32_t>& word, waiter_set& waiters, int n);
inline void wake_if_waiting(const std::atomic<std::uint32_t>& word, waiter_set& waiters, int n) {
    if (waiters.any()) wake_if_waiting_slow(word, waiters, n);
}

} // namespace ipc::sync
