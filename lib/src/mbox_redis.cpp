// SPDX-License-Identifier: MIT
// Mailboxes on Redis Streams (backend "redis://HOST:PORT[/DB]").
//
// REDIS LAYOUT. A mailbox /NAME is these keys (NAME without its '/', inside
// a hash tag so that one mailbox's keys share a cluster slot):
//
//   ipc-mbox:{NAME}          the stream: one entry per message, in seq order
//   ipc-mbox:{NAME}:meta     hash: version (1), max_msgs, max_bytes,
//                            max_msg_size, overflow (block|drop-oldest),
//                            created (unix s), uid and mode (of the creator;
//                            informational: Redis has no permissions), seq
//                            (the last seq given), bytes (retained, as charged
//                            below), sent, dropped, changes (bumped by every
//                            step that changes something), full (set while a
//                            sender waits for room), lastid (the stream id of
//                            the last entry the addressee index covers)
//   ipc-mbox:{NAME}:g:GROUP  hash per group: topic and from (its subscription,
//                            fixed by the receiver that created it), pos (the
//                            last seq the group passed), skip (ranges passed
//                            and not yet reported: "FIRST LAST REASON;..."),
//                            delivered, redelivered, acked, filtered, dropped,
//                            dead_lettered, lost (pending entries evicted by
//                            drop-oldest), lease:CONSUMER (ms), fast_last and
//                            fast_er (the group's last-delivered id and
//                            entries-read as the fast path below left them;
//                            empty once the recv script moved the group)
//   ipc-mbox:{NAME}:ev       wake-up stream (MAXLEN 1) for receivers: written
//                            when a message is handed to its addressee, a
//                            lease is released or a group removed
//   ipc-mbox:{NAME}:free     wake-up stream (MAXLEN 1) for senders: written
//                            when room was freed while the "full" flag was set
//   ipc-mbox:{NAME}:to       addressee index: an entry for every stream entry
//                            with a to field, under the same id, with fields to
//                            and seq; written by send (entries added otherwise
//                            are indexed when seen past lastid), trimmed with
//                            the stream
//
// A group is a Redis consumer group of the same name on the stream. Its
// consumers are the receivers' --as names, or "~HOST:PID:N" for a receiver
// without one (deleted again when it holds nothing). A message addressed
// (to) to NAME that another receiver of the group reads is handed to the
// consumer NAME with a delivery count of 0: "held" (XPENDING shows count 0)
// until NAME takes it. Entries stay in the stream until every group has
// passed them (taken them; with --ack, acknowledged them); without any
// group they stay until the capacity is reached.
//
// A receiver without --ack in a group without a subscription reads new
// entries with a plain XREADGROUP NOACK inside one MULTI/EXEC, between two
// scripts (lua::fast_pre and fast_post): through a transient consumer group
// named "\0ipc-mbox:reader" (a NUL byte first), created at the group's
// position and destroyed again in the same transaction, so no other client
// ever sees it; the addressee index tells which entries to hand to their
// addressees. Held messages and expired leases still go through the recv
// script first. The group's position comes from fast_last, checked against
// XINFO GROUPS after the read: a group moved by hand (XREADGROUP, XGROUP
// SETID) in between makes the read void, and the recv script takes over.
//
// STREAM ENTRY FIELDS, as `redis-cli XRANGE ipc-mbox:{NAME} - +` shows
// them: seq (decimal, gap-free from 1), ts (wall clock at send, ns since the
// epoch), pid and uid (claimed by the sender: Redis cannot check them), from
// (--as; absent when none), topic (absent when none), to (absent when
// broadcast), body (the message, binary-safe), and in a dead-letter mailbox
// origin_seq (its seq in the mailbox it failed in).
//
// MESSAGES ADDED BY HAND. `redis-cli XADD ipc-mbox:{NAME} '*' from bob
// topic t body hello` is received like any other message. No field is
// required: a missing body is an empty message, a missing ts is taken from
// the entry id's milliseconds, missing pid/uid are 0. Do not write a seq
// field by hand: an entry without one is delivered with seq 0
// ("unsequenced"), outside the gap-free numbering, and is not charged
// against max_bytes (it counts against max_msgs). Such entries bypass the
// capacity check.
//
// Limits: rendezvous mailboxes (max_msgs 0), sync always and a directory are
// refused with status 69. holder_alive is not honoured: a lease ends only by
// time. receivers_waiting and senders_waiting count connections blocked in
// a wait, which name themselves with CLIENT SETNAME
// ipc-mbox:r:NAME:GROUP or ipc-mbox:s:NAME (non-printable bytes as %XX).
#include "ipc/mbox.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <unordered_map>

#include <sys/time.h>
#include <unistd.h>

#include <fmt/format.h>
#include <hiredis/hiredis.h>

#include "ipc/error.hpp"
#include "mbox_redis_lua.hpp"

namespace ipc::mbox::redis {

/// fnmatch(3) pattern (no flags) to an anchored Lua pattern; "" stays "".
/// Not in the header: the tests reach it with their own declaration.
std::string glob_to_lua_pattern(std::string_view glob);

namespace {

constexpr std::string_view key_prefix = "ipc-mbox:{";
constexpr std::size_t send_chunk_msgs = 256;
constexpr std::size_t send_chunk_bytes = 1u << 20;
constexpr auto wait_step = std::chrono::milliseconds(1000);    // re-check at least this often
constexpr auto command_timeout = std::chrono::seconds(60);     // a reply to a non-blocking command
constexpr auto connect_timeout = std::chrono::seconds(5);

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

timeval to_timeval(std::chrono::milliseconds d) {
    return timeval{static_cast<time_t>(d.count() / 1000), static_cast<suseconds_t>(d.count() % 1000 * 1000)};
}

std::uint64_t to_u64(std::string_view s) {
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    (void)p;
    return ec == std::errc() ? v : 0;
}

std::int64_t to_i64(std::string_view s) {
    std::int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    (void)p;
    return ec == std::errc() ? v : 0;
}

// ---------------------------------------------------------------------------
// Connection

struct endpoint {
    std::string url, host;
    int port = 6379;
    int db = 0;
};

// redis://HOST[:PORT][/DB]; HOST may be [v6].
endpoint parse_url(const std::string& url) {
    endpoint ep;
    ep.url = url;
    std::string_view rest(url);
    if (!rest.starts_with("redis://")) throw usage_error("not a redis URL: '" + url + "'");
    rest.remove_prefix(8);
    auto bad = [&](const char* why) { return usage_error(fmt::format("bad redis URL '{}': {}", url, why)); };
    std::string_view hostport = rest, dbpart;
    if (auto slash = rest.find('/'); slash != std::string_view::npos) {
        hostport = rest.substr(0, slash);
        dbpart = rest.substr(slash + 1);
    }
    if (hostport.find('@') != std::string_view::npos) throw bad("user and password are not supported");
    std::string_view port;
    if (hostport.starts_with("[")) {
        auto close = hostport.find(']');
        if (close == std::string_view::npos) throw bad("missing ']'");
        ep.host = std::string(hostport.substr(1, close - 1));
        auto after = hostport.substr(close + 1);
        if (!after.empty()) {
            if (after[0] != ':') throw bad("expected ':PORT' after ']'");
            port = after.substr(1);
        }
    } else if (auto colon = hostport.rfind(':'); colon != std::string_view::npos) {
        ep.host = std::string(hostport.substr(0, colon));
        port = hostport.substr(colon + 1);
    } else {
        ep.host = std::string(hostport);
    }
    if (ep.host.empty()) throw bad("no host");
    if (!port.empty() || hostport.ends_with(":")) {
        std::uint64_t p = 0;
        auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
        if (ec != std::errc() || ptr != port.data() + port.size() || p == 0 || p > 65535) throw bad("bad port");
        ep.port = static_cast<int>(p);
    }
    if (!dbpart.empty()) {
        std::uint64_t d = 0;
        auto [ptr, ec] = std::from_chars(dbpart.data(), dbpart.data() + dbpart.size(), d);
        if (ec != std::errc() || ptr != dbpart.data() + dbpart.size() || d > 1000000) throw bad("bad database number");
        ep.db = static_cast<int>(d);
    }
    return ep;
}

struct reply_free {
    void operator()(redisReply* r) const noexcept {
        if (r) freeReplyObject(r);
    }
};
using reply = std::unique_ptr<redisReply, reply_free>;

std::string_view text(const redisReply* r) {
    if (r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR))
        return {r->str, r->len};
    return {};
}
std::int64_t integer(const redisReply* r) {
    if (!r) return 0;
    if (r->type == REDIS_REPLY_INTEGER) return r->integer;
    if (r->type == REDIS_REPLY_STRING) return to_i64(text(r));
    return 0;
}
std::size_t count(const redisReply* r) { return r && r->type == REDIS_REPLY_ARRAY ? r->elements : 0; }
const redisReply* at(const redisReply* r, std::size_t i) {
    return r && r->type == REDIS_REPLY_ARRAY && i < r->elements ? r->element[i] : nullptr;
}

/// Arguments of one command: views of the caller's data plus numbers it owns.
class args {
public:
    args& add(std::string_view s) {
        ptr_.push_back(s.data());
        len_.push_back(s.size());
        return *this;
    }
    args& num(std::uint64_t v) { return own(std::to_string(v)); }
    args& snum(std::int64_t v) { return own(std::to_string(v)); }
    args& own(std::string s) {
        owned_.push_back(std::move(s));
        return add(owned_.back());
    }
    int size() const { return static_cast<int>(ptr_.size()); }
    const char** argv() { return ptr_.data(); }
    const std::size_t* lens() const { return len_.data(); }

private:
    std::vector<const char*> ptr_;
    std::vector<std::size_t> len_;
    std::deque<std::string> owned_;  // a deque never moves its elements
};

// A script and the SHA1 the server gave it (SCRIPT LOAD), once per process.
class script {
public:
    explicit script(const char* body, bool box = true)
        : body_(std::string(lua::prelude_core) + (box ? lua::prelude : "") + body) {}
    const std::string& body() const { return body_; }
    std::string sha() const {
        std::lock_guard lock(m_);
        return sha_;
    }
    void set_sha(std::string sha) const {
        std::lock_guard lock(m_);
        sha_ = std::move(sha);
    }

private:
    std::string body_;
    mutable std::mutex m_;
    mutable std::string sha_;
};

const script& s_create() { static const script s(lua::create); return s; }
const script& s_send() { static const script s(lua::send); return s; }
const script& s_recv() { static const script s(lua::recv); return s; }
const script& s_ack() { static const script s(lua::ack); return s; }
const script& s_lease() { static const script s(lua::lease); return s; }
const script& s_stat() { static const script s(lua::stat); return s; }
const script& s_remove_group() { static const script s(lua::remove_group); return s; }
const script& s_remove() { static const script s(lua::remove); return s; }
const script& s_fast_pre() { static const script s(lua::fast_pre, false); return s; }
const script& s_fast_post() { static const script s(lua::fast_post, false); return s; }
// The transient consumer group of the fast path (see lua::fast_pre): a NUL
// byte keeps it apart from any group a receiver names.
const std::string fast_reader("\0ipc-mbox:reader", 16);

class connection {
public:
    explicit connection(endpoint ep) : ep_(std::move(ep)) { connect(); }
    ~connection() { drop(); }
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    const endpoint& where() const { return ep_; }

    /// One command; an error reply is returned as it is.
    reply command(args& a) {
        ensure();
        auto* r = static_cast<redisReply*>(redisCommandArgv(c_, a.size(), a.argv(), a.lens()));
        if (!r) lost();
        return reply(r);
    }
    reply command(std::initializer_list<std::string_view> list) {
        args a;
        for (auto s : list) a.add(s);
        return command(a);
    }

    /// Several commands in one round trip; every reply, errors as they are.
    std::vector<reply> pipeline(std::vector<args>& cmds) {
        ensure();
        for (auto& a : cmds)
            if (redisAppendCommandArgv(c_, a.size(), a.argv(), a.lens()) != REDIS_OK) lost();
        std::vector<reply> out;
        out.reserve(cmds.size());
        for (std::size_t i = 0; i < cmds.size(); ++i) {
            void* r = nullptr;
            if (redisGetReply(c_, &r) != REDIS_OK || !r) lost();
            out.emplace_back(static_cast<redisReply*>(r));
        }
        return out;
    }

    /// The SHA1 of a script, loaded (SCRIPT LOAD) when not known yet.
    std::string sha_of(const script& s) {
        std::string sha = s.sha();
        if (sha.empty()) {
            reply l = command({"SCRIPT", "LOAD", s.body()});
            if (l->type == REDIS_REPLY_ERROR) throw server_error(text(l.get()));
            sha = std::string(text(l.get()));
            s.set_sha(sha);
        }
        return sha;
    }

    /// Runs a script: EVALSHA, or EVAL when the server does not know it
    /// (after a restart or SCRIPT FLUSH). An error reply becomes ipc::error.
    reply eval(const script& s, std::initializer_list<std::string_view> keys, args& argv) {
        std::string sha = s.sha();
        if (sha.empty()) {
            reply l = command({"SCRIPT", "LOAD", s.body()});
            if (l->type == REDIS_REPLY_ERROR) throw server_error(text(l.get()));
            sha = std::string(text(l.get()));
            s.set_sha(sha);
        }
        auto build = [&](std::string_view verb, std::string_view what) {
            args a;
            a.add(verb).add(what).num(keys.size());
            for (auto k : keys) a.add(k);
            const char** p = argv.argv();
            for (int i = 0; i < argv.size(); ++i) a.add(std::string_view(p[i], argv.lens()[i]));
            return a;
        };
        args a = build("EVALSHA", sha);
        reply r = command(a);
        if (r->type == REDIS_REPLY_ERROR && text(r.get()).starts_with("NOSCRIPT")) {
            args e = build("EVAL", s.body());
            r = command(e);
        }
        if (r->type == REDIS_REPLY_ERROR) throw server_error(text(r.get()));
        return r;
    }

    /// A blocking command (XREAD BLOCK ms) waited for with ppoll, so that
    /// SIGINT/SIGTERM end the wait at once (the connection is then dropped:
    /// its reply is still due). client_name is set first when it differs.
    reply blocking(args& a, std::chrono::milliseconds block, const std::string& client_name) {
        ensure();
        int expect = 1;
        if (client_name != name_) {
            const char* argv[] = {"CLIENT", "SETNAME", client_name.c_str()};
            std::size_t lens[] = {6, 7, client_name.size()};
            redisAppendCommandArgv(c_, 3, argv, lens);
            name_ = client_name;
            ++expect;
        }
        redisAppendCommandArgv(c_, a.size(), a.argv(), a.lens());
        try {
            int done = 0;
            while (!done)
                if (redisBufferWrite(c_, &done) != REDIS_OK) lost();
            auto until = deadline::after(block + std::chrono::seconds(30));
            reply last;
            for (int i = 0; i < expect; ++i) {
                void* r = nullptr;
                for (;;) {
                    if (redisGetReplyFromReader(c_, &r) != REDIS_OK) lost();
                    if (r) break;
                    if (wait_fd(c_->fd, POLLIN, until) == 0)
                        throw error(exit_code::unavailable, fmt::format("{} does not answer", ep_.url));
                    if (redisBufferRead(c_) != REDIS_OK) lost();
                }
                last.reset(static_cast<redisReply*>(r));
                if (last->type == REDIS_REPLY_ERROR) throw server_error(text(last.get()));
            }
            return last;
        } catch (...) {
            drop();
            throw;
        }
    }

    error server_error(std::string_view msg) const {
        if (msg.starts_with("NOMBOX")) return error(exit_code::no_object, "no such mailbox");
        if (msg.starts_with("WRONGTYPE")) return data_error(fmt::format("{}: not a mailbox: {}", ep_.url, msg));
        return error(exit_code::unavailable, fmt::format("{} refused: {}", ep_.url, msg));
    }

private:
    [[noreturn]] void lost() {
        std::string why = c_ && c_->errstr[0] ? c_->errstr : "connection closed";
        drop();
        throw error(exit_code::unavailable, fmt::format("lost the connection to {}: {}", ep_.url, why));
    }
    void connect() {
        c_ = redisConnectWithTimeout(ep_.host.c_str(), ep_.port, to_timeval(connect_timeout));
        if (!c_ || c_->err) {
            std::string why = c_ ? c_->errstr : "out of memory";
            drop();
            throw error(exit_code::unavailable, fmt::format("cannot connect to {}: {}", ep_.url, why));
        }
        redisSetTimeout(c_, to_timeval(command_timeout));
        name_.clear();
        if (ep_.db != 0) {
            reply r = command({"SELECT", std::to_string(ep_.db)});
            if (r->type == REDIS_REPLY_ERROR) {
                std::string msg = fmt::format("{}: cannot select database {}: {}", ep_.url, ep_.db, text(r.get()));
                drop();
                throw error(exit_code::unavailable, msg);
            }
        }
    }
    void ensure() {
        if (!c_) connect();
    }
    void drop() {
        if (c_) redisFree(c_);
        c_ = nullptr;
    }

    redisContext* c_ = nullptr;
    endpoint ep_;
    std::string name_;  // the CLIENT SETNAME given on this connection
};

// ---------------------------------------------------------------------------
// Names

std::string body_of(const location& where) {
    const std::string& n = where.name;
    std::string body = n.starts_with("/") ? n.substr(1) : n;
    if (body.empty()) throw usage_error("a mailbox needs a name");
    if (body.find_first_of("{}") != std::string::npos)
        throw usage_error("the redis backend cannot use '{' or '}' in a mailbox name: '" + n + "'");
    return body;
}

struct keyset {
    std::string stream, meta, ev, free;
    explicit keyset(const std::string& body)
        : stream(std::string(key_prefix) + body + "}"), meta(stream + ":meta"), ev(stream + ":ev"),
          free(stream + ":free") {}
};

std::string escape_name(std::string_view s) {
    std::string out;
    for (unsigned char c : s) {
        if (c <= ' ' || c > '~' || c == '%') out += fmt::format("%{:02X}", c);
        else out += static_cast<char>(c);
    }
    return out;
}

std::string consumer_token() {
    static std::atomic<unsigned> counter{0};
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    return fmt::format("~{}:{}:{}", escape_name(host), ::getpid(), ++counter);
}

std::string receiver_client(const std::string& body, const std::string& group) {
    return "ipc-mbox:r:" + escape_name(body) + ":" + escape_name(group);
}
std::string sender_client(const std::string& body) { return "ipc-mbox:s:" + escape_name(body); }

// CLIENT LIST: connection name -> how many of those are blocked now.
std::map<std::string, std::uint64_t> blocked_clients(connection& c) {
    std::map<std::string, std::uint64_t> out;
    reply r = c.command({"CLIENT", "LIST"});
    std::string_view all = text(r.get());
    while (!all.empty()) {
        auto nl = all.find('\n');
        std::string_view line = all.substr(0, nl);
        all = nl == std::string_view::npos ? std::string_view() : all.substr(nl + 1);
        std::string_view name, flags;
        std::size_t i = 0;
        while (i < line.size()) {
            auto sp = line.find(' ', i);
            auto word = line.substr(i, sp == std::string_view::npos ? std::string_view::npos : sp - i);
            if (word.starts_with("name=")) name = word.substr(5);
            else if (word.starts_with("flags=")) flags = word.substr(6);
            if (sp == std::string_view::npos) break;
            i = sp + 1;
        }
        if (name.starts_with("ipc-mbox:") && flags.find('b') != std::string_view::npos) ++out[std::string(name)];
    }
    return out;
}

using flat = std::unordered_map<std::string, std::string>;

flat flat_map(const redisReply* r) {
    flat m;
    for (std::size_t i = 0; i + 1 < count(r); i += 2) m[std::string(text(at(r, i)))] = std::string(text(at(r, i + 1)));
    return m;
}
std::uint64_t field(const flat& m, const std::string& k) {
    auto it = m.find(k);
    return it == m.end() ? 0 : to_u64(it->second);
}

mailbox_stat stat_of(connection& c, const std::string& body, const std::map<std::string, std::uint64_t>* blocked) {
    keyset k(body);
    args a;
    reply r = c.eval(s_stat(), {k.stream, k.meta}, a);
    auto meta = flat_map(at(r.get(), 0));
    if (!meta.contains("max_msgs"))
        throw data_error(fmt::format("'/{}' on {} is not a valid mailbox", body, c.where().url));
    mailbox_stat st;
    st.name = "/" + body;
    st.backend = c.where().url;
    st.lim.max_msgs = field(meta, "max_msgs");
    st.lim.max_bytes = field(meta, "max_bytes");
    st.lim.max_msg_size = field(meta, "max_msg_size");
    st.overflow = meta["overflow"] == "drop-oldest" ? overflow_policy::drop_oldest : overflow_policy::block;
    st.mode = static_cast<mode_t>(field(meta, "mode"));
    st.uid = static_cast<uid_t>(field(meta, "uid"));
    st.created_unix = static_cast<std::int64_t>(field(meta, "created"));
    st.msgs = to_u64(text(at(r.get(), 1)));
    st.bytes = field(meta, "bytes");
    st.next_seq = field(meta, "seq") + 1;
    auto first = text(at(r.get(), 2));
    st.first_seq = first.empty() ? st.next_seq : to_u64(first);
    st.sent = field(meta, "sent");
    st.dropped = field(meta, "dropped");
    std::map<std::string, std::uint64_t> own;
    if (!blocked) {
        own = blocked_clients(c);
        blocked = &own;
    }
    auto waiting = [&](const std::string& n) -> std::uint64_t {
        auto it = blocked->find(n);
        return it == blocked->end() ? 0 : it->second;
    };
    st.senders_waiting = waiting(sender_client(body));
    const redisReply* gs = at(r.get(), 3);
    for (std::size_t i = 0; i < count(gs); ++i) {
        const redisReply* g = at(gs, i);
        group_stat gst;
        gst.name = std::string(text(at(g, 0)));
        auto h = flat_map(at(g, 1));
        gst.topic = h["topic"];
        gst.from = h["from"];
        gst.position = std::max(field(h, "pos") + 1, st.first_seq);
        gst.lag = st.next_seq > gst.position ? st.next_seq - gst.position : 0;
        std::uint64_t pending = to_u64(text(at(g, 3)));
        gst.held = to_u64(text(at(g, 4)));
        gst.pending = pending > gst.held ? pending - gst.held : 0;
        gst.delivered = field(h, "delivered");
        gst.redelivered = field(h, "redelivered");
        gst.acked = field(h, "acked");
        gst.filtered = field(h, "filtered");
        gst.dropped = field(h, "dropped");
        gst.dead_lettered = field(h, "dead_lettered");
        gst.receivers_waiting = waiting(receiver_client(body, gst.name));
        st.receivers_waiting += gst.receivers_waiting;
        st.groups.push_back(std::move(gst));
    }
    return st;
}

void refuse_unsupported(const location& where, const create_options& opt) {
    if (opt.lim.max_msgs == 0)
        throw error(exit_code::unavailable,
                    "the redis backend cannot make a rendezvous mailbox (max-msgs 0); use the local backend");
    if (opt.sync == sync_policy::always)
        throw error(exit_code::unavailable,
                    "the redis backend cannot sync each message (sync always); configure Redis persistence "
                    "(appendfsync always) instead");
    if (!where.dir.empty())
        throw error(exit_code::unavailable, "the redis backend cannot keep a mailbox in a directory (--dir)");
}


// "FIRST LAST REASON;..." -> skipped ranges.
std::vector<skipped_range> parse_skips(std::string_view s) {
    std::vector<skipped_range> out;
    while (!s.empty()) {
        auto semi = s.find(';');
        auto item = s.substr(0, semi);
        s = semi == std::string_view::npos ? std::string_view() : s.substr(semi + 1);
        auto sp1 = item.find(' ');
        auto sp2 = sp1 == std::string_view::npos ? sp1 : item.find(' ', sp1 + 1);
        if (sp2 == std::string_view::npos) continue;
        skipped_range r;
        r.first = to_u64(item.substr(0, sp1));
        r.last = to_u64(item.substr(sp1 + 1, sp2 - sp1 - 1));
        r.reason = std::string(item.substr(sp2 + 1));
        out.push_back(std::move(r));
    }
    return out;
}

// A stream entry (its id and fields) to a message.
message entry_message(std::string_view id, const redisReply* f) {
    message m;
    bool have_ts = false;
    for (std::size_t i = 0; i + 1 < count(f); i += 2) {
        std::string_view k = text(at(f, i)), v = text(at(f, i + 1));
        if (k == "seq") m.seq = to_u64(v);
        else if (k == "ts") {
            m.timestamp_ns = to_u64(v);
            have_ts = true;
        } else if (k == "pid") m.sender.pid = static_cast<std::int32_t>(to_i64(v));
        else if (k == "uid") m.sender.uid = static_cast<std::uint32_t>(to_u64(v));
        else if (k == "from") m.sender.name = std::string(v);
        else if (k == "topic") m.topic = std::string(v);
        else if (k == "to") m.to = std::string(v);
        else if (k == "body") m.data = std::string(v);
        else if (k == "origin_seq") m.origin_seq = to_u64(v);
    }
    if (!have_ts) m.timestamp_ns = to_u64(id.substr(0, id.find('-'))) * 1'000'000;
    return m;
}

// What the recv script returns for a message, {id, deliveries, skipped, fields}, to a message.
message to_message(const redisReply* d) {
    message m = entry_message(text(at(d, 0)), at(d, 3));
    m.deliveries = static_cast<std::uint32_t>(to_u64(text(at(d, 1))));
    m.skipped = parse_skips(text(at(d, 2)));
    return m;
}

// Adds seqs a..b to skipped ranges as the recv script does (merging a range
// that continues the last one with the same reason; seq 0 is none).
void add_skip(std::vector<skipped_range>& v, std::uint64_t a, std::uint64_t b, const char* reason) {
    if (a == 0 || b < a) return;
    if (!v.empty() && v.back().reason == reason && v.back().last + 1 == a) {
        v.back().last = b;
        return;
    }
    v.push_back({a, b, reason});
}

// ---------------------------------------------------------------------------
// The mailbox

class redis_mailbox final : public mailbox {
public:
    redis_mailbox(endpoint ep, std::string body, limits lim)
        : c_(std::move(ep)), body_(std::move(body)), k_(body_), lim_(lim), token_(consumer_token()) {}

    send_result send(std::span<const outgoing> msgs, const send_options& opt) override;
    std::size_t recv(const recv_options& opt, const std::function<void(message&)>& fn) override;
    std::size_t ack(const std::string& group, std::span<const std::uint64_t> seqs) override;
    void release(const std::string& group, std::uint64_t seq) override { lease_op(group, seq, "release", {}); }
    void renew(const std::string& group, std::uint64_t seq, std::chrono::milliseconds lease) override {
        lease_op(group, seq, "renew", lease);
    }
    mailbox_stat stat() override { return stat_of(c_, body_, nullptr); }
    bool remove_group(const std::string& group) override;
    std::uint64_t change_count() override;
    bool wait_change(std::uint64_t seen, const deadline& until) override;

private:
    void lease_op(const std::string& group, std::uint64_t seq, const char* mode, std::chrono::milliseconds lease);
    std::string hint(const std::string& group, std::uint64_t seq) const {
        auto g = ids_.find(group);
        if (g == ids_.end()) return {};
        auto it = g->second.find(seq);
        return it == g->second.end() ? std::string() : it->second;
    }
    /// Waits in XREAD BLOCK for at most wait_step (and the deadline) for an
    /// entry after each stream's given id.
    void wait_streams(const deadline& until, std::initializer_list<std::pair<std::string_view, std::string>> streams,
                      const std::string& client_name);
    struct fast_outcome {
        enum { slow, empty, passed, delivered } kind = slow;
        std::size_t n = 0;
        std::string stream_id, ev_id;  // empty: where a wait starts
    };
    /// One take-mode read through the fast path (see lua::fast_pre).
    fast_outcome fast_recv(const std::string& group, const std::string& consumer, const recv_options& opt,
                           std::size_t want, const std::function<void(message&)>& fn, bool retry = true);

    connection c_;
    std::string body_;
    keyset k_;
    limits lim_;
    std::string token_;  // the consumer name of a receiver without --as
    // seq -> stream id of messages delivered with --ack, per group: hints for ack/release/renew
    std::map<std::string, std::map<std::uint64_t, std::string>> ids_;
    // groups whose last recv here went through the recv script without trouble: worth the fast path
    std::map<std::string, bool> fast_;
};

void redis_mailbox::wait_streams(const deadline& until,
                                 std::initializer_list<std::pair<std::string_view, std::string>> streams,
                                 const std::string& client_name) {
    using std::chrono::milliseconds;
    auto left = until.remaining();
    milliseconds block = wait_step;
    if (left) block = std::min(block, std::chrono::ceil<milliseconds>(*left));
    if (block.count() <= 0) return;
    args a;
    // COUNT 1: a wake-up only (without it a late reply would carry every new entry)
    a.add("XREAD").add("COUNT").add("1").add("BLOCK").num(static_cast<std::uint64_t>(block.count())).add("STREAMS");
    for (auto& s : streams) a.add(s.first);
    for (auto& s : streams) a.add(s.second);
    c_.blocking(a, block, client_name);
}

send_result redis_mailbox::send(std::span<const outgoing> msgs, const send_options& opt) {
    send_result res;
    for (auto& m : msgs)
        if (m.data.size() > lim_.max_msg_size)
            throw data_error(fmt::format("message of {} bytes is over the mailbox's max-msg-size of {} bytes",
                                         m.data.size(), lim_.max_msg_size));
    res.seqs.reserve(msgs.size());
    std::string policy;
    if (opt.overflow) policy = std::string(overflow_name(*opt.overflow));
    std::string pid = std::to_string(::getpid()), uid = std::to_string(::getuid());
    std::size_t i = 0;
    while (i < msgs.size()) {
        check_interrupt();
        std::size_t n = 0, bytes = 0;
        while (i + n < msgs.size() && n < send_chunk_msgs &&
               (n == 0 || bytes + msgs[i + n].data.size() <= send_chunk_bytes))
            bytes += msgs[i + n++].data.size();
        args a;
        a.add(policy).snum(now_ns()).add(pid).add(uid).add(opt.as).num(n);
        bool bodies = std::all_of(msgs.begin() + static_cast<std::ptrdiff_t>(i),
                                  msgs.begin() + static_cast<std::ptrdiff_t>(i + n),
                                  [](const outgoing& m) { return m.topic.empty() && m.to.empty(); });
        a.add(bodies ? "b" : "t");
        for (std::size_t j = 0; j < n; ++j) {
            if (!bodies) a.add(msgs[i + j].topic).add(msgs[i + j].to);
            a.add(msgs[i + j].data);
        }
        reply r = c_.eval(s_send(), {k_.stream, k_.meta, k_.ev, k_.free}, a);
        std::uint64_t first = to_u64(text(at(r.get(), 0))), sent = to_u64(text(at(r.get(), 1)));
        for (std::uint64_t s = 0; s < sent; ++s) res.seqs.push_back(first + s);
        i += sent;
        auto status = text(at(r.get(), 2));
        if (status == "TOOBIG")
            throw data_error(fmt::format("message {} with its fields does not fit in the mailbox's max-bytes of {}",
                                         i + 1, lim_.max_bytes));
        if (status == "FULL") {
            if (opt.until.expired()) {
                res.timed_out = true;
                break;
            }
            wait_streams(opt.until, {{k_.free, std::string(text(at(r.get(), 3)))}}, sender_client(body_));
        }
    }
    return res;
}

redis_mailbox::fast_outcome redis_mailbox::fast_recv(const std::string& group, const std::string& consumer,
                                                     const recv_options& opt, std::size_t want,
                                                     const std::function<void(message&)>& fn, bool retry) {
    std::string pre_sha = c_.sha_of(s_fast_pre()), post_sha = c_.sha_of(s_fast_post());
    std::vector<args> cmds(5);
    cmds[0].add("MULTI");
    cmds[1].add("EVALSHA").add(pre_sha).add("1").add(k_.stream).add(group).add(opt.as);
    cmds[1].num(static_cast<std::uint64_t>(std::max<std::int64_t>(opt.lease.count(), 1))).add(fast_reader);
    cmds[2].add("XREADGROUP").add("GROUP").add(fast_reader).add(consumer).add("COUNT").num(want).add("NOACK");
    cmds[2].add("STREAMS").add(k_.stream).add(">");
    cmds[3].add("EVALSHA").add(post_sha).add("4").add(k_.stream).add(k_.meta).add(k_.ev).add(k_.free);
    cmds[3].add(group).add(opt.as).add(fast_reader);
    cmds[4].add("EXEC");
    auto rs = c_.pipeline(cmds);
    for (auto& r : rs)
        if (r->type == REDIS_REPLY_ERROR) throw c_.server_error(text(r.get()));
    const redisReply* ex = rs[4].get();
    const redisReply *pre = at(ex, 0), *rd = at(ex, 1), *post = at(ex, 2);
    if (!pre || !post) throw error(exit_code::unavailable, fmt::format("{}: bad reply to EXEC", c_.where().url));
    fast_outcome out;
    if (text(pre).starts_with("NOSCRIPT") || text(post).starts_with("NOSCRIPT")) {
        // A restarted or flushed server: nothing was read (no reader). Load them again.
        s_fast_pre().set_sha({});
        s_fast_post().set_sha({});
        if (retry) return fast_recv(group, consumer, opt, want, fn, false);
        return out;  // slow
    }
    if (post->type == REDIS_REPLY_ERROR) throw c_.server_error(text(post));
    if (pre->type == REDIS_REPLY_ERROR) throw c_.server_error(text(pre));
    auto status = text(at(post, 0));
    if (status == "SLOW") return out;
    if (status == "EMPTY") {
        out.kind = fast_outcome::empty;
        out.stream_id = std::string(text(at(post, 1)));
        out.ev_id = std::string(text(at(post, 2)));
        return out;
    }
    if (rd->type == REDIS_REPLY_ERROR) throw c_.server_error(text(rd));
    std::uint64_t prev = to_u64(text(at(post, 1)));
    auto skips = parse_skips(text(at(post, 2)));
    std::string_view boundary = text(at(post, 3));
    out.kind = fast_outcome::passed;
    if (boundary.empty()) return out;  // all for others: the script kept their ranges
    const redisReply* es = at(at(rd, 0), 1);
    std::vector<message> got;
    got.reserve(count(es));
    for (std::size_t i = 0; i < count(es); ++i) {
        std::string_view id = text(at(at(es, i), 0));
        message m = entry_message(id, at(at(es, i), 1));
        if (m.seq > 0) {
            if (m.seq > prev + 1) add_skip(skips, prev + 1, m.seq - 1, "dropped");
            prev = std::max(prev, m.seq);
        }
        if (!m.to.empty() && m.to != opt.as) {
            add_skip(skips, m.seq, m.seq, "addressed");
        } else {
            m.skipped = std::move(skips);
            skips.clear();
            got.push_back(std::move(m));
        }
        if (id == boundary) break;  // what follows is for others: the script kept their ranges
    }
    if (got.empty()) return out;
    out.kind = fast_outcome::delivered;
    out.n = got.size();
    for (auto& m : got) fn(m);
    return out;
}

std::size_t redis_mailbox::recv(const recv_options& opt, const std::function<void(message&)>& fn) {
    std::string group = opt.group.effective_name();
    std::string consumer = opt.as.empty() ? token_ : opt.as;
    std::string pattern = glob_to_lua_pattern(opt.group.topic);
    std::string dl = opt.dead_letter.empty() ? body_ + ".dead"
                                             : (opt.dead_letter.starts_with("/") ? opt.dead_letter.substr(1)
                                                                                 : opt.dead_letter);
    location dl_loc{"/" + dl, c_.where().url, ""};
    keyset dk(body_of(dl_loc));
    limits dlim;
    std::string client = receiver_client(body_, group);
    std::size_t want = std::max<std::size_t>(opt.max_batch, 1);
    // Take mode without a subscription: new messages straight from XREADGROUP
    // when nothing is held or due again (the recv script does those).
    const bool fast = !opt.ack && opt.group.topic.empty() && opt.group.from.empty();
    for (;;) {
        check_interrupt();
        if (fast && fast_[group]) {
            auto f = fast_recv(group, consumer, opt, want, fn);
            if (f.kind == fast_outcome::delivered) return f.n;
            if (f.kind == fast_outcome::passed) {  // all for others: read on
                if (opt.until.expired()) return 0;
                continue;
            }
            if (f.kind == fast_outcome::empty) {
                if (opt.until.expired()) return 0;
                wait_streams(opt.until, {{k_.stream, f.stream_id}, {k_.ev, f.ev_id}}, client);
                continue;
            }
            fast_[group] = false;  // once through the recv script, then the fast path again
        }
        args a;
        a.add(group).add(consumer).add(opt.as).add(opt.ack ? "1" : "0");
        a.num(static_cast<std::uint64_t>(std::max<std::int64_t>(opt.lease.count(), 1)));
        a.num(opt.max_deliveries).num(want).add(opt.group.topic).add(pattern).add(opt.group.from);
        a.add(opt.group.new_only ? "1" : "0");
        a.num(dlim.max_msgs).num(dlim.max_bytes).num(dlim.max_msg_size);
        a.snum(std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
                   .count());
        a.num(::getuid()).num(0600);
        reply r = c_.eval(s_recv(), {k_.stream, k_.meta, k_.ev, k_.free, dk.stream, dk.meta}, a);
        if (text(at(r.get(), 0)) == "SUBSCRIPTION") {
            auto any = [](std::string_view s) { return s.empty() ? std::string("any") : "'" + std::string(s) + "'"; };
            throw usage_error(fmt::format(
                "group '{}' subscribes to topic {} from {}; this receiver asks for topic {} from {}", group,
                any(text(at(r.get(), 1))), any(text(at(r.get(), 2))), any(opt.group.topic), any(opt.group.from)));
        }
        if (fast) fast_[group] = true;
        const redisReply* ds = at(r.get(), 3);
        if (count(ds) > 0) {
            std::vector<message> got;
            got.reserve(count(ds));
            for (std::size_t i = 0; i < count(ds); ++i) {
                got.push_back(to_message(at(ds, i)));
                if (opt.ack) {
                    auto& ids = ids_[group];
                    if (ids.size() > 100000) ids.clear();
                    ids[got.back().seq] = std::string(text(at(at(ds, i), 0)));
                }
            }
            for (auto& m : got) fn(m);
            return got.size();
        }
        if (opt.until.expired()) return 0;
        wait_streams(opt.until,
                     {{k_.stream, std::string(text(at(r.get(), 1)))}, {k_.ev, std::string(text(at(r.get(), 2)))}},
                     client);
    }
}

std::size_t redis_mailbox::ack(const std::string& group, std::span<const std::uint64_t> seqs) {
    if (seqs.empty()) return 0;
    args a;
    a.add(group).num(seqs.size());
    for (auto s : seqs) a.num(s).own(hint(group, s));
    reply r = c_.eval(s_ack(), {k_.stream, k_.meta, k_.ev, k_.free}, a);
    if (auto g = ids_.find(group); g != ids_.end())
        for (auto s : seqs) g->second.erase(s);
    return static_cast<std::size_t>(integer(r.get()));
}

void redis_mailbox::lease_op(const std::string& group, std::uint64_t seq, const char* mode,
                             std::chrono::milliseconds lease) {
    args a;
    a.add(group).num(seq).own(hint(group, seq)).add(mode).num(static_cast<std::uint64_t>(std::max<std::int64_t>(lease.count(), 1)));
    c_.eval(s_lease(), {k_.stream, k_.meta, k_.ev, k_.free}, a);
}

bool redis_mailbox::remove_group(const std::string& group) {
    args a;
    a.add(group);
    reply r = c_.eval(s_remove_group(), {k_.stream, k_.meta, k_.ev, k_.free}, a);
    ids_.erase(group);
    return integer(r.get()) == 1;
}

std::uint64_t redis_mailbox::change_count() {
    reply r = c_.command({"HMGET", k_.meta, "changes", "max_msgs"});
    if (r->type == REDIS_REPLY_ERROR) throw c_.server_error(text(r.get()));
    if (!at(r.get(), 1) || at(r.get(), 1)->type == REDIS_REPLY_NIL) throw error(exit_code::no_object, "no such mailbox");
    return to_u64(text(at(r.get(), 0)));
}

bool redis_mailbox::wait_change(std::uint64_t seen, const deadline& until) {
    // Sends wake the XREAD at once; takes and acks are seen within a step.
    constexpr auto step = std::chrono::milliseconds(100);
    for (;;) {
        if (change_count() != seen) return true;
        if (until.expired()) return false;
        reply top = c_.command({"XREVRANGE", k_.stream, "+", "-", "COUNT", "1"});
        std::string last = count(top.get()) ? std::string(text(at(at(top.get(), 0), 0))) : "0-0";
        auto left = until.remaining();
        auto block = left ? std::min<std::chrono::milliseconds>(step, std::chrono::ceil<std::chrono::milliseconds>(*left)) : step;
        if (block.count() <= 0) continue;
        args a;
        a.add("XREAD").add("COUNT").add("1").add("BLOCK").num(static_cast<std::uint64_t>(block.count()));
        a.add("STREAMS").add(k_.stream).add(last);
        c_.blocking(a, block, "ipc-mbox:w:" + escape_name(body_));
    }
}

} // namespace

// ---------------------------------------------------------------------------
// Topic patterns: fnmatch(3) without flags, as an anchored Lua pattern, so
// that a group's subscription is applied inside the recv script.

std::string glob_to_lua_pattern(std::string_view g) {
    if (g.empty()) return {};
    auto literal = [](unsigned char c) -> std::string {
        if (c == 0) return "%z";
        if (std::isalnum(c) || c >= 0x80) return std::string(1, static_cast<char>(c));
        return std::string("%") + static_cast<char>(c);  // % before any punctuation is the character itself
    };
    auto char_class = [](std::string_view name) -> std::string {
        if (name == "alpha") return "%a";
        if (name == "digit") return "%d";
        if (name == "alnum") return "%w";
        if (name == "space") return "%s";
        if (name == "upper") return "%u";
        if (name == "lower") return "%l";
        if (name == "punct") return "%p";
        if (name == "xdigit") return "%x";
        if (name == "cntrl") return "%c";
        if (name == "blank") return " \t";
        if (name == "graph") return "%w%p";
        if (name == "print") return "%w%p ";
        throw usage_error(fmt::format("topic pattern: unknown character class '[:{}:]'", name));
    };
    std::string out = "^";
    for (std::size_t i = 0; i < g.size(); ++i) {
        unsigned char c = static_cast<unsigned char>(g[i]);
        if (c == '*') {
            out += ".*";
        } else if (c == '?') {
            out += '.';
        } else if (c == '\\' && i + 1 < g.size()) {
            out += literal(static_cast<unsigned char>(g[++i]));
        } else if (c == '[') {
            // The bracket expression's end: a ']' right after '[' or '[!' is a member.
            std::size_t j = i + 1;
            bool negate = j < g.size() && (g[j] == '!' || g[j] == '^');
            if (negate) ++j;
            std::size_t start = j;
            if (j < g.size() && g[j] == ']') ++j;
            while (j < g.size() && g[j] != ']') {
                if (g[j] == '[' && j + 1 < g.size() && g[j + 1] == ':') {
                    auto end = g.find(":]", j + 2);
                    if (end == std::string_view::npos) break;
                    j = end + 2;
                    continue;
                }
                if (g[j] == '\\' && j + 1 < g.size()) ++j;
                ++j;
            }
            if (j >= g.size()) {  // no closing ']': a literal '['
                out += "%[";
                continue;
            }
            std::string set = negate ? "[^" : "[";
            for (std::size_t k = start; k < j; ++k) {
                unsigned char d = static_cast<unsigned char>(g[k]);
                if (d == '[' && k + 1 < j && g[k + 1] == ':') {
                    auto end = g.find(":]", k + 2);
                    set += char_class(g.substr(k + 2, end - k - 2));
                    k = end + 1;
                } else if (d == '\\' && k + 1 < j) {
                    set += literal(static_cast<unsigned char>(g[++k]));
                } else if (d == '-' && k != start && k + 1 < j) {
                    set += '-';
                } else {
                    set += literal(d);
                }
            }
            out += set + "]";
            i = j;
        } else {
            out += literal(c);
        }
    }
    return out + "$";
}

// ---------------------------------------------------------------------------
// Entry points

bool create(const location& where, const create_options& opt) {
    refuse_unsupported(where, opt);
    const auto& lim = opt.lim;
    if (lim.max_msg_size == 0) throw usage_error("max-msg-size must be at least 1 byte");
    if (lim.max_bytes < lim.max_msg_size)
        throw usage_error(fmt::format("max-bytes ({}) is smaller than max-msg-size ({})", lim.max_bytes,
                                      lim.max_msg_size));
    std::string body = body_of(where);
    connection c(parse_url(where.backend));
    keyset k(body);
    args a;
    a.num(lim.max_msgs).num(lim.max_bytes).num(lim.max_msg_size).add(overflow_name(opt.overflow));
    a.snum(std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count());
    a.num(::getuid()).num(opt.mode);
    reply r = c.eval(s_create(), {k.stream, k.meta}, a);
    if (integer(r.get()) == 1) return true;
    if (opt.exclusive)
        throw error(exit_code::exists, fmt::format("mailbox '{}' already exists on {}", where.name, where.backend));
    return false;
}

std::unique_ptr<mailbox> open(const location& where) {
    if (!where.dir.empty())
        throw error(exit_code::unavailable, "the redis backend cannot keep a mailbox in a directory (--dir)");
    std::string body = body_of(where);
    endpoint ep = parse_url(where.backend);
    connection c(ep);
    keyset k(body);
    reply r = c.command({"HMGET", k.meta, "max_msgs", "max_bytes", "max_msg_size"});
    if (r->type == REDIS_REPLY_ERROR) {
        if (text(r.get()).starts_with("WRONGTYPE"))
            throw data_error(fmt::format("'{}' on {} is not a valid mailbox", where.name, where.backend));
        throw c.server_error(text(r.get()));
    }
    if (!at(r.get(), 0) || at(r.get(), 0)->type == REDIS_REPLY_NIL) {
        reply e = c.command({"EXISTS", k.meta});
        if (integer(e.get()) == 0)
            throw error(exit_code::no_object, fmt::format("no mailbox '{}' on {}", where.name, where.backend));
        throw data_error(fmt::format("'{}' on {} is not a valid mailbox", where.name, where.backend));
    }
    limits lim;
    lim.max_msgs = to_u64(text(at(r.get(), 0)));
    lim.max_bytes = to_u64(text(at(r.get(), 1)));
    lim.max_msg_size = to_u64(text(at(r.get(), 2)));
    return std::make_unique<redis_mailbox>(std::move(ep), std::move(body), lim);
}

void remove(const location& where) {
    std::string body = body_of(where);
    connection c(parse_url(where.backend));
    keyset k(body);
    args a;
    reply r = c.eval(s_remove(), {k.stream, k.meta, k.ev, k.free}, a);
    if (integer(r.get()) == 0)
        throw error(exit_code::no_object, fmt::format("no mailbox '{}' on {}", where.name, where.backend));
}

std::vector<mailbox_stat> list(const location& where) {
    connection c(parse_url(where.backend));
    std::vector<std::string> bodies;
    std::string cursor = "0";
    do {
        reply r = c.command({"SCAN", cursor, "MATCH", "ipc-mbox:{*}:meta", "COUNT", "1000"});
        if (r->type == REDIS_REPLY_ERROR) throw c.server_error(text(r.get()));
        cursor = std::string(text(at(r.get(), 0)));
        const redisReply* ks = at(r.get(), 1);
        for (std::size_t i = 0; i < count(ks); ++i) {
            std::string_view key = text(at(ks, i));
            key.remove_prefix(key_prefix.size());
            auto close = key.find('}');
            if (close == std::string_view::npos || key.substr(close) != "}:meta") continue;
            bodies.emplace_back(key.substr(0, close));
        }
    } while (cursor != "0");
    std::sort(bodies.begin(), bodies.end());
    bodies.erase(std::unique(bodies.begin(), bodies.end()), bodies.end());
    auto blocked = blocked_clients(c);
    std::vector<mailbox_stat> out;
    for (auto& b : bodies) {
        try {
            out.push_back(stat_of(c, b, &blocked));
        } catch (const error& e) {
            if (e.code() != exit_code::no_object && e.code() != exit_code::data) throw;  // removed meanwhile, or foreign
        }
    }
    return out;
}

} // namespace ipc::mbox::redis
