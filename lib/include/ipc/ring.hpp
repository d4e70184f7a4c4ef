// SPDX-License-Identifier: MIT
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "ipc/error.hpp"
#include "ipc/fd.hpp"
#include "ipc/sync.hpp"

/// A message ring in shared memory: variable-size messages, any number of
/// senders and receivers (each message taken by exactly one), futex waits,
/// and crash safety. It works on any memory region mapped MAP_SHARED by every
/// party; ipc-shm puts it in a /dev/shm segment, ipc-mbox builds on it too.
///
/// Layout (offsets in bytes; every group on its own 64-byte cache line, so
/// that senders and receivers do not write the same line):
///
///     0    identity: magic "IPCCHAN1", version, capacity, max message size,
///          creation time, recovery counters
///     64   sender lock (robust, process-shared mutex)
///     128  tail side, written by senders only: tail (bytes ever written),
///          tail_tick (futex word), next_seq, cached_head, last_record
///     192  receiver lock
///     256  head side, written by receivers only: head (bytes ever taken),
///          head_tick (futex word), taken
///     320  data_waiters: the receivers asleep on tail_tick (sync::waiter_set:
///          a bit mask, an overflow count and 32 pid slots)
///     512  space_waiters: the senders asleep on head_tick
///     1024 the ring: `capacity` bytes of 16-byte-aligned records
///
/// A record is a 16-byte header {u32 size, u32 kind, u64 seq} and the payload,
/// padded to 16 bytes. A record never wraps: when it does not fit before the
/// end, a padding record fills the rest and it starts at offset 0.
///
/// Memory ordering. A sender, holding the sender lock, writes the record,
/// then stores tail (release) and tail_tick (seq_cst). A receiver, holding the
/// receiver lock, loads tail (acquire), so the record's bytes happen-before
/// its reads; it then stores head (release) and head_tick (seq_cst), so a
/// sender that loads head (acquire) may reuse the space. The ticks are the
/// futex words: a waiter registers in data_waiters/space_waiters (seq_cst
/// RMW) and re-reads the tick (seq_cst) before sleeping; the other side stores
/// the tick (seq_cst) before reading the waiter count (seq_cst), so one of the
/// two sees the other: no lost wake-up, and no wake-up system call when
/// nobody sleeps. Bursts (send_many, receive_many) store each tick with
/// release only, so the other side sees progress at once, and put one
/// seq_cst fence between the last tick store and the look at the waiter
/// count: the same Dekker pairing, one full barrier per burst instead of one
/// per message. A sender about to wait for room in mid-burst first wakes
/// receivers for what it already committed.
///
/// Spinning receivers. A receiver in spin mode that took the record just
/// before head (the channel object remembers where it ended and its seq)
/// does not wait for tail: holding the receiver lock, it watches the header
/// at head itself and takes the record once it is written whole, so a
/// message costs it the record's cache lines and none of the senders'. A
/// sender writes a record's payload, size and kind, and its seq last, with
/// a release store; a padding carries the seq of the message after it. The
/// receiver reads the seq at head (acquire) until it is the one it expects:
/// then the record is whole (a record written there before had a smaller
/// seq; payload bytes there could spell any number, but writing them takes
/// a sender, who could as well write any byte of the segment). While
/// spinning it prefetches the record's second cache line. Other receivers
/// meanwhile wait for the receiver lock (which may sleep: with several
/// receivers, spin mode spins in one of them). Any other receiver (another
/// object, or after another receiver took something) waits for tail as above.
///
/// Crash safety. tail is the commit point: a sender killed before storing it
/// leaves nothing visible, and the robust lock lets the next sender go on
/// (counted in sender_recoveries). Sequence numbers stay gap-free and unique:
/// a sender counts its record (next_seq) only after committing it, and one
/// that takes the lock over from a dead sender first counts a record the dead
/// one committed but did not count (last_record says where it is), and moves
/// tail past records the dead one wrote whole that a spinning receiver may
/// already have taken (head can pass tail until then). head is
/// the take point: a receiver killed
/// before storing it leaves the message for the next receiver; killed after,
/// it loses only that message (receiver_recoveries). Every header is checked
/// before use: a corrupted ring is reported, never followed.
namespace ipc::ring {

inline constexpr std::uint64_t magic = 0x314E414843435049ull;  // "IPCCHAN1"
inline constexpr std::uint32_t version = 4;  // 4: a record's seq is written last (see below)
inline constexpr std::size_t header_bytes = 1024;
inline constexpr std::size_t record_header = 16;

/// Ring bytes a record of a payload of n bytes takes.
constexpr std::uint64_t record_size(std::uint64_t n) { return record_header + ((n + 15) & ~std::uint64_t{15}); }

/// The region size a channel with `capacity` ring bytes needs.
constexpr std::size_t region_size(std::uint64_t capacity) {
    return header_bytes + static_cast<std::size_t>((capacity + 15) & ~std::uint64_t{15});
}

/// The largest max_msg a capacity allows: a record may need twice its size
/// (when it would wrap), and must fit an empty ring.
constexpr std::uint64_t largest_message(std::uint64_t capacity) {
    return capacity / 2 >= record_header ? ((capacity / 2 - record_header) & ~std::uint64_t{15}) : 0;
}

struct stats {
    std::uint64_t capacity = 0;
    std::uint64_t max_msg = 0;
    std::uint64_t used_bytes = 0;
    std::uint64_t messages = 0;
    std::uint64_t sent = 0;   ///< messages ever committed
    std::uint64_t taken = 0;  ///< messages ever taken
    std::uint32_t senders_waiting = 0;
    std::uint32_t receivers_waiting = 0;
    std::uint32_t stale_waiters = 0;  ///< registrations of waiters that died asleep, not yet freed
    std::uint64_t sender_recoveries = 0;
    std::uint64_t receiver_recoveries = 0;
    std::int64_t created_ns = 0;
};

class channel {
public:
    /// Formats region as an empty channel (the creator does this once,
    /// before anyone else attaches). region.size() must be region_size(capacity).
    static void format(std::span<std::byte> region, std::uint64_t capacity, std::uint64_t max_msg);

    /// True when region starts with a channel's magic (it may still be damaged).
    static bool looks_like_channel(std::span<const std::byte> region);

    /// Attaches to a formatted region; a data error (65) when it is not a
    /// channel or its header is inconsistent.
    explicit channel(std::span<std::byte> region);

    /// Sends a copy of payload; false when no room came before the deadline.
    /// A payload over max_msg is a data error (65).
    bool send(std::string_view payload, const deadline& until, sync::wait_mode mode);

    /// Sends a burst under one acquisition of the sender lock and with one
    /// full barrier, waiting for room as send() does. Each message is
    /// committed (visible, and safe from a crash) as soon as it is written.
    /// Returns how many were sent: fewer than given only when the deadline
    /// came first. Any payload over max_msg is a data error before any is sent.
    std::size_t send_many(std::span<const std::string_view> payloads, const deadline& until, sync::wait_mode mode);

    /// Zero-copy sending: room for up to n bytes, written in place, then
    /// commit(m) publishes the first m. The sender lock is held in between,
    /// so other senders wait; destroying it uncommitted publishes nothing.
    class reservation {
    public:
        reservation(reservation&& other) noexcept;
        reservation& operator=(reservation&&) = delete;
        ~reservation();
        std::span<std::byte> data() const { return data_; }
        /// Publishes the first n bytes as one message; returns its seq.
        std::uint64_t commit(std::size_t n);

    private:
        friend class channel;
        reservation(channel* ch, std::uint64_t tail, std::span<std::byte> data)
            : ch_(ch), tail_(tail), data_(data) {}
        channel* ch_;
        std::uint64_t tail_;  // where the record starts (after any padding)
        std::span<std::byte> data_;
    };
    std::optional<reservation> reserve(std::size_t n, const deadline& until, sync::wait_mode mode);

    struct message {
        std::uint64_t seq = 0;
        std::string data;
    };
    /// Takes the oldest message; nullopt when none came before the deadline.
    std::optional<message> receive(const deadline& until, sync::wait_mode mode);
    /// Same, reusing out's storage; returns the seq.
    std::optional<std::uint64_t> receive_into(std::string& out, const deadline& until, sync::wait_mode mode);

    /// Takes up to max messages under one acquisition of the receiver lock,
    /// waiting (until the deadline) only for the first; calls
    /// fn(seq, std::string_view payload) for each, in order. The view points
    /// into the ring and is valid only during the call, which runs with the
    /// receiver lock held: copy, do not block. Each message is taken right
    /// after its call returns, so a receiver killed inside fn leaves that
    /// message for the next one. Returns how many were taken (0: timeout).
    template <class F>
    std::size_t receive_many(std::size_t max, F&& fn, const deadline& until, sync::wait_mode mode) {
        using fn_t = std::remove_reference_t<F>;
        auto call = [](void* f, std::uint64_t seq, std::string_view data) { (*static_cast<fn_t*>(f))(seq, data); };
        return take(max, call, const_cast<void*>(static_cast<const void*>(&fn)), until, mode);
    }

    stats stat() const;
    std::uint64_t max_msg() const;

    struct control;

private:
    using take_fn = void (*)(void*, std::uint64_t, std::string_view);
    std::size_t take(std::size_t max, take_fn fn, void* ctx, const deadline& until, sync::wait_mode mode);
    bool room_seen(std::uint64_t tail, std::uint64_t need) const;
    bool wait_for_room(std::uint64_t tail, std::uint64_t need, const deadline& until, sync::wait_mode mode);
    std::uint64_t need_at(std::uint64_t tail, std::size_t n) const;
    bool make_room(std::uint64_t& tail, std::size_t n, const deadline& until, sync::wait_mode mode);
    void write_payload(std::uint64_t tail, std::string_view payload);
    std::uint64_t publish(std::uint64_t tail, std::size_t n, std::memory_order tick_order);
    error too_large(std::size_t n) const;
    std::uint64_t committed_next_seq() const;
    void repair_seq();
    std::size_t take_spinning(take_fn fn, void* ctx, const deadline& until);
    /// Where byte position x (head, tail: bytes ever) lies in the ring.
    std::uint64_t off(std::uint64_t x) const { return mask_ ? x & mask_ : x % capacity_; }
    control* c_;
    std::byte* ring_;
    std::uint64_t capacity_;
    std::uint64_t mask_ = 0;  // capacity_ - 1 when it is a power of two: off() without a division
    // Where the last record this object took ended, and its seq (changed
    // only with the receiver lock held; atomics because threads may share
    // one object, and known_end_ is glanced at without the lock): a spinning
    // receiver that finds head there knows the seq of the record to come.
    std::atomic<std::uint64_t> known_end_{UINT64_MAX};
    std::atomic<std::uint64_t> known_seq_{0};
};

} // namespace ipc::ring
