// SPDX-License-Identifier: MIT
// The local mailbox backend: one file mapped MAP_SHARED by every sender and
// receiver (in /dev/shm, or in a directory of the user's choice for a
// mailbox that outlives a reboot). No server: the processes share the work.
//
// File layout (offsets in bytes):
//
//     0      header: identity and limits (fixed at create), the lock, the
//            log's state, two futex words on their own cache lines (news:
//            receivers sleep on it; space: senders sleep on it), their
//            waiter sets, and the undo log
//     4096   index: one u64 per slot, the ring position of message seq
//            at slot seq % nslots
//     groups 32 group slots: name, subscription, cursor, counters, and a
//            table of 128 outstanding entries (leased: delivered with --ack,
//            not acknowledged yet; held: addressed to a receiver that has
//            not taken it)
//     ring   max_bytes of 8-aligned records, positions counted in bytes
//            ever written (a record never wraps: a padding record fills the
//            end of the ring)
//
// Every change to the header, the groups and the records' flags happens
// under one robust, process-shared mutex (sync::robust_mutex), inside a
// transaction: before a field is changed, its old value goes into the undo
// log (a release store of the log's count, then a release store of the
// field, so whoever sees the new value sees its undo entry); a transaction
// commits by storing the count 0. A process killed in the middle leaves its
// log behind; the next process to take the lock (the mutex reports that its
// holder died) rolls the changes back, so the mailbox is always in the state
// of a whole number of operations. A record's bytes are written into free
// space before the transaction that commits them, so a rolled-back send
// leaves nothing visible: a sender killed at any point never leaves a torn
// message, and the seq it would have used goes to the next message.
//
// Receivers copy messages out under the lock; the futex words are
// sync::wait_while_equal words, so a receiver that finds nothing sleeps
// without a lost wake-up, and a sender makes the wake-up system call only
// when someone sleeps.
#include "ipc/mbox.hpp"

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstring>
#include <ctime>

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "ipc/codec.hpp"
#include "ipc/error.hpp"
#include "ipc/fault.hpp"
#include "ipc/proc.hpp"
#include "ipc/shm.hpp"

namespace ipc::mbox::local {
namespace {

constexpr std::uint64_t file_magic = 0x31584f424d435049ull;  // "IPCMBOX1"
constexpr std::uint32_t file_version = 1;
constexpr std::size_t header_bytes = 4096;
constexpr int max_groups = 32;
constexpr int max_outstanding = 128;
constexpr int undo_capacity = 120;
constexpr std::uint64_t rendezvous_slots = 1024;
constexpr std::uint64_t max_slots = std::uint64_t{1} << 24;
constexpr std::size_t max_label = 255;  // --as, --topic, --to of a message

struct undo_entry {
    std::uint64_t offset;
    std::uint64_t old;
    std::uint32_t size;
    std::uint32_t pad;
};

struct header {
    // identity and limits: written once, by create
    std::uint64_t magic;
    std::uint32_t version, header_size;
    std::uint64_t max_msgs, ring_bytes, max_msg_size, nslots;
    std::uint64_t index_off, groups_off, ring_off, file_size;
    std::uint32_t overflow, sync;
    std::int64_t created_ns;

    alignas(64) sync::robust_mutex lock;

    // the log (under the lock)
    alignas(64) std::uint64_t next_seq;  // the seq the next message gets
    std::uint64_t first_seq;             // the oldest retained (== next_seq when empty)
    std::uint64_t head_pos, tail_pos;    // ring positions of first_seq's record, and of the free space
    std::uint64_t msgs;
    std::uint64_t sent, dropped, withdrawn, recoveries;

    alignas(64) std::atomic<std::uint32_t> news;   // a message sent, or an outstanding entry freed
    alignas(64) std::atomic<std::uint32_t> space;  // a message freed or taken
    alignas(64) sync::waiter_set recv_waiters;
    alignas(64) sync::waiter_set send_waiters;

    alignas(64) std::uint32_t undo_count;
    std::uint32_t undo_pad;
    undo_entry undo[undo_capacity];
};
static_assert(sizeof(header) <= header_bytes);

enum : std::uint32_t { entry_free = 0, entry_leased = 1, entry_held = 2 };
enum : std::uint32_t { entry_watch_holder = 1, entry_dead_lettering = 2 };

struct out_entry {
    std::uint64_t seq, lease_until_ns, holder_start;
    std::uint32_t deliveries, state;
    std::int32_t holder_pid;
    std::uint32_t flags;
    char holder[32];
};

// Seqs the group's cursor passed without a delivery, since its last
// delivery: handed to the receiver that gets the next message. Consecutive
// entries are contiguous; when the table is full the last one grows (reason
// "several").
struct skip_entry {
    std::uint64_t first, last;
    std::uint32_t reason, pad;
};
constexpr int max_skips = 16;
enum : std::uint32_t { skip_filtered = 1, skip_addressed, skip_dropped, skip_withdrawn, skip_several };

std::string_view skip_reason(std::uint32_t r) {
    switch (r) {
    case skip_filtered: return "filtered";
    case skip_addressed: return "addressed";
    case skip_dropped: return "dropped";
    case skip_withdrawn: return "withdrawn";
    default: return "several";
    }
}

struct alignas(64) group_slot {
    std::uint32_t active, new_only;
    std::uint64_t cursor;  // every seq below it was passed by the group
    std::uint64_t delivered, redelivered, acked, filtered, dropped, dead_lettered;
    std::uint64_t held, pending;
    std::int64_t created_ns;
    std::atomic<std::int32_t> waiting_pid[8];
    char name[64], topic[128], from[64];
    std::uint32_t nskips, skips_pad;
    skip_entry skips[max_skips];
    out_entry out[max_outstanding];
};

struct rec_hdr {
    std::uint32_t size;  // whole record, 8-aligned
    std::uint16_t kind;  // rec_message or rec_pad
    std::uint16_t flags; // rec_withdrawn
    std::uint64_t seq, ts_ns, origin_seq;
    std::int32_t pid;
    std::uint32_t uid;
    std::uint32_t data_len, crc;
    std::uint16_t name_len, topic_len, to_len, pad;
};
static_assert(sizeof(rec_hdr) == 56);
enum : std::uint16_t { rec_message = 0x4d31, rec_pad = 0x5031 };
enum : std::uint16_t { rec_withdrawn = 1 };

constexpr std::uint64_t align_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }

std::int64_t wall_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

std::string body(const std::string& name) { return name.starts_with('/') ? name.substr(1) : name; }

std::string dir_of(const location& where) { return where.dir.empty() ? shm::shm_dir() : where.dir; }

unique_fd open_dir(const location& where) {
    std::string d = dir_of(where);
    unique_fd fd(::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd) throw system_error(errno, "open", "directory", d);
    return fd;
}

void copy_label(char* dst, std::size_t cap, std::string_view src) {
    std::memset(dst, 0, cap);
    std::memcpy(dst, src.data(), std::min(src.size(), cap - 1));
}

std::string_view label(const char* s, std::size_t cap) { return {s, ::strnlen(s, cap)}; }

struct layout {
    std::uint64_t nslots, index_off, groups_off, ring_off, ring_bytes, file_size;
};

layout layout_for(std::uint64_t max_msgs, std::uint64_t max_bytes) {
    layout l{};
    l.nslots = max_msgs ? max_msgs : rendezvous_slots;
    l.index_off = header_bytes;
    l.groups_off = align_up(l.index_off + l.nslots * 8, 64);
    l.ring_off = align_up(l.groups_off + max_groups * sizeof(group_slot), 4096);
    l.ring_bytes = align_up(max_bytes, 64);
    l.file_size = l.ring_off + l.ring_bytes;
    return l;
}

[[noreturn]] void corrupted(const std::string& name, std::string_view what) {
    throw data_error(fmt::format("mailbox '{}' is corrupted: {}", name, what));
}

// ------------------------------------------------------------- the mailbox --

class local_mailbox final : public mailbox {
public:
    local_mailbox(location where, std::string path, unique_fd fd, void* base, std::size_t size)
        : where_(std::move(where)), path_(std::move(path)), fd_(std::move(fd)), base_(static_cast<std::byte*>(base)),
          size_(size), h_(reinterpret_cast<header*>(base)) {
        validate_layout();
        index_ = reinterpret_cast<std::uint64_t*>(base_ + h_->index_off);
        groups_ = reinterpret_cast<group_slot*>(base_ + h_->groups_off);
        ring_ = base_ + h_->ring_off;
        locked l(*this);  // rolls back what a dead process left, checks the state
    }
    ~local_mailbox() override { ::munmap(base_, size_); }

    send_result send(std::span<const outgoing> msgs, const send_options& opt) override;
    std::size_t recv(const recv_options& opt, const std::function<void(message&)>& fn) override;
    std::size_t ack(const std::string& group, std::span<const std::uint64_t> seqs) override;
    void release(const std::string& group, std::uint64_t seq) override;
    void renew(const std::string& group, std::uint64_t seq, std::chrono::milliseconds lease) override;
    mailbox_stat stat() override;
    bool remove_group(const std::string& group) override;
    std::uint64_t change_count() override {
        return (std::uint64_t{h_->news.load(std::memory_order_acquire)} << 32) |
               h_->space.load(std::memory_order_acquire);
    }
    bool wait_change(std::uint64_t seen, const deadline& until) override;

private:
    // ---- locking and transactions
    struct locked {
        local_mailbox& m;
        explicit locked(local_mailbox& mb) : m(mb) {
            if (m.h_->lock.lock(deadline::never()) == sync::robust_mutex::outcome::recovered) m.recover();
            try {
                m.check_state();
            } catch (...) {
                m.h_->lock.unlock();
                throw;
            }
        }
        ~locked() { m.h_->lock.unlock(); }
        locked(const locked&) = delete;
        locked& operator=(const locked&) = delete;
    };

    class txn {
    public:
        explicit txn(local_mailbox& m) : m_(m) {}
        ~txn() {
            if (!done_) m_.rollback();
        }
        txn(const txn&) = delete;
        txn& operator=(const txn&) = delete;
        template <class T>
        void set(T& field, T value) {
            static_assert(sizeof(T) == 4 || sizeof(T) == 8);
            header* h = m_.h_;
            std::uint32_t n = h->undo_count;
            if (n >= undo_capacity) throw error(exit_code::internal, "mailbox transaction too large");
            auto& e = h->undo[n];
            e.offset = static_cast<std::uint64_t>(reinterpret_cast<std::byte*>(&field) - m_.base_);
            e.size = sizeof(T);
            e.old = 0;
            std::memcpy(&e.old, &field, sizeof(T));
            std::atomic_ref<std::uint32_t>(h->undo_count).store(n + 1, std::memory_order_release);
            fault::point("mbox.txn.logged");
            std::atomic_ref<T>(field).store(value, std::memory_order_release);
            fault::point("mbox.txn.set");
        }
        void commit() {
            fault::point("mbox.txn.commit");
            std::atomic_ref<std::uint32_t>(m_.h_->undo_count).store(0, std::memory_order_release);
            done_ = true;
        }

    private:
        local_mailbox& m_;
        bool done_ = false;
    };

    void rollback() {
        for (std::uint32_t i = h_->undo_count; i-- > 0;) {
            const auto& e = h_->undo[i];
            if (e.offset + e.size > size_ || (e.size != 4 && e.size != 8)) corrupted(where_.name, "undo log");
            std::memcpy(base_ + e.offset, &e.old, e.size);
        }
        std::atomic_ref<std::uint32_t>(h_->undo_count).store(0, std::memory_order_release);
    }

    void recover() {
        if (h_->undo_count > undo_capacity) corrupted(where_.name, "undo log");
        rollback();
        h_->recoveries++;
    }

    void validate_layout() const {
        if (size_ < header_bytes) corrupted(where_.name, "shorter than its header");
        if (h_->magic != file_magic) throw data_error(fmt::format("'{}' is not a mailbox of ipc-mbox", where_.name));
        if (h_->version != file_version)
            throw data_error(fmt::format("mailbox '{}' has layout version {}, this ipc-mbox reads {}", where_.name,
                                         h_->version, file_version));
        auto l = layout_for(h_->max_msgs, h_->ring_bytes);
        if (h_->max_msgs > max_slots || h_->nslots != l.nslots || h_->index_off != l.index_off ||
            h_->groups_off != l.groups_off || h_->ring_off != l.ring_off || h_->file_size != l.file_size ||
            h_->file_size != size_ || h_->ring_bytes == 0 || h_->max_msg_size == 0 ||
            h_->max_msg_size + 1024 > h_->ring_bytes || h_->overflow > 1 || h_->sync > 1)
            corrupted(where_.name, "its header does not match its size");
    }

    void check_state() const {
        const header& h = *h_;
        if (h.first_seq < 1 || h.first_seq > h.next_seq || h.next_seq - h.first_seq != h.msgs || h.msgs > h.nslots ||
            h.head_pos > h.tail_pos || h.tail_pos - h.head_pos > h.ring_bytes || h.undo_count != 0)
            corrupted(where_.name, "inconsistent log state");
        for (int g = 0; g < max_groups; ++g) {
            const auto& s = groups_[g];
            if (s.active > 1) corrupted(where_.name, "group table");
            if (s.active && s.cursor > h.next_seq) corrupted(where_.name, fmt::format("group {} ahead of the log", g));
        }
    }

    // ---- records
    const rec_hdr& record_at(std::uint64_t pos) const {
        std::uint64_t phys = pos % h_->ring_bytes;
        if (phys % 8 || phys + sizeof(rec_hdr) > h_->ring_bytes) corrupted(where_.name, "record position");
        const auto* r = reinterpret_cast<const rec_hdr*>(ring_ + phys);
        if (r->kind != rec_message || r->size < sizeof(rec_hdr) || r->size % 8 || phys + r->size > h_->ring_bytes ||
            sizeof(rec_hdr) + std::uint64_t{r->name_len} + r->topic_len + r->to_len + r->data_len > r->size)
            corrupted(where_.name, fmt::format("record header at ring offset {}", phys));
        return *r;
    }

    const rec_hdr& record(std::uint64_t seq) const {
        if (seq < h_->first_seq || seq >= h_->next_seq)
            throw error(exit_code::internal, fmt::format("seq {} is not retained", seq));
        const rec_hdr& r = record_at(index_[seq % h_->nslots]);
        if (r.seq != seq) corrupted(where_.name, fmt::format("index slot of seq {} holds seq {}", seq, r.seq));
        return r;
    }

    static std::string_view rec_name(const rec_hdr& r) {
        return {reinterpret_cast<const char*>(&r + 1), r.name_len};
    }
    static std::string_view rec_topic(const rec_hdr& r) {
        return {reinterpret_cast<const char*>(&r + 1) + r.name_len, r.topic_len};
    }
    static std::string_view rec_to(const rec_hdr& r) {
        return {reinterpret_cast<const char*>(&r + 1) + r.name_len + r.topic_len, r.to_len};
    }
    static std::string_view rec_data(const rec_hdr& r) {
        return {reinterpret_cast<const char*>(&r + 1) + r.name_len + r.topic_len + r.to_len, r.data_len};
    }
    static std::uint32_t rec_crc(const rec_hdr& r) {
        std::string_view all(reinterpret_cast<const char*>(&r + 1),
                             std::size_t{r.name_len} + r.topic_len + r.to_len + r.data_len);
        std::uint64_t meta[3] = {r.seq, r.ts_ns, (std::uint64_t{static_cast<std::uint32_t>(r.pid)} << 32) | r.uid};
        return codec::crc32c(all, codec::crc32c({reinterpret_cast<const char*>(meta), sizeof meta}));
    }

    // Fills m from a record, reusing m's buffers (a receiver's messages are
    // reused from call to call: no allocation per message once warm).
    void fill_message(const rec_hdr& r, message& m) const {
        if (rec_crc(r) != r.crc) corrupted(where_.name, fmt::format("checksum of seq {}", r.seq));
        m.seq = r.seq;
        m.timestamp_ns = r.ts_ns;
        m.sender.pid = r.pid;
        m.sender.uid = r.uid;
        m.sender.name.assign(rec_name(r));
        m.topic.assign(rec_topic(r));
        m.to.assign(rec_to(r));
        m.data.assign(rec_data(r));
        m.deliveries = 1;
        m.origin_seq = r.origin_seq;
        m.skipped.clear();
    }

    static std::uint64_t record_size(const outgoing& m, std::size_t name_len) {
        return align_up(sizeof(rec_hdr) + name_len + m.topic.size() + m.to.size() + m.data.size(), 8);
    }

    // ---- groups
    int find_group(std::string_view name) const {
        for (int g = 0; g < max_groups; ++g)
            if (groups_[g].active && label(groups_[g].name, sizeof groups_[g].name) == name) return g;
        return -1;
    }

    int open_group(const group_spec& spec) {
        std::string name = spec.effective_name();
        auto too_long = [](std::string_view what, std::string_view v, std::size_t cap) {
            if (v.size() >= cap)
                throw usage_error(fmt::format("{} '{}' is {} bytes; a local mailbox takes at most {}", what, v,
                                              v.size(), cap - 1));
        };
        too_long("group name", name, sizeof group_slot::name);
        too_long("--topic pattern", spec.topic, sizeof group_slot::topic);
        too_long("--from name", spec.from, sizeof group_slot::from);
        int g = find_group(name);
        if (g >= 0) {
            auto& s = groups_[g];
            if (label(s.topic, sizeof s.topic) != spec.topic || label(s.from, sizeof s.from) != spec.from)
                throw usage_error(fmt::format(
                    "group '{}' subscribes to topic '{}' from '{}', not topic '{}' from '{}' (a group's "
                    "subscription is fixed by the receiver that made it; choose another --group)",
                    name, label(s.topic, sizeof s.topic), label(s.from, sizeof s.from), spec.topic, spec.from));
            return g;
        }
        for (g = 0; g < max_groups; ++g)
            if (!groups_[g].active) break;
        if (g == max_groups)
            throw error(exit_code::unavailable,
                        fmt::format("mailbox '{}' has {} groups, the most it can hold; remove one (rm --group)",
                                    where_.name, max_groups));
        auto& s = groups_[g];
        // An inactive slot is not part of the state: it is filled unlogged,
        // and becomes part of it with the one logged store of `active`.
        std::memset(static_cast<void*>(&s), 0, sizeof s);
        copy_label(s.name, sizeof s.name, name);
        copy_label(s.topic, sizeof s.topic, spec.topic);
        copy_label(s.from, sizeof s.from, spec.from);
        s.new_only = spec.new_only;
        s.cursor = spec.new_only ? h_->next_seq : h_->first_seq;
        s.created_ns = wall_ns();
        txn t(*this);
        t.set(s.active, std::uint32_t{1});
        t.commit();
        return g;
    }

    int existing_group(const std::string& name) const {
        int g = find_group(name);
        if (g < 0) throw error(exit_code::no_object, fmt::format("mailbox '{}' has no group '{}'", where_.name, name));
        return g;
    }

    bool matches(const group_slot& s, const rec_hdr& r) const {
        std::string_view from = label(s.from, sizeof s.from);
        if (!from.empty() && rec_name(r) != from) return false;
        return topic_matches(label(s.topic, sizeof s.topic), rec_topic(r));
    }

    int free_entry(const group_slot& s) const {
        for (int i = 0; i < max_outstanding; ++i)
            if (s.out[i].state == entry_free) return i;
        return -1;
    }

    // ---- retention
    // The oldest seq some group still needs: its cursor, or an outstanding entry.
    std::uint64_t floor() const {
        std::uint64_t f = h_->next_seq;
        bool any = false;
        for (int g = 0; g < max_groups; ++g) {
            const auto& s = groups_[g];
            if (!s.active) continue;
            any = true;
            f = std::min(f, s.cursor);
            if (s.held + s.pending)
                for (const auto& e : s.out)
                    if (e.state != entry_free) f = std::min(f, e.seq);
        }
        // No group yet: keep everything for the first one.
        return any ? f : h_->first_seq;
    }

    void free_first(txn& t) {
        t.set(h_->first_seq, h_->first_seq + 1);
        t.set(h_->msgs, h_->msgs - 1);
        t.set(h_->head_pos, h_->msgs ? index_[h_->first_seq % h_->nslots] : h_->tail_pos);
    }

    // Frees what every group is done with; true when something was freed.
    bool free_done() {
        std::uint64_t f = floor();
        if (f <= h_->first_seq) return false;
        while (h_->first_seq < f) {
            txn t(*this);
            free_first(t);
            t.commit();
        }
        return true;
    }

    // drop-oldest: evicts first_seq; groups that had not taken it lose it.
    void evict_oldest() {
        std::uint64_t s = h_->first_seq;
        txn t(*this);
        for (int g = 0; g < max_groups; ++g) {
            auto& gs = groups_[g];
            if (!gs.active || !(gs.held + gs.pending)) continue;
            for (auto& e : gs.out) {
                if (e.state == entry_free || e.seq != s) continue;
                if (e.state == entry_held) t.set(gs.held, gs.held - 1);
                else t.set(gs.pending, gs.pending - 1);
                t.set(gs.dropped, gs.dropped + 1);
                t.set(e.state, std::uint32_t{entry_free});
            }
        }
        free_first(t);
        t.set(h_->dropped, h_->dropped + 1);
        t.commit();
    }

    // ---- sending
    bool fits(std::uint64_t need) const {
        std::uint64_t cap = h_->max_msgs ? std::min(h_->max_msgs, h_->nslots) : h_->nslots;
        if (h_->msgs >= cap) return false;
        std::uint64_t tail = h_->msgs ? h_->tail_pos : align_up(h_->tail_pos, h_->ring_bytes);
        std::uint64_t phys = tail % h_->ring_bytes;
        std::uint64_t pad = phys + need > h_->ring_bytes ? h_->ring_bytes - phys : 0;
        std::uint64_t used = h_->msgs ? h_->tail_pos - h_->head_pos : 0;
        return used + pad + need <= h_->ring_bytes;
    }

    std::uint64_t append(const outgoing& m, const identity& who, std::int64_t ts, std::uint64_t origin_seq) {
        std::uint64_t need = record_size(m, who.name.size());
        txn t(*this);
        std::uint64_t tail = h_->tail_pos;
        if (h_->msgs == 0) {
            tail = align_up(tail, h_->ring_bytes);  // an empty ring starts over at offset 0
            t.set(h_->head_pos, tail);
        }
        std::uint64_t phys = tail % h_->ring_bytes;
        if (phys + need > h_->ring_bytes) {
            auto* pad = reinterpret_cast<rec_hdr*>(ring_ + phys);
            pad->size = static_cast<std::uint32_t>(h_->ring_bytes - phys);
            pad->kind = rec_pad;
            tail += h_->ring_bytes - phys;
            phys = 0;
            if (h_->msgs == 0) t.set(h_->head_pos, tail);
        }
        std::uint64_t seq = h_->next_seq;
        auto* r = reinterpret_cast<rec_hdr*>(ring_ + phys);
        std::memset(static_cast<void*>(r), 0, sizeof *r);
        r->size = static_cast<std::uint32_t>(need);
        r->kind = rec_message;
        r->seq = seq;
        r->ts_ns = static_cast<std::uint64_t>(ts);
        r->origin_seq = origin_seq;
        r->pid = who.pid;
        r->uid = who.uid;
        r->data_len = static_cast<std::uint32_t>(m.data.size());
        r->name_len = static_cast<std::uint16_t>(who.name.size());
        r->topic_len = static_cast<std::uint16_t>(m.topic.size());
        r->to_len = static_cast<std::uint16_t>(m.to.size());
        char* p = reinterpret_cast<char*>(r + 1);
        std::memcpy(p, who.name.data(), who.name.size());
        p += who.name.size();
        std::memcpy(p, m.topic.data(), m.topic.size());
        p += m.topic.size();
        std::memcpy(p, m.to.data(), m.to.size());
        p += m.to.size();
        std::memcpy(p, m.data.data(), m.data.size());
        fault::point("mbox.send.mid_copy");
        r->crc = rec_crc(*r);
        index_[seq % h_->nslots] = tail;  // a free slot: not part of the state until next_seq passes it
        t.set(h_->tail_pos, tail + need);
        t.set(h_->next_seq, seq + 1);
        t.set(h_->msgs, h_->msgs + 1);
        t.set(h_->sent, h_->sent + 1);
        t.commit();
        return seq;
    }

    // Whether every group has taken seq (rendezvous): passed it, and not
    // holding it for an addressee.
    bool taken_by_all(std::uint64_t seq) const {
        if (seq < h_->first_seq) return true;
        bool any = false;
        for (int g = 0; g < max_groups; ++g) {
            const auto& s = groups_[g];
            if (!s.active) continue;
            any = true;
            if (s.cursor <= seq) return false;
            if (s.held)
                for (const auto& e : s.out)
                    if (e.state == entry_held && e.seq == seq) return false;
        }
        return any;
    }

    void withdraw(std::uint64_t seq) {
        if (seq < h_->first_seq) return;
        auto& r = const_cast<rec_hdr&>(record(seq));
        txn t(*this);
        std::uint32_t word = 0;  // size, kind, flags share the first 8 bytes; flags is the high half of a u32
        std::memcpy(&word, reinterpret_cast<std::byte*>(&r) + 4, 4);
        std::uint32_t nw = word | (std::uint32_t{rec_withdrawn} << 16);
        t.set(*reinterpret_cast<std::uint32_t*>(reinterpret_cast<std::byte*>(&r) + 4), nw);
        // held copies of it go too
        for (int g = 0; g < max_groups; ++g) {
            auto& s = groups_[g];
            if (!s.active || !s.held) continue;
            for (auto& e : s.out)
                if (e.state == entry_held && e.seq == seq) {
                    t.set(e.state, std::uint32_t{entry_free});
                    t.set(s.held, s.held - 1);
                }
        }
        t.set(h_->withdrawn, h_->withdrawn + 1);
        t.commit();
    }

    void bump_news() {
        h_->news.fetch_add(1, std::memory_order_seq_cst);
        sync::wake_if_waiting(h_->news, h_->recv_waiters, INT_MAX);
    }
    void bump_space() {
        h_->space.fetch_add(1, std::memory_order_seq_cst);
        sync::wake_if_waiting(h_->space, h_->send_waiters, INT_MAX);
    }
    void sync_to_disk() {
        if (h_->sync == static_cast<std::uint32_t>(sync_policy::always) && ::msync(base_, size_, MS_SYNC) < 0)
            throw last_system_error("sync", "mailbox", where_.name);
    }

    // ---- receiving
    struct take_result {
        std::vector<message>& pool;  // messages [0, n) are taken
        std::size_t n = 0;
        message& slot() {
            if (n == pool.size()) pool.emplace_back();
            return pool[n];
        }
        std::vector<message> dead;  // to move to the dead-letter mailbox
        bool blocked = false;       // the outstanding table is full
        std::int64_t next_expiry_ns = 0;
        bool watch_holders = false;
    };

    bool holder_gone(const out_entry& e) const {
        if (!(e.flags & entry_watch_holder) || e.holder_pid <= 0) return false;
        auto st = proc::start_time(e.holder_pid);
        return !st || *st != e.holder_start;
    }

    void add_skip(txn& t, group_slot& s, std::uint64_t first, std::uint64_t last, std::uint32_t reason) {
        if (s.nskips > max_skips) corrupted(where_.name, "skip table");
        if (s.nskips) {
            auto& e = s.skips[s.nskips - 1];
            if (e.last + 1 == first && (e.reason == reason || s.nskips == max_skips)) {
                t.set(e.last, last);
                if (e.reason != reason) t.set(e.reason, std::uint32_t{skip_several});
                return;
            }
        }
        auto& e = s.skips[s.nskips];  // beyond the count: not part of the state yet
        e = skip_entry{first, last, reason, 0};
        t.set(s.nskips, s.nskips + 1);
    }

    void hand_skips(txn& t, group_slot& s, message& m) {
        for (std::uint32_t i = 0; i < s.nskips && i < max_skips; ++i)
            m.skipped.push_back({s.skips[i].first, s.skips[i].last, std::string(skip_reason(s.skips[i].reason))});
        if (s.nskips) t.set(s.nskips, std::uint32_t{0});
    }

    void fill_entry(txn& t, out_entry& e, std::uint64_t seq, std::uint32_t state, const recv_options& opt,
                    std::uint32_t deliveries) {
        if (e.state == entry_free) {  // a free entry is not part of the state: fill, then log its state
            e.seq = seq;
            e.deliveries = deliveries;
            e.lease_until_ns = static_cast<std::uint64_t>(wall_ns() + opt.lease.count() * 1000000);
            e.holder_pid = ::getpid();
            e.holder_start = proc::start_time(::getpid()).value_or(0);
            e.flags = opt.holder_alive ? std::uint32_t{entry_watch_holder} : 0u;
            copy_label(e.holder, sizeof e.holder, opt.as);
            t.set(e.state, state);
        } else {
            t.set(e.deliveries, deliveries);
            t.set(e.lease_until_ns, static_cast<std::uint64_t>(wall_ns() + opt.lease.count() * 1000000));
            t.set(e.holder_pid, std::int32_t{::getpid()});
            t.set(e.holder_start, proc::start_time(::getpid()).value_or(0));
            t.set(e.flags, opt.holder_alive ? std::uint32_t{entry_watch_holder} : 0u);
            t.set(e.state, state);
        }
    }

    // Takes (or leases) up to opt.max_batch messages for group g; under the lock.
    void take(int g, const recv_options& opt, take_result& out) {
        auto& s = groups_[g];
        std::int64_t now = wall_ns();
        while (out.n < opt.max_batch) {
            // 1. outstanding entries: messages held for this receiver, and expired leases
            int pick = -1;
            if (s.held + s.pending) {
                for (int i = 0; i < max_outstanding; ++i) {
                    auto& e = s.out[i];
                    if (e.state == entry_held) {
                        if (opt.as.empty() || e.seq < h_->first_seq || rec_to(record(e.seq)) != opt.as) continue;
                    } else if (e.state == entry_leased) {
                        if (e.flags & entry_dead_lettering) {
                            if (static_cast<std::int64_t>(e.lease_until_ns) > now) continue;
                        } else if (static_cast<std::int64_t>(e.lease_until_ns) > now && !holder_gone(e)) {
                            if (e.flags & entry_watch_holder) out.watch_holders = true;
                            if (!out.next_expiry_ns || static_cast<std::int64_t>(e.lease_until_ns) < out.next_expiry_ns)
                                out.next_expiry_ns = static_cast<std::int64_t>(e.lease_until_ns);
                            continue;
                        }
                    } else {
                        continue;
                    }
                    if (pick < 0 || e.seq < s.out[pick].seq) pick = i;
                }
            }
            if (pick >= 0) {
                auto& e = s.out[pick];
                const rec_hdr& r = record(e.seq);
                message& m = out.slot();
                fill_message(r, m);
                txn t(*this);
                if (e.state == entry_held) {
                    m.deliveries = 1;
                    if (opt.ack) {
                        fill_entry(t, e, e.seq, entry_leased, opt, 1);
                        t.set(s.held, s.held - 1);
                        t.set(s.pending, s.pending + 1);
                    } else {
                        t.set(e.state, std::uint32_t{entry_free});
                        t.set(s.held, s.held - 1);
                    }
                    t.set(s.delivered, s.delivered + 1);
                    t.commit();
                    ++out.n;
                    continue;
                }
                std::uint32_t d = e.deliveries + 1;
                if (opt.max_deliveries && e.deliveries >= opt.max_deliveries) {
                    // Moved to the dead-letter mailbox outside the lock; until
                    // that is done the entry stays leased (a crash on the way
                    // means it is moved again: at least once).
                    m.deliveries = e.deliveries;
                    auto lease = recv_options(opt);
                    lease.lease = std::chrono::milliseconds(30000);
                    lease.holder_alive = false;
                    fill_entry(t, e, e.seq, entry_leased, lease, e.deliveries);
                    t.set(e.flags, e.flags | entry_dead_lettering);
                    t.commit();
                    out.dead.push_back(m);
                    continue;
                }
                m.deliveries = d;
                fill_entry(t, e, e.seq, entry_leased, opt, d);
                t.set(s.redelivered, s.redelivered + 1);
                t.commit();
                ++out.n;
                continue;
            }

            // 2. the group's cursor
            bool got = false;
            while (h_->next_seq > s.cursor) {
                if (s.cursor < h_->first_seq) {
                    std::uint64_t lost = h_->first_seq - s.cursor;
                    txn t(*this);
                    add_skip(t, s, s.cursor, h_->first_seq - 1, skip_dropped);
                    t.set(s.dropped, s.dropped + lost);
                    t.set(s.cursor, h_->first_seq);
                    t.commit();
                    continue;
                }
                std::uint64_t seq = s.cursor;
                const rec_hdr& r = record(seq);
                txn t(*this);
                if (r.flags & rec_withdrawn) {
                    add_skip(t, s, seq, seq, skip_withdrawn);
                    t.set(s.cursor, seq + 1);
                    t.commit();
                    continue;
                }
                if (!matches(s, r)) {
                    add_skip(t, s, seq, seq, skip_filtered);
                    t.set(s.cursor, seq + 1);
                    t.set(s.filtered, s.filtered + 1);
                    t.commit();
                    continue;
                }
                bool for_other = r.to_len && rec_to(r) != opt.as;
                if (for_other || opt.ack) {
                    int i = free_entry(s);
                    if (i < 0) {
                        out.blocked = true;
                        break;
                    }
                    fill_entry(t, s.out[i], seq, for_other ? entry_held : entry_leased, opt, 1);
                    if (for_other) {
                        add_skip(t, s, seq, seq, skip_addressed);
                        t.set(s.held, s.held + 1);
                        t.set(s.cursor, seq + 1);
                        t.commit();
                        continue;
                    }
                    t.set(s.pending, s.pending + 1);
                }
                message& m = out.slot();
                fill_message(r, m);
                hand_skips(t, s, m);
                t.set(s.cursor, seq + 1);
                t.set(s.delivered, s.delivered + 1);
                t.commit();
                ++out.n;
                got = true;
                break;
            }
            if (!got) break;
        }
    }

    void register_waiter(int g, bool on) {
        auto& s = groups_[g];
        std::int32_t me = ::getpid();
        for (auto& p : s.waiting_pid) {
            std::int32_t cur = p.load(std::memory_order_relaxed);
            if (on && cur == 0 && p.compare_exchange_strong(cur, me)) return;
            if (!on && cur == me) {
                p.store(0, std::memory_order_relaxed);
                return;
            }
        }
    }

    void dead_letter(const recv_options& opt, std::vector<message>& dead, int g);

    location where_;
    std::string path_;
    unique_fd fd_;
    std::byte* base_;
    std::size_t size_;
    header* h_;
    std::uint64_t* index_ = nullptr;
    group_slot* groups_ = nullptr;
    std::byte* ring_ = nullptr;
    std::vector<message> pool_;  // recv's messages, reused (one thread uses a mailbox object at a time)
};

send_result local_mailbox::send(std::span<const outgoing> msgs, const send_options& opt) {
    identity who{static_cast<std::int32_t>(::getpid()), static_cast<std::uint32_t>(::getuid()), opt.as};
    if (who.name.size() > max_label) throw usage_error(fmt::format("--as: names are at most {} bytes", max_label));
    for (const auto& m : msgs) {
        if (m.data.size() > h_->max_msg_size)
            throw data_error(fmt::format("a message of {} bytes is over mailbox '{}''s --max-msg-size of {} bytes",
                                         m.data.size(), where_.name, h_->max_msg_size));
        if (m.topic.size() > max_label || m.to.size() > max_label)
            throw usage_error(fmt::format("--topic and --to are at most {} bytes", max_label));
    }
    auto policy = opt.overflow.value_or(static_cast<overflow_policy>(h_->overflow));
    if (h_->max_msgs == 0 && policy == overflow_policy::drop_oldest)
        throw usage_error("--overflow drop-oldest: a rendezvous mailbox (--max-msgs 0) holds nothing to drop");
    const bool rendezvous = h_->max_msgs == 0;
    send_result res;
    std::size_t i = 0;
    while (i < msgs.size()) {
        std::uint32_t seen = h_->space.load(std::memory_order_seq_cst);
        bool full = false, freed = false;
        std::size_t first = i;
        {
            locked l(*this);
            std::int64_t ts = wall_ns();
            while (i < msgs.size()) {
                std::uint64_t need = record_size(msgs[i], who.name.size());
                while (!fits(need) && policy == overflow_policy::drop_oldest && h_->msgs > 0) {
                    evict_oldest();
                    freed = true;
                }
                if (!fits(need)) {
                    full = true;
                    break;
                }
                res.seqs.push_back(append(msgs[i], who, ts, 0));
                ++i;
                if (rendezvous) break;
            }
        }
        if (i > first) {
            sync_to_disk();
            bump_news();
        }
        if (freed) bump_space();
        if (rendezvous && i > first) {
            std::uint64_t seq = res.seqs.back();
            for (;;) {
                std::uint32_t seen2 = h_->space.load(std::memory_order_seq_cst);
                {
                    locked l(*this);
                    if (taken_by_all(seq)) break;
                    if (opt.until.expired()) {
                        withdraw(seq);
                        res.seqs.pop_back();
                        res.timed_out = true;
                    }
                }
                if (res.timed_out) {
                    bump_news();
                    return res;
                }
                sync::wait_while_equal(h_->space, seen2, h_->send_waiters, sync::wait_mode::adaptive, opt.until);
            }
            continue;
        }
        if (full) {
            if (opt.until.expired()) {
                res.timed_out = true;
                return res;
            }
            sync::wait_while_equal(h_->space, seen, h_->send_waiters, sync::wait_mode::adaptive, opt.until);
        }
    }
    return res;
}

void local_mailbox::dead_letter(const recv_options& opt, std::vector<message>& dead, int g) {
    location dl = where_;
    dl.name = opt.dead_letter.empty() ? where_.name + ".dead" : opt.dead_letter;
    create_options co;
    co.lim.max_msgs = h_->max_msgs ? h_->max_msgs : 4096;
    co.lim.max_bytes = h_->ring_bytes;
    co.lim.max_msg_size = h_->max_msg_size;
    co.mode = 0600;
    struct stat st{};
    if (::fstat(fd_.get(), &st) == 0) co.mode = st.st_mode & 0777;
    local::create(dl, co);
    auto box = local::open(dl);
    auto* lbox = static_cast<local_mailbox*>(box.get());
    for (auto& m : dead) {
        {
            outgoing o{m.data, m.topic, m.to};
            locked l(*lbox);
            if (!lbox->fits(record_size(o, m.sender.name.size())))
                throw temp_failure(fmt::format("dead-letter mailbox '{}' is full", dl.name));
            lbox->append(o, m.sender, static_cast<std::int64_t>(m.timestamp_ns), m.seq);
        }
        lbox->sync_to_disk();
        lbox->bump_news();
        locked l(*this);
        auto& s = groups_[g];
        if (!s.active) continue;
        for (auto& e : s.out)
            if (e.state == entry_leased && e.seq == m.seq && (e.flags & entry_dead_lettering)) {
                txn t(*this);
                t.set(e.state, std::uint32_t{entry_free});
                t.set(s.pending, s.pending - 1);
                t.set(s.dead_lettered, s.dead_lettered + 1);
                t.commit();
            }
        free_done();
    }
}

std::size_t local_mailbox::recv(const recv_options& opt, const std::function<void(message&)>& fn) {
    if (opt.as.size() > max_label) throw usage_error(fmt::format("--as: names are at most {} bytes", max_label));
    for (;;) {
        std::uint32_t seen = h_->news.load(std::memory_order_seq_cst);
        take_result tr{pool_, 0, {}, false, 0, false};
        int g;
        bool freed = false;
        {
            locked l(*this);
            g = open_group(opt.group);
            take(g, opt, tr);
            if (tr.n || !tr.dead.empty()) freed = free_done();
        }
        if (tr.n || !tr.dead.empty()) {
            sync_to_disk();
            if (freed || h_->max_msgs == 0) bump_space();
        }
        if (!tr.dead.empty()) {
            dead_letter(opt, tr.dead, g);
            bump_space();
            if (tr.n == 0) continue;
        }
        if (tr.n) {
            fault::point("mbox.recv.taken");
            for (std::size_t i = 0; i < tr.n; ++i) fn(pool_[i]);
            return tr.n;
        }
        if (opt.until.expired()) return 0;
        // Sleep until news, the deadline, the next lease expiry, or (when a
        // lease holder's death would end its lease) a look now and then.
        deadline until = opt.until;
        std::optional<std::chrono::nanoseconds> cap;
        if (tr.next_expiry_ns) cap = std::chrono::nanoseconds(std::max<std::int64_t>(tr.next_expiry_ns - wall_ns(), 0) + 1000000);
        if (tr.watch_holders) cap = std::min(cap.value_or(std::chrono::milliseconds(100)), std::chrono::nanoseconds(std::chrono::milliseconds(100)));
        if (cap) {
            auto left = opt.until.remaining();
            if (!left || *left > *cap) until = deadline::after(*cap);
        }
        register_waiter(g, true);
        try {
            sync::wait_while_equal(h_->news, seen, h_->recv_waiters, opt.wait, until);
        } catch (...) {
            register_waiter(g, false);
            throw;
        }
        register_waiter(g, false);
    }
}

std::size_t local_mailbox::ack(const std::string& group, std::span<const std::uint64_t> seqs) {
    std::size_t n = 0;
    bool freed;
    {
        locked l(*this);
        int g = existing_group(group);
        auto& s = groups_[g];
        for (auto seq : seqs)
            for (auto& e : s.out)
                if (e.state == entry_leased && e.seq == seq) {
                    txn t(*this);
                    t.set(e.state, std::uint32_t{entry_free});
                    t.set(s.pending, s.pending - 1);
                    t.set(s.acked, s.acked + 1);
                    t.commit();
                    ++n;
                    break;
                }
        freed = free_done();
    }
    sync_to_disk();
    if (n) bump_news();
    if (freed || h_->max_msgs == 0) bump_space();
    return n;
}

void local_mailbox::release(const std::string& group, std::uint64_t seq) {
    {
        locked l(*this);
        auto& s = groups_[existing_group(group)];
        for (auto& e : s.out)
            if (e.state == entry_leased && e.seq == seq) {
                txn t(*this);
                t.set(e.lease_until_ns, std::uint64_t{0});
                t.commit();
            }
    }
    bump_news();
}

void local_mailbox::renew(const std::string& group, std::uint64_t seq, std::chrono::milliseconds lease) {
    locked l(*this);
    auto& s = groups_[existing_group(group)];
    for (auto& e : s.out)
        if (e.state == entry_leased && e.seq == seq && e.holder_pid == ::getpid()) {
            txn t(*this);
            t.set(e.lease_until_ns, static_cast<std::uint64_t>(wall_ns() + lease.count() * 1000000));
            t.commit();
        }
}

bool local_mailbox::remove_group(const std::string& group) {
    bool freed;
    {
        locked l(*this);
        int g = find_group(group);
        if (g < 0) return false;
        txn t(*this);
        t.set(groups_[g].active, std::uint32_t{0});
        t.commit();
        freed = free_done();
    }
    bump_news();
    if (freed || h_->max_msgs == 0) bump_space();
    return true;
}

bool local_mailbox::wait_change(std::uint64_t seen, const deadline& until) {
    // Two words: wait on news, but wake now and then to see space changes.
    for (;;) {
        if (change_count() != seen) return true;
        if (until.expired()) return false;
        auto step = deadline::after(std::chrono::milliseconds(50));
        auto left = until.remaining();
        sync::wait_while_equal(h_->news, static_cast<std::uint32_t>(seen >> 32), h_->recv_waiters,
                               sync::wait_mode::block, left && *left < std::chrono::milliseconds(50) ? until : step);
    }
}

mailbox_stat local_mailbox::stat() {
    mailbox_stat st;
    st.name = where_.name;
    st.backend = "local";
    st.path = path_;
    struct stat fs{};
    if (::fstat(fd_.get(), &fs) == 0) {
        st.mode = fs.st_mode & 07777;
        st.uid = fs.st_uid;
    }
    locked l(*this);
    st.lim = {h_->max_msgs, h_->ring_bytes, h_->max_msg_size};
    st.overflow = static_cast<overflow_policy>(h_->overflow);
    st.sync = static_cast<sync_policy>(h_->sync);
    st.msgs = h_->msgs;
    st.bytes = h_->msgs ? h_->tail_pos - h_->head_pos : 0;
    st.first_seq = h_->first_seq;
    st.next_seq = h_->next_seq;
    st.sent = h_->sent;
    st.dropped = h_->dropped;
    st.withdrawn = h_->withdrawn;
    st.recoveries = h_->recoveries;
    st.created_unix = h_->created_ns / 1000000000;
    st.senders_waiting = h_->send_waiters.count_alive();
    st.receivers_waiting = h_->recv_waiters.count_alive();
    for (int g = 0; g < max_groups; ++g) {
        const auto& s = groups_[g];
        if (!s.active) continue;
        group_stat gs;
        gs.name = label(s.name, sizeof s.name);
        gs.topic = label(s.topic, sizeof s.topic);
        gs.from = label(s.from, sizeof s.from);
        gs.position = std::max(s.cursor, h_->first_seq);
        gs.lag = h_->next_seq - gs.position;
        gs.pending = s.pending;
        gs.held = s.held;
        gs.delivered = s.delivered;
        gs.redelivered = s.redelivered;
        gs.acked = s.acked;
        gs.filtered = s.filtered;
        gs.dropped = s.dropped + (h_->first_seq > s.cursor ? h_->first_seq - s.cursor : 0);
        gs.dead_lettered = s.dead_lettered;
        for (const auto& p : s.waiting_pid) {
            std::int32_t pid = p.load(std::memory_order_relaxed);
            if (pid > 0 && proc::alive(pid)) gs.receivers_waiting++;
        }
        st.groups.push_back(std::move(gs));
    }
    return st;
}

} // namespace

// ------------------------------------------------------------ entry points --

std::string path_of(const location& where) { return dir_of(where) + "/" + body(where.name); }

bool create(const location& where, const create_options& opt) {
    const auto& lim = opt.lim;
    if (lim.max_msgs > max_slots)
        throw usage_error(fmt::format("--max-msgs {}: at most {}", lim.max_msgs, max_slots));
    if (lim.max_msg_size == 0) throw usage_error("--max-msg-size must be at least 1 byte");
    if (lim.max_bytes < lim.max_msg_size + 1024)
        throw usage_error(fmt::format("--max-bytes {} cannot hold a message of --max-msg-size {} (each message also "
                                      "takes a header and its names: allow 1 KiB more)",
                                      lim.max_bytes, lim.max_msg_size));
    if (lim.max_bytes > (std::uint64_t{1} << 40)) throw usage_error("--max-bytes: at most 1 TiB");
    if (lim.max_msgs == 0 && opt.overflow == overflow_policy::drop_oldest)
        throw usage_error("--overflow drop-oldest: a rendezvous mailbox (--max-msgs 0) holds nothing to drop");
    if (where.dir.empty() && body(where.name).starts_with("sem."))
        throw usage_error(fmt::format("'{}': names beginning with 'sem.' are where POSIX semaphores live; choose "
                                      "another name", where.name));
    auto l = layout_for(lim.max_msgs, lim.max_bytes);
    unique_fd dir = open_dir(where);
    unique_fd fd(::openat(dir.get(), ".", O_TMPFILE | O_RDWR | O_CLOEXEC, opt.mode & 0777));
    if (!fd) throw system_error(errno, "create", "mailbox", where.name);
    ::fchmod(fd.get(), opt.mode & 0777);
    if (::ftruncate(fd.get(), static_cast<off_t>(l.file_size)) < 0)
        throw last_system_error("create", "mailbox", where.name);
    int err = ::posix_fallocate(fd.get(), 0, static_cast<off_t>(l.file_size));
    if (err == ENOSPC || err == EFBIG) throw system_error(err, "create", "mailbox", where.name);
    void* m = ::mmap(nullptr, l.file_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    if (m == MAP_FAILED) throw last_system_error("map", "mailbox", where.name);
    auto* h = static_cast<header*>(m);
    h->version = file_version;
    h->header_size = header_bytes;
    h->max_msgs = lim.max_msgs;
    h->ring_bytes = l.ring_bytes;
    h->max_msg_size = lim.max_msg_size;
    h->nslots = l.nslots;
    h->index_off = l.index_off;
    h->groups_off = l.groups_off;
    h->ring_off = l.ring_off;
    h->file_size = l.file_size;
    h->overflow = static_cast<std::uint32_t>(opt.overflow);
    h->sync = static_cast<std::uint32_t>(opt.sync);
    h->created_ns = wall_ns();
    h->lock.init();
    h->next_seq = h->first_seq = 1;
    h->magic = file_magic;
    if (opt.sync == sync_policy::always) ::msync(m, l.file_size, MS_SYNC);
    ::munmap(m, l.file_size);
    shm::tag_fd(fd.get(), shm::kind::mailbox, "ipc-mbox");
    std::string proc_path = fmt::format("/proc/self/fd/{}", fd.get());
    if (::linkat(AT_FDCWD, proc_path.c_str(), dir.get(), body(where.name).c_str(), AT_SYMLINK_FOLLOW) < 0) {
        int e = errno;
        if (e == EEXIST && !opt.exclusive) return false;
        throw system_error(e, "create", "mailbox", where.name);
    }
    if (opt.sync == sync_policy::always) ::fsync(dir.get());
    return true;
}

std::unique_ptr<mailbox> open(const location& where) {
    unique_fd dir = open_dir(where);
    unique_fd fd(::openat(dir.get(), body(where.name).c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) {
        int e = errno;
        if (e == ELOOP) throw data_error(fmt::format("'{}' is a symbolic link, not a mailbox", where.name));
        throw system_error(e, "open", "mailbox", where.name);
    }
    struct stat st{};
    if (::fstat(fd.get(), &st) < 0) throw last_system_error("open", "mailbox", where.name);
    if (!S_ISREG(st.st_mode)) throw data_error(fmt::format("'{}' is not a mailbox of ipc-mbox", where.name));
    std::uint64_t magic = 0;
    if (::pread(fd.get(), &magic, sizeof magic, 0) != static_cast<ssize_t>(sizeof magic) || magic != file_magic)
        throw data_error(fmt::format("'{}' is not a mailbox of ipc-mbox", where.name));
    if (static_cast<std::uint64_t>(st.st_size) < header_bytes) corrupted(where.name, "shorter than its header");
    std::size_t size = static_cast<std::size_t>(st.st_size);
    void* m = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    if (m == MAP_FAILED) throw last_system_error("map", "mailbox", where.name);
    try {
        return std::make_unique<local_mailbox>(where, path_of(where), std::move(fd), m, size);
    } catch (...) {
        ::munmap(m, size);
        throw;
    }
}

void remove(const location& where) {
    unique_fd dir = open_dir(where);
    unique_fd fd(::openat(dir.get(), body(where.name).c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) throw system_error(errno, "remove", "mailbox", where.name);
    std::uint64_t magic = 0;
    if (::pread(fd.get(), &magic, sizeof magic, 0) != static_cast<ssize_t>(sizeof magic) || magic != file_magic)
        throw data_error(fmt::format("'{}' is not a mailbox of ipc-mbox; not removed", where.name));
    if (::unlinkat(dir.get(), body(where.name).c_str(), 0) < 0)
        throw system_error(errno, "remove", "mailbox", where.name);
}

std::vector<mailbox_stat> list(const location& where) {
    std::vector<mailbox_stat> out;
    unique_fd dir = open_dir(where);
    DIR* d = ::fdopendir(::dup(dir.get()));
    if (!d) throw system_error(errno, "list", "directory", dir_of(where));
    std::vector<std::string> names;
    while (auto* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n == "." || n == ".." || n.size() > 255) continue;
        unique_fd fd(::openat(dir.get(), n.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
        if (!fd) continue;
        std::uint64_t magic = 0;
        if (::pread(fd.get(), &magic, sizeof magic, 0) == static_cast<ssize_t>(sizeof magic) && magic == file_magic)
            names.push_back("/" + n);
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
        location l = where;
        l.name = n;
        try {
            out.push_back(local::open(l)->stat());
        } catch (const error& e) {
            // not ours to read, or damaged: list it with what the file says
            mailbox_stat st;
            st.name = n;
            st.backend = "local";
            st.path = path_of(l);
            st.problem = e.what();
            out.push_back(std::move(st));
        }
    }
    return out;
}

} // namespace ipc::mbox::local
