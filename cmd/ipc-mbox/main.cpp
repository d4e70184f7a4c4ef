// SPDX-License-Identifier: MIT
// ipc-mbox: mailboxes with many senders and many receivers, local (no
// server) or on Redis Streams. Parses, calls lib/ (ipc/mbox.hpp), emits.
#include <csignal>
#include <cstdlib>

#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include "ipc/cli.hpp"
#include "ipc/error.hpp"
#include "ipc/mbox.hpp"
#include "ipc/parse.hpp"
#include "ipc/proc.hpp"
#include "ipc/stream.hpp"

extern char** environ;

namespace {

using namespace ipc;
constexpr const char* kind = "mailboxes";

struct options {
    std::vector<std::string> names;
    std::string name;
    std::string backend, dir;
    std::string mode = "0600";
    std::string max_msgs, max_bytes, max_msg_size;
    std::string overflow, sync = "none";
    bool exclusive = false;
    std::vector<std::string> messages;
    std::string as, topic, to, from;
    std::string group;
    bool new_only = false;
    bool ack = false;
    std::string lease = "30s";
    std::uint32_t max_deliveries = 0;
    std::string dead_letter;
    std::string exec;
    std::string wait_mode = "adaptive";
    cli::wait_options wait;
    cli::print_options print;
    cli::input_options input;
    std::uint64_t count = 1;
    bool count_set = false;
    bool follow = false;
    std::vector<std::string> seqs;
    bool dry_run = false;
    std::optional<std::uint64_t> min_msgs;
    bool empty = false;
    std::string interval = "100ms";
    std::uint64_t changes = 0;
};

mbox::location where(const options& o, const std::string& name) {
    mbox::location l;
    l.name = parse::posix_name(name);
    l.backend = o.backend;
    if (l.backend.empty())
        if (const char* b = std::getenv("IPC_MBOX_BACKEND")) l.backend = b;
    l.dir = o.dir;
    if (l.dir.empty() && !l.is_redis())
        if (const char* d = std::getenv("IPC_MBOX_DIR")) l.dir = d;
    return l;
}

mbox::location one(const options& o) {
    if (o.name.empty()) throw usage_error("missing mailbox NAME");
    return where(o, o.name);
}

out::json ranges_json(const std::vector<mbox::skipped_range>& v) {
    out::json a = out::json::array();
    for (const auto& r : v) a.push_back({{"first", r.first}, {"last", r.last}, {"reason", r.reason}});
    return a;
}

out::record group_record(const mbox::group_stat& g) {
    out::record r;
    r.add("group", g.name)
        .add("topic", g.topic.empty() ? out::json(nullptr) : out::json(g.topic), g.topic.empty() ? "*" : g.topic)
        .add("from", g.from.empty() ? out::json(nullptr) : out::json(g.from), g.from.empty() ? "*" : g.from)
        .add("position", g.position)
        .add("lag", g.lag)
        .add("pending", g.pending)
        .add("held", g.held)
        .add("delivered", g.delivered)
        .add("redelivered", g.redelivered)
        .add("acked", g.acked)
        .add("filtered", g.filtered)
        .add("dropped", g.dropped)
        .add("dead_lettered", g.dead_lettered)
        .add("receivers_waiting", g.receivers_waiting);
    return r;
}

out::record box_record(const mbox::mailbox_stat& s, bool full) {
    out::record r;
    if (!s.problem.empty()) {  // listed, but not readable: its figures are unknown
        r.add("name", s.name).add("backend", s.backend);
        for (auto k : {"messages", "bytes", "max_msgs", "max_bytes", "max_msg_size_bytes", "groups", "next_seq",
                       "mode", "user"})
            r.add(k, nullptr);
        return r;
    }
    r.add("name", s.name)
        .add("backend", s.backend)
        .add("messages", s.msgs)
        .add("bytes", s.bytes)
        .add("max_msgs", s.lim.max_msgs)
        .add("max_bytes", s.lim.max_bytes)
        .add("max_msg_size_bytes", s.lim.max_msg_size)
        .add("groups", s.groups.size())
        .add("next_seq", s.next_seq);
    if (s.backend == "local") r.add("mode", fmt::format("{:04o}", s.mode)).add("user", proc::user_name(s.uid));
    if (!full) return r;
    r.add("path", s.path.empty() ? out::json(nullptr) : out::json(s.path), s.path.empty() ? "-" : s.path)
        .add("first_seq", s.first_seq)
        .add("overflow", std::string(mbox::overflow_name(s.overflow)))
        .add("sync", std::string(mbox::sync_name(s.sync)))
        .add("sent", s.sent)
        .add("dropped", s.dropped)
        .add("withdrawn", s.withdrawn)
        .add("senders_waiting", s.senders_waiting)
        .add("receivers_waiting", s.receivers_waiting)
        .add("recoveries", s.recoveries)
        .add("created_unix", s.created_unix);
    return r;
}

std::uint64_t size_or(const std::string& text, std::uint64_t dflt) {
    return text.empty() ? dflt : parse::size(text);
}

int do_create(const options& o) {
    if (o.names.empty()) throw usage_error("missing mailbox NAME");
    mbox::create_options c;
    c.lim.max_msgs = o.max_msgs.empty() ? 4096 : parse::unsigned_number(o.max_msgs, "max-msgs", UINT32_MAX);
    c.lim.max_bytes = size_or(o.max_bytes, 4u << 20);
    std::uint64_t dflt_msg = std::min<std::uint64_t>(64u << 10, c.lim.max_bytes > 2048 ? c.lim.max_bytes - 1024 : 1024);
    c.lim.max_msg_size = size_or(o.max_msg_size, dflt_msg);
    if (!o.overflow.empty()) c.overflow = mbox::parse_overflow(o.overflow);
    c.sync = mbox::parse_sync(o.sync);
    c.mode = parse::mode(o.mode);
    c.exclusive = o.exclusive;
    std::vector<mbox::location> locs;  // all checked before the first is made
    for (const auto& n : o.names) locs.push_back(where(o, n));
    std::vector<out::record> records;
    int status = 0;
    for (const auto& l : locs) {
        try {
            if (!mbox::create(l, c))
                cli::warn(fmt::format("mailbox '{}' exists; its limits and mode are unchanged", l.name));
            records.push_back(box_record(mbox::open(l)->stat(), false));
        } catch (const error& e) {
            if (e.code() == exit_code::usage) throw;
            cli::report(e);
            if (status == 0) status = static_cast<int>(e.code());
        }
    }
    cli::emit(kind, records);
    return status;
}

int do_send(const options& o) {
    auto l = one(o);
    if (!o.messages.empty() && (!o.input.file.empty() || o.input.whole || o.input.jsonl || o.input.nul))
        throw usage_error("give messages as arguments or on stdin, not both");
    mbox::send_options so;
    so.as = o.as;
    if (!o.overflow.empty()) so.overflow = mbox::parse_overflow(o.overflow);
    so.until = o.wait.deadline();
    auto box = mbox::open(l);
    auto st = box->stat();
    std::uint64_t sent = 0, bytes = 0, first = 0, last = 0;
    auto send_batch = [&](std::span<const mbox::outgoing> batch) {
        auto r = box->send(batch, so);
        for (auto s : r.seqs) {
            if (!first) first = s;
            last = s;
        }
        for (std::size_t i = 0; i < r.seqs.size(); ++i) bytes += batch[i].data.size();
        sent += r.seqs.size();
        if (r.timed_out)
            throw temp_failure(st.lim.max_msgs == 0
                                   ? fmt::format("mailbox '{}': no receiver took the message in time ({} sent before)",
                                                 l.name, sent)
                                   : fmt::format("mailbox '{}' stayed full: {} message{} sent before the timeout",
                                                 l.name, sent, sent == 1 ? "" : "s"),
                               EAGAIN);
    };
    auto make = [&](stream::message&& m) {
        mbox::outgoing out{std::move(m.data), o.topic, o.to};
        if (auto t = m.meta.find("topic"); o.topic.empty() && t != m.meta.end() && t->is_string())
            out.topic = t->get<std::string>();
        if (auto t = m.meta.find("to"); o.to.empty() && t != m.meta.end() && t->is_string())
            out.to = t->get<std::string>();
        return out;
    };
    if (!o.messages.empty()) {
        std::vector<mbox::outgoing> all;
        for (const auto& m : o.messages) all.push_back(make(stream::message{m, {}}));
        for (const auto& m : all)  // every argument is checked before the first is sent
            if (m.data.size() > st.lim.max_msg_size)
                throw error(exit_code::data,
                            fmt::format("message of {} bytes is over mailbox '{}''s --max-msg-size of {} bytes; "
                                        "nothing sent",
                                        m.data.size(), l.name, st.lim.max_msg_size),
                            EMSGSIZE);
        if (st.lim.max_msgs == 0)
            for (const auto& m : all) send_batch(std::span(&m, 1));
        else
            send_batch(all);
    } else {
        unique_fd file;
        int in = STDIN_FILENO;
        if (!o.input.file.empty() && o.input.file != "-") {
            file.reset(::open(o.input.file.c_str(), O_RDONLY | O_CLOEXEC));
            if (!file) throw last_system_error("open", "file", o.input.file);
            in = file.get();
        }
        stream::input input(in, o.input.mode(), std::max<std::size_t>(st.lim.max_msg_size, 1));
        std::uint64_t line = 0;
        while (auto m = input.next()) {
            ++line;
            try {
                auto out = make(std::move(*m));
                send_batch(std::span(&out, 1));
            } catch (const error& e) {
                if (e.code() != exit_code::data || !o.input.jsonl) throw;
                throw error(e.code(), fmt::format("record {}: {}", line, e.what()), e.errno_value());
            }
        }
    }
    if (cli::format() != out::format::text) {
        out::record r;
        r.add("name", l.name)
            .add("messages_sent", sent)
            .add("bytes_sent", bytes)
            .add("first_seq", first ? out::json(first) : out::json(nullptr))
            .add("last_seq", last ? out::json(last) : out::json(nullptr));
        cli::emit(kind, std::vector{r});
    }
    return 0;
}

// Runs `sh -c CMD` with the message on its stdin, renewing the lease while
// it runs; returns its exit status (128+N for a signal).
int run_exec(const options& o, mbox::mailbox& box, const std::string& group, const mbox::message& m,
             std::chrono::milliseconds lease) {
    int in[2];
    if (::pipe2(in, O_CLOEXEC) < 0) throw last_system_error("create", "pipe", "for --exec");
    unique_fd rd(in[0]), wr(in[1]);
    std::vector<std::string> env_s;
    for (char** e = environ; *e; ++e) env_s.emplace_back(*e);
    env_s.push_back(fmt::format("IPC_MBOX_SEQ={}", m.seq));
    env_s.push_back(fmt::format("IPC_MBOX_GROUP={}", group));
    env_s.push_back(fmt::format("IPC_MBOX_SENDER={}", m.sender.name));
    env_s.push_back(fmt::format("IPC_MBOX_SENDER_PID={}", m.sender.pid));
    env_s.push_back(fmt::format("IPC_MBOX_SENDER_UID={}", m.sender.uid));
    env_s.push_back(fmt::format("IPC_MBOX_TOPIC={}", m.topic));
    env_s.push_back(fmt::format("IPC_MBOX_DELIVERIES={}", m.deliveries));
    std::vector<char*> envp;
    for (auto& s : env_s) envp.push_back(s.data());
    envp.push_back(nullptr);
    out::stdout_stream().flush();
    pid_t pid = ::fork();
    if (pid < 0) throw last_system_error("start", "command", o.exec);
    if (pid == 0) {
        ::dup2(rd.get(), STDIN_FILENO);
        const char* argv[] = {"/bin/sh", "-c", o.exec.c_str(), nullptr};
        ::execve("/bin/sh", const_cast<char* const*>(argv), envp.data());
        ::_exit(127);
    }
    rd.reset();
    // The message goes in whole before the command is waited for; a command
    // that does not read it still ends (EPIPE is ignored: SIGPIPE is).
    std::signal(SIGPIPE, SIG_IGN);
    try {
        write_all(wr.get(), m.data, deadline::never(), "--exec command");
    } catch (const error&) {
    }
    wr.reset();
    unique_fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    auto renew_every = std::max(lease / 3, std::chrono::milliseconds(10));
    for (;;) {
        if (pidfd) {
            try {
                if (wait_fd(pidfd.get(), POLLIN, deadline::after(renew_every)) == 0) {
                    if (o.ack) box.renew(group, m.seq, lease);
                    continue;
                }
            } catch (const interrupted&) {
                ::kill(pid, SIGTERM);
                int st;
                ::waitpid(pid, &st, 0);
                throw;
            }
        }
        int st = 0;
        if (::waitpid(pid, &st, 0) < 0) {
            if (errno == EINTR) continue;
            throw last_system_error("wait for", "command", o.exec);
        }
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
}

int do_recv(const options& o) {
    auto l = one(o);
    if (!o.exec.empty() && (o.print.nul || o.print.no_delimiter))
        throw usage_error("--exec hands each message to the command; -0 and --no-delimiter do not apply");
    mbox::recv_options ro;
    ro.group.name = o.group;
    ro.group.topic = o.topic;
    ro.group.from = o.from;
    ro.group.new_only = o.new_only;
    ro.as = o.as;
    ro.ack = o.ack;
    ro.lease = std::chrono::duration_cast<std::chrono::milliseconds>(parse::positive_duration(o.lease, "--lease"));
    if (ro.lease.count() == 0) ro.lease = std::chrono::milliseconds(1);
    ro.max_deliveries = o.max_deliveries;
    if (o.max_deliveries && !o.ack) throw usage_error("--max-deliveries needs --ack (without it nothing is delivered twice)");
    if (!o.dead_letter.empty()) ro.dead_letter = parse::posix_name(o.dead_letter);
    ro.holder_alive = !o.exec.empty();
    ro.wait = sync::parse_wait_mode(o.wait_mode);
    const std::string group = ro.group.effective_name();
    auto box = mbox::open(l);
    auto printer = cli::make_printer(o.print);
    bool unlimited = o.follow && !o.count_set;
    const std::uint64_t want = o.count;
    std::uint64_t got = 0;
    int failures = 0;
    // One message at a time for --exec (each is a unit of work); a stream
    // takes what is there in batches.
    const std::size_t batch = !o.exec.empty() ? 1 : 64;
    while (unlimited || got < want) {
        std::vector<mbox::message> msgs;
        auto collect = [&](mbox::message& m) { msgs.push_back(std::move(m)); };
        ro.max_batch = unlimited ? batch : std::min<std::uint64_t>(batch, want - got);
        ro.until = deadline::after(std::chrono::nanoseconds(0));
        box->recv(ro, collect);
        if (msgs.empty()) {
            printer.flush();
            ro.until = o.wait.deadline();
            box->recv(ro, collect);
        }
        if (msgs.empty()) {
            printer.flush();
            if (got == 0) throw temp_failure("no message within the timeout", ETIMEDOUT);
            if (unlimited) return static_cast<int>(exit_code::temp_fail);
            throw temp_failure(fmt::format("timed out after {} of {} messages", got, want), ETIMEDOUT);
        }
        for (auto& m : msgs) {
            ++got;
            if (!o.exec.empty()) {
                int rc = run_exec(o, *box, group, m, ro.lease);
                if (rc == 0) {
                    if (o.ack) box->ack(group, std::span(&m.seq, 1));
                } else {
                    ++failures;
                    cli::warn(fmt::format("--exec for seq {} exited with status {}{}", m.seq, rc,
                                          o.ack ? "; it will be delivered again" : ""));
                    if (o.ack) box->release(group, m.seq);
                }
                continue;
            }
            stream::message sm{std::move(m.data), out::json::object()};
            sm.meta["sender"] = {{"pid", m.sender.pid}, {"uid", m.sender.uid},
                                 {"name", m.sender.name.empty() ? out::json(nullptr) : out::json(m.sender.name)}};
            sm.meta["topic"] = m.topic.empty() ? out::json(nullptr) : out::json(m.topic);
            sm.meta["to"] = m.to.empty() ? out::json(nullptr) : out::json(m.to);
            sm.meta["group"] = group;
            sm.meta["deliveries"] = m.deliveries;
            if (m.origin_seq) sm.meta["origin_seq"] = m.origin_seq;
            sm.meta["skipped"] = ranges_json(m.skipped);
            printer.print(sm, m.seq, static_cast<std::int64_t>(m.timestamp_ns));
        }
    }
    printer.flush();
    return failures && !o.ack ? 1 : 0;
}

int do_ack(const options& o) {
    auto l = one(o);
    if (o.seqs.empty()) throw usage_error("missing SEQ: the sequence numbers to acknowledge");
    std::vector<std::uint64_t> seqs;
    for (const auto& s : o.seqs) seqs.push_back(parse::unsigned_number(s, "seq", UINT64_MAX));
    mbox::group_spec gs;
    gs.name = o.group;
    std::string group = gs.effective_name();
    auto n = mbox::open(l)->ack(group, seqs);
    if (cli::format() != out::format::text) {
        out::record r;
        r.add("name", l.name).add("group", group).add("acked", n).add("not_pending", seqs.size() - n);
        cli::emit(kind, std::vector{r});
    }
    if (n < seqs.size())
        cli::warn(fmt::format("{} of {} seqs were not pending in group '{}' (acknowledged before, or their lease "
                              "ended and they went to another receiver)",
                              seqs.size() - n, seqs.size(), group));
    return 0;
}

int do_stat(const options& o) {
    if (o.names.empty()) throw usage_error("missing mailbox NAME");
    std::vector<mbox::location> locs;
    for (const auto& n : o.names) locs.push_back(where(o, n));
    std::vector<out::record> records;
    std::vector<out::record> groups;
    int status = 0;
    for (const auto& l : locs) {
        try {
            auto s = mbox::open(l)->stat();
            auto r = box_record(s, true);
            out::json ga = out::json::array();
            for (const auto& g : s.groups) {
                auto gr = group_record(g);
                ga.push_back(gr.to_json());
                out::record row;
                row.add("mailbox", s.name);
                for (const auto& f : gr.fields()) {
                    if (f.text) row.add(f.key, f.value, *f.text);
                    else row.add(f.key, f.value);
                }
                groups.push_back(std::move(row));
            }
            if (cli::format() != out::format::text) r.add("group_stats", ga);
            records.push_back(std::move(r));
        } catch (const error& e) {
            if (e.code() == exit_code::usage) throw;
            cli::report(e);
            if (status == 0) status = static_cast<int>(e.code());
        }
    }
    cli::emit(kind, records, out::layout::list);
    if (cli::format() == out::format::text && !groups.empty() && !cli::quiet()) {
        out::stdout_stream().write("\n");
        cli::emit("groups", groups);
    }
    return status;
}

int do_ls(const options& o) {
    std::vector<out::record> records;
    mbox::location l = where(o, "/x");
    for (const auto& s : mbox::list(l)) {
        if (!s.problem.empty()) cli::warn(fmt::format("{}: {}", s.name, s.problem));
        records.push_back(box_record(s, false));
    }
    cli::emit(kind, records);
    return 0;
}

int do_rm(const options& o) {
    if (o.names.empty()) throw usage_error("missing mailbox NAME");
    std::vector<mbox::location> locs;
    for (const auto& n : o.names) locs.push_back(where(o, n));
    std::vector<out::record> records;
    int status = 0;
    for (const auto& l : locs) {
        try {
            std::string label = o.group.empty() ? l.name : fmt::format("{} group {}", l.name, o.group);
            if (!o.group.empty()) {
                auto box = mbox::open(l);
                bool exists = false;
                for (const auto& g : box->stat().groups) exists = exists || g.name == o.group;
                if (!exists) throw error(exit_code::no_object, fmt::format("mailbox '{}' has no group '{}'", l.name, o.group));
                if (!o.dry_run) box->remove_group(o.group);
            } else if (o.dry_run) {
                mbox::open(l);
            } else {
                mbox::remove(l);
            }
            if (o.dry_run && !cli::quiet() && cli::format() == out::format::text)
                out::stdout_stream().write(fmt::format("would remove {}\n", label));
            out::record r;
            r.add("name", l.name).add("group", o.group.empty() ? out::json(nullptr) : out::json(o.group)).add("removed", !o.dry_run);
            records.push_back(std::move(r));
        } catch (const error& e) {
            if (e.code() == exit_code::usage) throw;
            cli::report(e);
            if (status == 0) status = static_cast<int>(e.code());
        }
    }
    if (cli::format() != out::format::text) cli::emit(kind, records);
    return status;
}

std::unique_ptr<mbox::mailbox> try_open(const mbox::location& l) {
    try {
        return mbox::open(l);
    } catch (const error& e) {
        if (e.code() == exit_code::no_object) return nullptr;
        throw;
    }
}

int do_wait(const options& o) {
    auto l = one(o);
    auto step = parse::positive_duration(o.interval, "interval");
    auto until = o.wait.deadline();
    std::unique_ptr<mbox::mailbox> box;
    for (;;) {
        if (!box) box = try_open(l);
        if (box) {
            auto seen = box->change_count();
            auto s = box->stat();
            bool ok = true;
            const mbox::group_stat* g = nullptr;
            for (const auto& gs : s.groups)
                if (gs.name == o.group) g = &gs;
            if (!o.group.empty() && !g) ok = false;
            std::uint64_t backlog = g ? g->lag + g->pending + g->held : s.msgs;
            if (o.min_msgs) ok = ok && backlog >= *o.min_msgs;
            if (o.empty) ok = ok && backlog == 0;
            if (ok) {
                if (cli::format() != out::format::text) cli::emit(kind, std::vector{box_record(s, false)});
                return 0;
            }
            if (until.expired()) throw temp_failure("the mailbox did not meet the condition within the timeout", ETIMEDOUT);
            auto left = until.remaining();
            box->wait_change(seen, left && *left < step ? until : deadline::after(step));
            continue;
        }
        if (until.expired()) throw temp_failure(fmt::format("mailbox '{}' did not appear within the timeout", l.name), ETIMEDOUT);
        sleep_until(until, step);
    }
}

int do_watch(const options& o) {
    if (cli::format() == out::format::csv) throw usage_error("watch writes text or jsonl");
    auto l = one(o);
    auto step = parse::positive_duration(o.interval, "interval");
    auto until = o.wait.deadline();
    std::optional<out::json> last;
    std::uint64_t seq = 0;
    std::unique_ptr<mbox::mailbox> box;
    for (;;) {
        if (!box) box = try_open(l);
        out::json now = out::json::object();
        now["exists"] = box != nullptr;
        if (box) {
            auto s = box->stat();
            now["messages"] = s.msgs;
            now["bytes"] = s.bytes;
            now["first_seq"] = s.first_seq;
            now["next_seq"] = s.next_seq;
            now["dropped"] = s.dropped;
            out::json gs = out::json::array();
            for (const auto& g : s.groups)
                gs.push_back({{"group", g.name}, {"position", g.position}, {"lag", g.lag}, {"pending", g.pending},
                              {"held", g.held}, {"dropped", g.dropped}});
            now["group_stats"] = gs;
        }
        if (!last || *last != now) {
            out::json rec = out::json::object();
            rec["seq"] = ++seq;
            rec["timestamp_ns"] = stream::now_ns();
            rec["name"] = l.name;
            for (auto it = now.begin(); it != now.end(); ++it) rec[it.key()] = it.value();
            if (!cli::quiet()) {
                if (cli::format() == out::format::text) {
                    std::string line = box ? fmt::format("{} messages={} bytes={} next_seq={}", l.name,
                                                         now["messages"].dump(), now["bytes"].dump(), now["next_seq"].dump())
                                           : fmt::format("{} gone", l.name);
                    if (box)
                        for (const auto& g : now["group_stats"])
                            line += fmt::format(" {}:lag={},pending={}", g["group"].get<std::string>(), g["lag"].dump(),
                                                g["pending"].dump());
                    out::stdout_stream().write(line + "\n");
                } else {
                    out::stdout_stream().write(rec.dump() + "\n");
                }
                out::stdout_stream().flush();
            }
            last = std::move(now);
            if (o.changes && seq >= o.changes) return 0;
        }
        if (until.expired()) return 0;
        sleep_until(until, step);
    }
}

void add_location(CLI::App* verb, options& o) {
    verb->add_option("--backend", o.backend,
                     "local (default) or redis://HOST:PORT[/DB] (default: $IPC_MBOX_BACKEND)")
        ->type_name("URL");
    verb->add_option("--dir", o.dir, "Local: the directory of a durable mailbox (default: $IPC_MBOX_DIR, else /dev/shm)")
        ->type_name("DIR");
}

void add_one(CLI::App* verb, options& o) {
    verb->add_option("name", o.name, "Mailbox NAME or /NAME")->required()->type_name("NAME");
    add_location(verb, o);
}

void add_group(CLI::App* verb, options& o, const std::string& what) {
    verb->add_option("-g,--group", o.group, what)->type_name("GROUP");
}

} // namespace

int main(int argc, char** argv) {
    cli::app app("ipc-mbox",
                 "Mailboxes: many senders, many receivers, groups, topics, acknowledgements; local or on Redis.");
    options o;

    auto* create = app.verb("create", "Make mailboxes", [&] { return do_create(o); });
    create->add_option("name", o.names, "Mailbox NAME or /NAME")->required()->type_name("NAME");
    add_location(create, o);
    create->add_option("--max-msgs", o.max_msgs, "Capacity in messages (default 4096; 0: rendezvous)")->type_name("N");
    create->add_option("--max-bytes", o.max_bytes, "Capacity in bytes, headers included (default 4M)")->type_name("SIZE");
    create->add_option("--max-msg-size", o.max_msg_size, "Largest message (default 64K)")->type_name("SIZE");
    create->add_option("--overflow", o.overflow, "When full: block (default) or drop-oldest")->type_name("POLICY");
    create->add_option("--sync", o.sync, "Durable mailbox: none (default) or always (msync before returning)")
        ->type_name("POLICY");
    create->add_flag("-x,--exclusive", o.exclusive, "Fail (73) if the mailbox exists");
    app.add_mode(create, o.mode);

    auto* send = app.verb("send", "Send messages from the arguments or stdin", [&] { return do_send(o); });
    add_one(send, o);
    send->add_option("message", o.messages, "Messages (default: read from stdin)")->type_name("MSG");
    send->add_option("--as", o.as, "The sender's name, shown with every message")->type_name("NAME");
    send->add_option("--topic", o.topic, "Multicast: only groups subscribed to a matching pattern get it")->type_name("TOPIC");
    send->add_option("--to", o.to, "Unicast: only receivers with --as NAME get it")->type_name("NAME");
    send->add_option("--overflow", o.overflow, "When full: block or drop-oldest (default: the mailbox's)")
        ->type_name("POLICY");
    app.add_input(send, o.input);
    app.add_wait(send, o.wait);

    auto* recv = app.verb("recv", "Receive messages", [&] { return do_recv(o); });
    add_one(recv, o);
    add_group(recv, o, "Read through GROUP: each group gets every message, one receiver per group each (default: default)");
    recv->add_flag("--new-only", o.new_only, "A group made now starts after the newest message (default: the oldest retained)");
    recv->add_option("--as", o.as, "This receiver's name: messages sent --to it come to it")->type_name("NAME");
    recv->add_option("--topic", o.topic, "Subscribe the group to topics matching PATTERN (fnmatch)")->type_name("PATTERN");
    recv->add_option("--from", o.from, "Subscribe the group to one sender's messages")->type_name("SENDER");
    recv->add_option("-c,--count", o.count, "Take N messages (default 1)")
        ->type_name("N")
        ->each([&](const std::string&) { o.count_set = true; });
    recv->add_flag("-f,--follow", o.follow, "Keep taking messages");
    recv->add_flag("--ack", o.ack, "At least once: a message stays pending until acknowledged");
    recv->add_option("--lease", o.lease, "With --ack: redeliver when not acknowledged within DUR (default 30s)")
        ->type_name("DUR");
    recv->add_option("--exec", o.exec, "Run CMD (with sh -c) for each message, the message on its stdin; with --ack, "
                                       "exit 0 acknowledges")
        ->type_name("CMD");
    recv->add_option("--max-deliveries", o.max_deliveries, "With --ack: after N deliveries move it to the dead-letter mailbox")
        ->type_name("N");
    recv->add_option("--dead-letter", o.dead_letter, "The dead-letter mailbox (default: NAME.dead)")->type_name("NAME");
    recv->add_option("--wait", o.wait_mode, "Local: spin, block or adaptive (default)")->type_name("MODE");
    app.add_print(recv, o.print);
    app.add_wait(recv, o.wait);

    auto* ack = app.verb("ack", "Acknowledge messages received with --ack", [&] { return do_ack(o); });
    add_one(ack, o);
    ack->add_option("seq", o.seqs, "Sequence numbers")->type_name("SEQ");
    add_group(ack, o, "The group they were received through (default: default)");

    auto* stat = app.verb("stat", "Describe mailboxes and their groups", [&] { return do_stat(o); });
    stat->add_option("name", o.names, "Mailbox NAME or /NAME")->required()->type_name("NAME");
    add_location(stat, o);

    auto* ls = app.verb("ls", "List mailboxes", [&] { return do_ls(o); });
    add_location(ls, o);

    auto* rm = app.verb("rm", "Remove mailboxes, or one group of a mailbox", [&] { return do_rm(o); });
    rm->add_option("name", o.names, "Mailbox NAME or /NAME")->required()->type_name("NAME");
    add_location(rm, o);
    add_group(rm, o, "Remove only this group (its position, pending and held messages)");
    rm->add_flag("--dry-run", o.dry_run, "Say what would be removed; remove nothing");

    auto* wait = app.verb("wait", "Wait until a mailbox exists, holds messages, or is empty",
                          [&] { return do_wait(o); });
    add_one(wait, o);
    add_group(wait, o, "Conditions count GROUP's backlog (lag + pending + held), not the mailbox's");
    wait->add_option("--min-msgs", o.min_msgs, "Until at least N messages are waiting")->type_name("N");
    wait->add_flag("--empty", o.empty, "Until nothing is waiting");
    wait->add_option("--interval", o.interval, "How often to look at least (default 100ms)")->type_name("DUR");
    app.add_wait(wait, o.wait);

    auto* watch = app.verb("watch", "Stream a mailbox's changes (never takes a message)", [&] { return do_watch(o); });
    add_one(watch, o);
    watch->add_option("--interval", o.interval, "How often to look (default 100ms)")->type_name("DUR");
    watch->add_option("-c,--count", o.changes, "Stop after N changes (default: until interrupted)")->type_name("N");
    watch->add_option("-t,--timeout", o.wait.timeout, "Stop watching after DUR (default inf)")->type_name("DUR");

    return app.run(argc, argv);
}
