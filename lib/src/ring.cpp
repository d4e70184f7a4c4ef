// SPDX-License-Identifier: MIT
#include "ipc/ring.hpp"

#include <chrono>
#include <algorithm>
#include <cstring>
#include <new>

#include <fmt/format.h>

#include "ipc/error.hpp"
#include "ipc/fault.hpp"

namespace ipc::ring {

struct alignas(64) channel::control {
    // Identity: written once by format().
    std::uint64_t magic;
    std::uint32_t version;
    std::uint32_t header;
    std::uint64_t capacity;
    std::uint64_t max_msg;
    std::int64_t created_ns;
    std::atomic<std::uint64_t> sender_recoveries;
    std::atomic<std::uint64_t> receiver_recoveries;

    alignas(64) sync::robust_mutex send_lock;

    alignas(64) std::atomic<std::uint64_t> tail;
    std::atomic<std::uint32_t> tail_tick;
    std::atomic<std::uint32_t> unused_tail_;
    std::atomic<std::uint64_t> next_seq;
    std::atomic<std::uint64_t> cached_head;  // senders' last look at head: saves a cache miss per send
    std::atomic<std::uint64_t> last_record;  // where the last record a sender began to commit starts

    alignas(64) sync::robust_mutex recv_lock;

    alignas(64) std::atomic<std::uint64_t> head;
    std::atomic<std::uint32_t> head_tick;
    std::atomic<std::uint32_t> unused_head_;
    std::atomic<std::uint64_t> taken;

    // Who sleeps: written only by waiters on their way to sleep and back.
    alignas(64) sync::waiter_set data_waiters;   // receivers, on tail_tick
    alignas(64) sync::waiter_set space_waiters;  // senders, on head_tick
};

namespace {

static_assert(sizeof(channel::control) <= header_bytes);
static_assert(offsetof(channel::control, send_lock) == 64);
static_assert(offsetof(channel::control, tail) == 128);
static_assert(offsetof(channel::control, recv_lock) == 192);
static_assert(offsetof(channel::control, head) == 256);
static_assert(offsetof(channel::control, data_waiters) == 320);
static_assert(offsetof(channel::control, space_waiters) == 512);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free && std::atomic<std::uint32_t>::is_always_lock_free,
              "atomics in shared memory must be lock-free");

constexpr std::uint32_t kind_message = 1;
constexpr std::uint32_t kind_padding = 2;

struct record {
    std::uint32_t size;
    std::uint32_t kind;
    std::uint64_t seq;
};
static_assert(sizeof(record) == record_header);

// A record header's atomically written words: seq (the spinning receivers'
// commit word) and kind. See "Spinning receivers" in ring.hpp.
std::atomic_ref<std::uint32_t> kind_at(std::byte* ring, std::uint64_t pos) {
    return std::atomic_ref<std::uint32_t>(*std::launder(reinterpret_cast<std::uint32_t*>(ring + pos + 4)));
}
std::atomic_ref<std::uint64_t> seq_at(std::byte* ring, std::uint64_t pos) {
    return std::atomic_ref<std::uint64_t>(*std::launder(reinterpret_cast<std::uint64_t*>(ring + pos + 8)));
}
// Writes a header once the payload is in place: size and kind, then seq last
// (release), so that a receiver that reads the seq it expects (acquire) sees
// the whole record.
void write_header(std::byte* ring, std::uint64_t pos, std::uint32_t size, std::uint32_t kind, std::uint64_t seq) {
    std::memcpy(ring + pos, &size, sizeof size);
    kind_at(ring, pos).store(kind, std::memory_order_relaxed);
    seq_at(ring, pos).store(seq, std::memory_order_release);
}

error corrupted(const std::string& what) {
    return error(exit_code::data, "channel is corrupted: " + what, EBADMSG);
}

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// Holds a robust lock for one scope; counts a recovery.
class held {
public:
    held(sync::robust_mutex& m, std::atomic<std::uint64_t>& recoveries, const deadline& until) : m_(m) {
        auto r = m.lock(until);
        ok_ = r != sync::robust_mutex::outcome::timeout;
        recovered_ = r == sync::robust_mutex::outcome::recovered;
        if (recovered_) recoveries.fetch_add(1, std::memory_order_relaxed);
    }
    /// The previous holder died holding the lock.
    bool recovered() const { return recovered_; }
    ~held() {
        if (ok_) m_.unlock();
    }
    held(const held&) = delete;
    held& operator=(const held&) = delete;
    explicit operator bool() const { return ok_; }
    void release() {
        if (ok_) m_.unlock();
        ok_ = false;
    }
    void keep() { ok_ = false; }  // ownership passes to a reservation

private:
    sync::robust_mutex& m_;
    bool ok_;
    bool recovered_ = false;
};

} // namespace

void channel::format(std::span<std::byte> region, std::uint64_t capacity, std::uint64_t max_msg) {
    capacity = (capacity + 15) & ~std::uint64_t{15};
    if (region.size() < region_size(capacity)) throw error(exit_code::internal, "channel region too small");
    if (max_msg == 0 || max_msg > largest_message(capacity))
        throw usage_error(fmt::format("a largest message of {} bytes does not fit a ring of {} bytes (at most {})",
                                      max_msg, capacity, largest_message(capacity)));
    std::memset(region.data(), 0, header_bytes);
    auto* c = new (region.data()) control;
    c->version = version;
    c->header = header_bytes;
    c->capacity = capacity;
    c->max_msg = max_msg;
    c->created_ns = now_ns();
    c->sender_recoveries.store(0);
    c->receiver_recoveries.store(0);
    c->send_lock.init();
    c->recv_lock.init();
    c->tail.store(0);
    c->tail_tick.store(0);

    c->next_seq.store(1);
    c->cached_head.store(0);
    c->last_record.store(0);
    c->head.store(0);
    c->head_tick.store(0);

    c->taken.store(0);
    // The magic last (release): a reader that sees it sees a formatted channel.
    std::atomic_ref<std::uint64_t>(c->magic).store(magic, std::memory_order_release);
}

bool channel::looks_like_channel(std::span<const std::byte> region) {
    if (region.size() < sizeof(std::uint64_t)) return false;
    std::uint64_t m;
    std::memcpy(&m, region.data(), sizeof m);
    return m == magic;
}

channel::channel(std::span<std::byte> region) {
    if (region.size() < header_bytes || !looks_like_channel(region))
        throw error(exit_code::data, "not a channel (no channel header)", EBADMSG);
    c_ = std::launder(reinterpret_cast<control*>(region.data()));
    if (c_->version != version) throw corrupted(fmt::format("unknown version {}", c_->version));
    if (c_->header != header_bytes || c_->capacity == 0 || c_->capacity % 16 != 0 ||
        region_size(c_->capacity) > region.size())
        throw corrupted(fmt::format("capacity {} does not match the segment's {} bytes", c_->capacity, region.size()));
    if (c_->max_msg == 0 || c_->max_msg > largest_message(c_->capacity))
        throw corrupted(fmt::format("largest message {} does not fit capacity {}", c_->max_msg, c_->capacity));
    std::uint64_t h = c_->head.load(std::memory_order_acquire), t = c_->tail.load(std::memory_order_acquire);
    // head may pass tail: records a sender wrote whole and a spinning
    // receiver took before the sender died without moving tail.
    if ((t >= h ? t - h : h - t) > c_->capacity || h % 16 != 0 || t % 16 != 0)
        throw corrupted(fmt::format("head {} and tail {} are inconsistent", h, t));
    ring_ = region.data() + header_bytes;
    capacity_ = c_->capacity;
    if ((capacity_ & (capacity_ - 1)) == 0) mask_ = capacity_ - 1;
}

std::uint64_t channel::max_msg() const { return c_->max_msg; }

// head only grows: if the last value senders saw leaves room, there is room,
// and the receivers' cache line need not be fetched.
inline bool channel::room_seen(std::uint64_t tail, std::uint64_t need) const {
    return capacity_ - (tail - c_->cached_head.load(std::memory_order_relaxed)) >= need;
}

// Looks at head (caching what it saw for room_seen) and waits until there is room.
bool channel::wait_for_room(std::uint64_t tail, std::uint64_t need, const deadline& until, sync::wait_mode mode) {
    for (;;) {
        // The tick first: a take that lands after this read changes it.
        std::uint32_t tick = c_->head_tick.load(std::memory_order_acquire);
        std::uint64_t head = c_->head.load(std::memory_order_acquire);
        c_->cached_head.store(head, std::memory_order_relaxed);
        if (capacity_ - (tail - head) >= need) return true;
        if (!sync::wait_while_equal(c_->head_tick, tick, c_->space_waiters, mode, until)) return false;
    }
}

// With the sender lock held: makes room for a record of n payload bytes at
// tail, writing a padding record first when it would wrap (not published
// until tail moves, so a crash here leaves nothing). Moves tail to where the
// record goes; false when no room came before the deadline.
// Ring bytes a record of n payload bytes needs at tail: the record, and the
// padding before it when it would wrap.
inline std::uint64_t channel::need_at(std::uint64_t tail, std::size_t n) const {
    std::uint64_t rec = record_size(n);
    std::uint64_t to_end = capacity_ - off(tail);
    return rec + (to_end < rec ? to_end : 0);
}

// With the sender lock held: makes room for a record of n payload bytes at
// tail, writing a padding record first when it would wrap (not published
// until tail moves, so a crash here leaves nothing). Moves tail to where the
// record goes; false when no room came before the deadline.
[[gnu::always_inline]] inline bool channel::make_room(std::uint64_t& tail, std::size_t n, const deadline& until, sync::wait_mode mode) {
    std::uint64_t rec = record_size(n);
    std::uint64_t pos = off(tail);
    std::uint64_t to_end = capacity_ - pos;
    std::uint64_t need = need_at(tail, n);
    if (!room_seen(tail, need) && !wait_for_room(tail, need, until, mode)) return false;
    if (to_end < rec) {
        // A padding carries the seq of the message after it (for spinning
        // receivers); it is committed with that message's tail.
        write_header(ring_, pos, static_cast<std::uint32_t>(to_end - record_header), kind_padding,
                     c_->next_seq.load(std::memory_order_relaxed));
        fault::point("ring.send.padded");
        tail += to_end;
    }
    return true;
}

// With the sender lock held and room made: copies payload into the record at
// tail, unpublished. The bytes past the header's cache line go first, so
// that the header's line, which a spinning receiver keeps reading, is
// written in one burst at the end (the payload's start, then the header).
[[gnu::always_inline]] inline void channel::write_payload(std::uint64_t tail, std::string_view payload) {
    std::byte* rec = ring_ + off(tail);
    std::byte* dst = rec + record_header;
    std::size_t n = payload.size();
    if (n) {
        auto line_end = (reinterpret_cast<std::uintptr_t>(rec) | 63) + 1;
        std::size_t first = std::min<std::size_t>(n, line_end - reinterpret_cast<std::uintptr_t>(dst));
        // All on the header's line, or none: any split serves the fault point.
        if (first == n || first == 0) first = n / 2;
        // The rest, then the fault point (a sender killed mid-copy), then the start.
        std::memcpy(dst + first, payload.data() + first, n - first);
        fault::point("ring.send.mid_copy");
        std::memcpy(dst, payload.data(), first);
    }
}

// The next sequence number a sender will use, as committed: next_seq, or one
// more when a sender died between committing its record (tail) and counting
// it (next_seq). Read with the sender lock held, or for stat.
std::uint64_t channel::committed_next_seq() const {
    std::uint64_t next = c_->next_seq.load(std::memory_order_acquire);
    std::uint64_t t = c_->tail.load(std::memory_order_acquire);
    std::uint64_t last = c_->last_record.load(std::memory_order_relaxed);
    if (last < t && t - last <= capacity_ && last % 16 == 0) {
        record r;
        std::memcpy(&r, ring_ + off(last), sizeof r);
        if (r.kind == kind_message && r.seq == next && r.size <= c_->max_msg && last + record_size(r.size) == t)
            return next + 1;
    }
    return next;
}

// With the sender lock taken over from a dead holder: count a record it
// committed but did not count.
void channel::repair_seq() {
    std::uint64_t next = committed_next_seq();
    // A spinning receiver may have taken records the dead sender wrote
    // whole (seq written, last) without moving tail: move tail past them.
    std::uint64_t tail = c_->tail.load(std::memory_order_relaxed), head = c_->head.load(std::memory_order_acquire);
    for (int i = 0; i < 2 && tail < head; ++i) {
        std::uint64_t pos = off(tail), to_end = capacity_ - pos;
        std::uint64_t seq = seq_at(ring_, pos).load(std::memory_order_acquire);
        std::uint32_t kind = kind_at(ring_, pos).load(std::memory_order_relaxed);
        std::uint32_t size;
        std::memcpy(&size, ring_ + pos, sizeof size);
        if (kind == kind_padding && seq == next && size + record_header == to_end) {
            tail += to_end;
        } else if (kind == kind_message && seq == next && size <= c_->max_msg && record_size(size) <= to_end) {
            tail += record_size(size);
            ++next;
        } else {
            break;
        }
    }
    c_->tail.store(tail, std::memory_order_release);
    c_->next_seq.store(next, std::memory_order_relaxed);
}

std::optional<channel::reservation> channel::reserve(std::size_t n, const deadline& until, sync::wait_mode mode) {
    if (n > c_->max_msg) throw too_large(n);
    held lock(c_->send_lock, c_->sender_recoveries, until);
    if (!lock) return std::nullopt;
    if (lock.recovered()) repair_seq();
    std::uint64_t tail = c_->tail.load(std::memory_order_relaxed);  // ours: we hold the sender lock
    if (!make_room(tail, n, until, mode)) return std::nullopt;
    lock.keep();
    return reservation(this, tail, std::span<std::byte>(ring_ + off(tail) + record_header, n));
}

error channel::too_large(std::size_t n) const {
    return error(exit_code::data,
                 fmt::format("message of {} bytes is over the channel's largest message ({} bytes); nothing sent", n,
                             c_->max_msg),
                 EMSGSIZE);
}

[[gnu::always_inline]] inline std::uint64_t channel::publish(std::uint64_t tail, std::size_t n, std::memory_order tick_order) {
    std::uint64_t seq = c_->next_seq.load(std::memory_order_relaxed);
    write_header(ring_, off(tail), static_cast<std::uint32_t>(n), kind_message, seq);
    fault::point("ring.send.before_commit");
    c_->last_record.store(tail, std::memory_order_relaxed);
    // The commit point: the record's bytes happen-before any receiver's read.
    c_->tail.store(tail + record_size(n), std::memory_order_release);
    fault::point("ring.send.committed");
    // After the commit: a sender killed before this leaves next_seq one
    // behind, which the next sender repairs (see repair_seq), rather than a
    // number skipped.
    c_->next_seq.store(seq + 1, std::memory_order_relaxed);
    c_->tail_tick.store(c_->tail_tick.load(std::memory_order_relaxed) + 1, tick_order);
    fault::point("ring.send.after_commit");
    return seq;
}

channel::reservation::reservation(reservation&& o) noexcept : ch_(o.ch_), tail_(o.tail_), data_(o.data_) {
    o.ch_ = nullptr;
}

channel::reservation::~reservation() {
    if (ch_) ch_->c_->send_lock.unlock();  // nothing published
}

std::uint64_t channel::reservation::commit(std::size_t n) {
    if (!ch_) throw error(exit_code::internal, "reservation committed twice");
    if (n > data_.size()) throw error(exit_code::internal, "commit larger than the reservation");
    channel* ch = ch_;
    ch_ = nullptr;
    std::uint64_t seq = ch->publish(tail_, n, std::memory_order_seq_cst);
    ch->c_->send_lock.unlock();
    sync::wake_if_waiting(ch->c_->tail_tick, ch->c_->data_waiters, 1);
    return seq;
}

bool channel::send(std::string_view payload, const deadline& until, sync::wait_mode mode) {
    std::size_t n = payload.size();
    if (n > c_->max_msg) throw too_large(n);
    held lock(c_->send_lock, c_->sender_recoveries, until);
    if (!lock) return false;
    if (lock.recovered()) repair_seq();
    std::uint64_t tail = c_->tail.load(std::memory_order_relaxed);  // ours: we hold the sender lock
    if (!make_room(tail, n, until, mode)) return false;
    write_payload(tail, payload);
    publish(tail, n, std::memory_order_seq_cst);
    lock.release();
    sync::wake_if_waiting(c_->tail_tick, c_->data_waiters, 1);
    return true;
}

std::size_t channel::send_many(std::span<const std::string_view> payloads, const deadline& until,
                               sync::wait_mode mode) {
    for (auto p : payloads)
        if (p.size() > c_->max_msg) throw too_large(p.size());
    if (payloads.empty()) return 0;
    held lock(c_->send_lock, c_->sender_recoveries, until);
    if (!lock) return 0;
    if (lock.recovered()) repair_seq();
    std::uint64_t tail = c_->tail.load(std::memory_order_relaxed);
    std::size_t sent = 0, woken = 0;
    // Wakes receivers for what was committed since the last call: one full
    // barrier orders the tick stores before the look at the waiter count
    // (see wake_if_waiting).
    auto wake = [&] {
        sync::full_barrier();
        if (sent > woken)
            sync::wake_if_waiting(c_->tail_tick, c_->data_waiters,
                                  static_cast<int>(std::min<std::size_t>(sent - woken, INT32_MAX)));
        woken = sent;
    };
    for (auto p : payloads) {
        // About to wait for room: receivers asleep must hear of what is
        // already there first, or both sides would wait for each other.
        if (sent > woken) {
            std::uint64_t need = need_at(tail, p.size());
            // The cached head first: no cache miss while there is room.
            if (!room_seen(tail, need) && capacity_ - (tail - c_->head.load(std::memory_order_acquire)) < need)
                wake();
        }
        if (!make_room(tail, p.size(), until, mode)) break;
        write_payload(tail, p);
        // Each message is committed on its own (a release store: no barrier),
        // so receivers start on it at once and a crash loses none committed.
        publish(tail, p.size(), std::memory_order_release);
        tail += record_size(p.size());
        ++sent;
    }
    lock.release();
    wake();
    return sent;
}

// Spin mode, when this object took the record before head (so it knows the
// seq that comes next): takes the record at head as soon as it is written
// whole, before its sender moves tail, reading no line of the senders'.
// Holding the receiver lock, it reads the slot's seq (acquire) until it is
// the one expected: senders store it last (release), so the record is then
// whole, and no earlier record had that seq. While spinning it also asks
// for the record's second cache line (a prefetch), so that a 64-byte
// message's last bytes come with the first. Returns 1, or 0 on timeout or
// when another receiver moved head meanwhile.
std::size_t channel::take_spinning(take_fn fn, void* ctx, const deadline& until) {
    held lock(c_->recv_lock, c_->receiver_recoveries, until);
    if (!lock) return 0;
    const std::uint64_t first = c_->head.load(std::memory_order_relaxed);  // ours: we hold the lock
    if (first != known_end_.load(std::memory_order_relaxed)) return 0;
    const std::uint64_t expected = known_seq_.load(std::memory_order_relaxed) + 1;
    std::uint64_t head = first;
    struct look {
        std::byte* ring;
        std::uint64_t pos, expected;
        const std::byte* second;
        std::uint32_t kind;
    };
    auto ready = [](const void* p) {
        auto* x = static_cast<look*>(const_cast<void*>(p));
        __builtin_prefetch(x->second);
        if (seq_at(x->ring, x->pos).load(std::memory_order_acquire) != x->expected) return false;
        x->kind = kind_at(x->ring, x->pos).load(std::memory_order_relaxed);
        return true;
    };
    // head, then the tick with a seq_cst read-modify-write (the one locked
    // instruction a take needs beyond the lock's): it comes before the look
    // at the waiter count in the single total order, as a waiter's
    // registration comes before its look at the tick (see wake_if_waiting).
    auto note_head = [&] {
        c_->head.store(head, std::memory_order_release);
        c_->head_tick.fetch_add(1, std::memory_order_seq_cst);
        known_end_.store(head, std::memory_order_relaxed);
    };
    auto wake_senders = [&] { sync::wake_if_waiting(c_->head_tick, c_->space_waiters, INT32_MAX); };
    for (int hop = 0; hop < 2; ++hop) {  // a padding, then the message
        std::uint64_t pos = off(head), to_end = capacity_ - pos;
        look l{ring_, pos, expected, ring_ + (to_end > 64 ? pos + 64 : 0), 0};
        if (!sync::spin_until(ready, &l, sync::wait_mode::spin, until)) {
            if (head == first) return 0;
            note_head();  // the padding skipped stays skipped
            lock.release();
            wake_senders();
            return 0;
        }
        std::uint32_t size;
        std::memcpy(&size, ring_ + pos, sizeof size);
        if (l.kind == kind_padding) {
            if (size + record_header != to_end)
                throw corrupted(fmt::format("padding at offset {} does not reach the end", pos));
            head += to_end;
            continue;
        }
        if (l.kind != kind_message || size > c_->max_msg || record_size(size) > to_end)
            throw corrupted(fmt::format("bad record at offset {} (kind {}, size {})", pos, l.kind, size));
        fn(ctx, expected, std::string_view(reinterpret_cast<const char*>(ring_ + pos + record_header), size));
        fault::point("ring.recv.before_take");
        head += record_size(size);
        note_head();
        known_seq_.store(expected, std::memory_order_relaxed);
        fault::point("ring.recv.after_take");
        lock.release();
        wake_senders();
        return 1;
    }
    throw corrupted(fmt::format("two paddings in a row at offset {}", off(first)));
}

std::size_t channel::take(std::size_t max, take_fn fn, void* ctx, const deadline& until, sync::wait_mode mode) {
    if (mode == sync::wait_mode::spin &&
        known_end_.load(std::memory_order_relaxed) == c_->head.load(std::memory_order_acquire)) {
        std::size_t got = take_spinning(fn, ctx, until);
        if (got || until.expired()) return got;
    }
    for (;;) {
        std::uint32_t tick = c_->tail_tick.load(std::memory_order_acquire);
        // Empty at a glance: wait without touching the receiver lock.
        if (c_->head.load(std::memory_order_acquire) >= c_->tail.load(std::memory_order_acquire)) {
            if (!sync::wait_while_equal(c_->tail_tick, tick, c_->data_waiters, mode, until)) return 0;
            continue;
        }
        std::size_t got = 0;
        bool moved = false;
        {
            held lock(c_->recv_lock, c_->receiver_recoveries, until);
            if (!lock) return 0;
            const std::uint64_t first = c_->head.load(std::memory_order_relaxed);  // ours: we hold the lock
            std::uint64_t head = first;
            std::uint64_t tail = c_->tail.load(std::memory_order_acquire);
            while (got < max) {
                if (head >= tail) {
                    // Messages committed meanwhile join this batch.
                    if (got == 0 || (tail = c_->tail.load(std::memory_order_acquire)) == head) break;
                }
                if (tail - head > capacity_ || head % 16 != 0)
                    throw corrupted(fmt::format("head {} and tail {} are inconsistent", head, tail));
                std::uint64_t pos = off(head);
                record r;
                std::memcpy(&r, ring_ + pos, sizeof r);
                std::uint64_t to_end = capacity_ - pos;
                if (r.kind == kind_padding) {
                    if (r.size + record_header != to_end)
                        throw corrupted(fmt::format("padding at offset {} does not reach the end", pos));
                    head += to_end;
                    continue;
                }
                if (r.kind != kind_message || r.size > c_->max_msg || record_size(r.size) > to_end ||
                    record_size(r.size) > tail - head)
                    throw corrupted(fmt::format("bad record at offset {} (kind {}, size {})", pos, r.kind, r.size));
                fn(ctx, r.seq, std::string_view(reinterpret_cast<const char*>(ring_ + pos + record_header), r.size));
                fault::point("ring.recv.before_take");
                // The take point, one per message: after it the space may be
                // reused, and a receiver killed later loses only this one.
                head += record_size(r.size);
                c_->head.store(head, std::memory_order_release);
                known_end_.store(head, std::memory_order_relaxed);
                known_seq_.store(r.seq, std::memory_order_relaxed);
                fault::point("ring.recv.after_take");
                // A release store, no barrier: a sender spinning for room
                // goes on while this burst continues.
                c_->head_tick.store(c_->head_tick.load(std::memory_order_relaxed) + 1, std::memory_order_release);
                ++got;
            }
            if (c_->head.load(std::memory_order_relaxed) != head) {
                // Only padding was skipped: record that, so nobody skips it again.
                if (known_end_.load(std::memory_order_relaxed) == first) known_end_.store(head, std::memory_order_relaxed);
                c_->head.store(head, std::memory_order_release);
                c_->head_tick.store(c_->head_tick.load(std::memory_order_relaxed) + 1, std::memory_order_release);
            }
            moved = head != first;
        }
        if (moved) {
            // One full barrier per burst: the tick stores above are ordered
            // before the look at the waiter count (see wake_if_waiting).
            sync::full_barrier();
            sync::wake_if_waiting(c_->head_tick, c_->space_waiters, INT32_MAX);
        }
        if (got) return got;
        if (!sync::wait_while_equal(c_->tail_tick, tick, c_->data_waiters, mode, until)) return 0;
    }
}

std::optional<std::uint64_t> channel::receive_into(std::string& out, const deadline& until, sync::wait_mode mode) {
    struct ctx {
        std::string* out;
        std::uint64_t seq;
    } c{&out, 0};
    auto copy = [](void* p, std::uint64_t seq, std::string_view data) {
        auto* x = static_cast<ctx*>(p);
        x->out->assign(data);
        x->seq = seq;
    };
    if (!take(1, copy, &c, until, mode)) return std::nullopt;
    return c.seq;
}

std::optional<channel::message> channel::receive(const deadline& until, sync::wait_mode mode) {
    message m;
    auto seq = receive_into(m.data, until, mode);
    if (!seq) return std::nullopt;
    m.seq = *seq;
    return m;
}

stats channel::stat() const {
    stats s;
    s.capacity = capacity_;
    s.max_msg = c_->max_msg;
    std::uint64_t head = c_->head.load(std::memory_order_acquire);
    std::uint64_t tail = c_->tail.load(std::memory_order_acquire);
    s.used_bytes = tail >= head ? tail - head : 0;
    s.sent = committed_next_seq() - 1;
    // The oldest record's own sequence number says how many were taken: no
    // separate counter that a receiver killed between two stores could skew.
    s.taken = s.sent;
    for (std::uint64_t h = head; h < tail && tail - h <= capacity_;) {
        record r;
        std::memcpy(&r, ring_ + off(h), sizeof r);
        if (r.kind == kind_padding) {
            h += capacity_ - off(h);
            continue;
        }
        if (r.kind == kind_message && r.seq >= 1 && r.seq <= s.sent + 1) s.taken = r.seq - 1;
        break;
    }
    s.messages = s.sent - std::min(s.taken, s.sent);
    s.senders_waiting = c_->space_waiters.count_alive();
    s.receivers_waiting = c_->data_waiters.count_alive();
    s.stale_waiters = c_->space_waiters.count_dead() + c_->data_waiters.count_dead();
    s.sender_recoveries = c_->sender_recoveries.load(std::memory_order_relaxed);
    s.receiver_recoveries = c_->receiver_recoveries.load(std::memory_order_relaxed);
    s.created_ns = c_->created_ns;
    return s;
}

} // namespace ipc::ring
