// SPDX-License-Identifier: MIT
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

#include "ipc/fd.hpp"
#include "ipc/sync.hpp"

/// Mailboxes: an ordered log of messages with many senders and many
/// receivers, read through groups (a copy per group; within a group each
/// message goes to one receiver), with sender identity, topics, addressees,
/// bounded capacity, acknowledgements and leases. Two backends share this
/// interface: the local one (a file-backed shared mapping, no server) and
/// Redis Streams (mbox_redis.cpp). ipc-mbox(1) states the model.
namespace ipc::mbox {

/// What a send does when the mailbox is full.
enum class overflow_policy {
    block,        ///< wait for room until the deadline (status 75 after it)
    drop_oldest,  ///< evict the oldest retained messages; groups that lose them are told
};
std::string_view overflow_name(overflow_policy p);
overflow_policy parse_overflow(std::string_view text);  ///< "block", "drop-oldest"; usage error otherwise

/// When a durable (local, --dir) mailbox's changes reach the disk.
enum class sync_policy {
    none,    ///< when the kernel writes the page cache back (survives any process kill, not a power cut)
    always,  ///< msync(MS_SYNC) before send, ack or recv returns
};
std::string_view sync_name(sync_policy p);
sync_policy parse_sync(std::string_view text);

/// Where a mailbox lives. backend "" or "local": a file in `dir` (default:
/// /dev/shm). "redis://HOST:PORT[/DB]": one stream per mailbox.
struct location {
    std::string name;     ///< "/NAME" (normalised as every POSIX name)
    std::string backend;  ///< "", "local" or a redis:// URL
    std::string dir;      ///< local only: the directory of a durable mailbox; "" = /dev/shm
    bool is_redis() const { return backend.starts_with("redis://"); }
};

struct limits {
    std::uint64_t max_msgs = 4096;        ///< 0: rendezvous (send returns once the message is taken)
    std::uint64_t max_bytes = 4u << 20;   ///< local: size of the message ring, headers included
    std::uint64_t max_msg_size = 64u << 10;
};

struct create_options {
    limits lim;
    overflow_policy overflow = overflow_policy::block;  ///< the default of every send
    sync_policy sync = sync_policy::none;
    mode_t mode = 0600;
    bool exclusive = false;  ///< an existing mailbox is an error (73) rather than left as it is
};

/// Who sent a message. pid and uid are written by the sending process (the
/// local backend fills them from getpid/getuid; trust them as far as the
/// mailbox's permissions let others write); name is --as, "" when not given.
struct identity {
    std::int32_t pid = 0;
    std::uint32_t uid = 0;
    std::string name;
};

struct outgoing {
    std::string data;
    std::string topic;  ///< "" = no topic
    std::string to;     ///< "" = every receiver (broadcast); else only receivers named so
};

struct send_options {
    std::string as;                          ///< the sender's name
    std::optional<overflow_policy> overflow; ///< nullopt: the mailbox's default
    deadline until = deadline::never();      ///< how long a full mailbox (or a rendezvous) may hold a send
};

/// Seqs a receiver's group passed without delivering them to it, right
/// before a delivered message: with those and the seqs it received, a
/// receiver alone in its group accounts for every number.
struct skipped_range {
    std::uint64_t first = 0, last = 0;  ///< inclusive
    std::string reason;  ///< "filtered" (topic/from), "addressed" (--to someone else), "dropped" (overflow), "withdrawn" (a rendezvous send that timed out)
};

struct message {
    std::uint64_t seq = 0;           ///< mailbox-wide, gap-free, from 1
    std::uint64_t timestamp_ns = 0;  ///< wall clock at send
    identity sender;
    std::string topic, to, data;
    std::uint32_t deliveries = 1;    ///< > 1: delivered again after an expired lease or a failed --exec
    std::uint64_t origin_seq = 0;    ///< dead letters: its seq in the mailbox it failed in
    std::vector<skipped_range> skipped;
};

/// A group: a name and a subscription, fixed by the receiver that creates it.
struct group_spec {
    std::string name;      ///< "" = the default: "default", or the filter's text when there is one
    std::string topic;     ///< fnmatch(3) pattern on the topic; "" = every message
    std::string from;      ///< only this sender name; "" = any
    bool new_only = false; ///< a new group starts after the newest message (default: at the oldest retained)
    /// The name a group without a given one gets: "default", "topic=PAT",
    /// "from=NAME" or "topic=PAT,from=NAME".
    std::string effective_name() const;
};

struct recv_options {
    group_spec group;
    std::string as;                          ///< this receiver's name (for --to); "" = none
    bool ack = false;                        ///< at least once: the message stays leased until ack()
    std::chrono::milliseconds lease{30000};  ///< with ack: redelivered when not acknowledged in time
    std::uint32_t max_deliveries = 0;        ///< with ack: after this many, to the dead-letter mailbox (0 = no limit)
    std::string dead_letter;                 ///< "" = NAME.dead (same backend and dir)
    bool holder_alive = false;               ///< the lease also ends when this process dies (recv --exec)
    std::size_t max_batch = 1;               ///< up to this many messages per call
    deadline until = deadline::never();
    sync::wait_mode wait = sync::wait_mode::adaptive;  ///< local only
};

struct group_stat {
    std::string name, topic, from;
    std::uint64_t position = 0;    ///< the next seq the group will look at
    std::uint64_t lag = 0;         ///< retained messages the group has not reached yet
    std::uint64_t pending = 0;     ///< delivered with --ack, not acknowledged yet
    std::uint64_t held = 0;        ///< addressed to a receiver that has not taken it yet
    std::uint64_t delivered = 0, redelivered = 0, acked = 0, filtered = 0, dropped = 0, dead_lettered = 0;
    std::uint64_t receivers_waiting = 0;
};

struct mailbox_stat {
    std::string name, backend, path;  ///< path: the local file ("" for Redis)
    limits lim;
    overflow_policy overflow = overflow_policy::block;
    sync_policy sync = sync_policy::none;
    mode_t mode = 0;
    uid_t uid = 0;
    std::uint64_t msgs = 0, bytes = 0;          ///< retained now
    std::uint64_t first_seq = 0, next_seq = 0;  ///< oldest retained; the next one a send gets
    std::uint64_t sent = 0, dropped = 0, withdrawn = 0;
    std::uint64_t senders_waiting = 0, receivers_waiting = 0;
    std::uint64_t recoveries = 0;  ///< operations rolled back after their process died mid-way
    std::int64_t created_unix = 0;
    std::vector<group_stat> groups;
    std::string problem;  ///< list(): why this one could not be read ("" when it was); the figures are then unknown
};

/// The result of one send call.
struct send_result {
    std::vector<std::uint64_t> seqs;  ///< of the messages sent, in order
    bool timed_out = false;           ///< the deadline passed before all were sent (the rest were not)
};

class mailbox {
public:
    virtual ~mailbox() = default;

    /// Sends msgs in order, each whole or not at all. A full mailbox blocks
    /// until the deadline (or drops the oldest, by the policy); a rendezvous
    /// mailbox returns only when each message was taken (and withdraws a
    /// message not taken by the deadline). Throws data_error (65) for a
    /// message over max_msg_size, before sending any.
    virtual send_result send(std::span<const outgoing> msgs, const send_options& opt) = 0;

    /// Delivers up to opt.max_batch messages to fn, waiting until the
    /// deadline for the first. Returns how many; 0 when the time ran out.
    /// With opt.ack each stays pending until ack(); otherwise it is taken.
    virtual std::size_t recv(const recv_options& opt, const std::function<void(message&)>& fn) = 0;

    /// Acknowledges pending messages of a group; returns how many were pending.
    virtual std::size_t ack(const std::string& group, std::span<const std::uint64_t> seqs) = 0;
    /// Gives a pending message back for delivery now (an --exec that failed).
    virtual void release(const std::string& group, std::uint64_t seq) = 0;
    /// Extends the lease of a pending message (a long-running --exec).
    virtual void renew(const std::string& group, std::uint64_t seq, std::chrono::milliseconds lease) = 0;

    virtual mailbox_stat stat() = 0;
    /// Removes a group (its position, pending and held messages); false if none.
    virtual bool remove_group(const std::string& group) = 0;

    /// A number that changes whenever a message is sent, taken or freed (for
    /// wait/watch loops), and a wait for it to change.
    virtual std::uint64_t change_count() = 0;
    virtual bool wait_change(std::uint64_t seen, const deadline& until) = 0;
};

/// Creates a mailbox; false when it existed and !opt.exclusive (left as it
/// is). Usage errors for impossible limits; 69 for what a backend cannot do.
bool create(const location& where, const create_options& opt);
/// Opens an existing one (66 when missing, 65 when it is not a valid mailbox).
std::unique_ptr<mailbox> open(const location& where);
/// Removes a mailbox (66 when missing).
void remove(const location& where);
/// Every mailbox at a location (name ignored).
std::vector<mailbox_stat> list(const location& where);

// Backend entry points (the functions above dispatch on location::backend).
namespace local {
bool create(const location& where, const create_options& opt);
std::unique_ptr<mailbox> open(const location& where);
void remove(const location& where);
std::vector<mailbox_stat> list(const location& where);
std::string path_of(const location& where);
} // namespace local

namespace redis {
bool create(const location& where, const create_options& opt);
std::unique_ptr<mailbox> open(const location& where);
void remove(const location& where);
std::vector<mailbox_stat> list(const location& where);
} // namespace redis

/// fnmatch(3) of a topic against a group's pattern ("" matches everything).
bool topic_matches(std::string_view pattern, std::string_view topic);

} // namespace ipc::mbox
