// SPDX-License-Identifier: MIT
// ipc-mq: POSIX and System V message queues from the shell. Parses, calls
// lib/, emits.
#include <fnmatch.h>
#include <unistd.h>

#include <fcntl.h>

#include <fmt/format.h>

#include "ipc/cli.hpp"
#include "ipc/error.hpp"
#include "ipc/mq.hpp"
#include "ipc/parse.hpp"
#include "ipc/proc.hpp"
#include "ipc/stream.hpp"

namespace {

using namespace ipc;
constexpr const char* kind = "queues";

struct options {
    std::vector<std::string> names;
    std::string name;  // verbs that take one queue
    bool name_given = false;
    std::string key, id;
    bool sysv = false;
    std::string mode = "0600";
    std::uint64_t max_msgs = 0;
    std::string max_msg_size, max_bytes, size;
    bool exclusive = false;
    std::vector<std::string> messages;
    unsigned priority = 0;
    bool priority_set = false;
    long type = 0;
    bool type_set = false;
    cli::wait_options wait;
    cli::print_options print;
    cli::input_options input;
    std::uint64_t count = 1;
    bool count_set = false;
    bool follow = false, drain = false;
    std::string match;
    bool dry_run = false;
    std::optional<std::uint64_t> min_msgs;
    bool empty = false;
    std::string interval = "100ms";
    std::uint64_t changes = 0;
};

using proc::user_name;

out::json opt_long(long v) { return v < 0 ? out::json(nullptr) : out::json(v); }

out::record to_record(const mq::posix_info& i) {
    out::record r;
    r.add("name", i.name)
        .add("kind", "posix")
        .add("max_msgs", opt_long(i.max_msgs))
        .add("msg_size_bytes", opt_long(i.msg_size))
        .add("messages", opt_long(i.messages))
        .add("queued_bytes", i.queued_bytes ? out::json(*i.queued_bytes) : out::json(nullptr))
        .add("mode", fmt::format("{:04o}", i.mode))
        .add("uid", i.uid)
        .add("user", user_name(i.uid))
        .add("notify_pid", i.notify_pid ? out::json(*i.notify_pid) : out::json(nullptr));
    return r;
}

out::record to_full_record(const mq::posix_info& i) {
    auto r = to_record(i);
    r.add("gid", i.gid).add("mtime_unix", i.mtime_unix ? out::json(*i.mtime_unix) : out::json(nullptr));
    return r;
}

std::string key_text(key_t k) { return fmt::format("{:#010x}", static_cast<std::uint32_t>(k)); }

out::record to_record(const mq::sysv_info& i) {
    out::record r;
    r.add("id", i.id)
        .add("kind", "sysv")
        .add("key", static_cast<std::int64_t>(i.key), key_text(i.key))
        .add("mode", fmt::format("{:04o}", i.mode))
        .add("uid", i.uid)
        .add("user", user_name(i.uid))
        .add("messages", i.messages)
        .add("queued_bytes", i.queued_bytes)
        .add("capacity_bytes", i.capacity_bytes)
        .add("last_send_pid", i.last_send_pid)
        .add("last_recv_pid", i.last_recv_pid);
    return r;
}

out::record to_full_record(const mq::sysv_info& i) {
    auto r = to_record(i);
    r.add("gid", i.gid)
        .add("cuid", i.cuid)
        .add("cgid", i.cgid)
        .add("send_time_unix", i.send_time)
        .add("recv_time_unix", i.recv_time)
        .add("change_time_unix", i.change_time);
    return r;
}

// The queue a verb acts on: a POSIX name, or System V by --key/--id.
struct target {
    std::optional<std::string> name;
    std::optional<mq::sysv_selector> sysv;
};

target select_one(options o) {
    if (o.name_given) o.names.insert(o.names.begin(), o.name);
    bool by_sysv = !o.key.empty() || !o.id.empty();
    if (by_sysv && !o.names.empty()) throw usage_error("give a queue NAME or --key/--id, not both");
    if (!o.key.empty() && !o.id.empty()) throw usage_error("give --key or --id, not both");
    if (by_sysv) {
        mq::sysv_selector s;
        if (!o.key.empty()) s.key = parse::sysv_key(o.key);
        else s.id = static_cast<int>(parse::unsigned_number(o.id, "id", INT32_MAX));
        return target{std::nullopt, s};
    }
    if (o.names.size() != 1) throw usage_error(o.names.empty() ? "missing queue NAME (or --key/--id)" : "give one queue");
    return target{parse::posix_name(o.names[0]), std::nullopt};
}

// An object owned by another user is not trusted without saying so.
void warn_if_foreign(const target& t, const std::optional<mq::posix_queue>& pq, int sid) {
    uid_t owner;
    try {
        owner = t.name ? pq->owner() : mq::sysv_stat(sid).uid;
    } catch (const error&) {
        return;  // not allowed to look (write-only): nothing to say
    }
    if (owner != ::geteuid())
        cli::warn(fmt::format("{} belongs to another user ({})",
                              t.name ? fmt::format("queue '{}'", *t.name) : fmt::format("System V queue {}", sid),
                              user_name(owner)));
}

int do_create(const options& o) {
    mode_t m = parse::mode(o.mode);
    if (!o.key.empty()) {
        if (!o.names.empty()) throw usage_error("give a queue NAME or --key, not both");
        if (o.max_msgs || !o.max_msg_size.empty())
            throw usage_error("System V queues take --max-bytes, not --max-msgs or --max-msg-size");
        auto cap = o.max_bytes.empty() ? 0 : parse::size(o.max_bytes);
        bool created = false;
        int id = mq::sysv_create(parse::sysv_key(o.key), m, o.exclusive, cap, &created);
        if (!created)
            cli::warn(fmt::format("System V queue {} exists; its capacity and mode are unchanged", id));
        cli::emit(kind, std::vector{to_record(mq::sysv_stat(id))});
        return 0;
    }
    if (!o.id.empty()) throw usage_error("a queue is created with --key, not --id");
    if (!o.max_bytes.empty()) throw usage_error("POSIX queues take --max-msgs and --max-msg-size, not --max-bytes");
    if (o.names.empty()) throw usage_error("missing queue NAME (or --key)");
    long msg_size = 0;
    if (!o.max_msg_size.empty()) {
        auto s = parse::size(o.max_msg_size);
        if (s == 0 || s > INT32_MAX) throw usage_error(fmt::format("invalid message size '{}'", o.max_msg_size));
        msg_size = static_cast<long>(s);
    }
    if (o.max_msgs > INT32_MAX) throw usage_error("invalid --max-msgs: too large");
    std::vector<std::string> names;  // all checked before the first is made
    for (const auto& n : o.names) names.push_back(parse::posix_name(n));
    std::vector<out::record> records;
    int status = 0;
    for (const auto& name : names) {
        try {
            auto q = mq::posix_queue::create(name, static_cast<long>(o.max_msgs), msg_size, m, o.exclusive);
            if (!q.created())
                cli::warn(fmt::format("queue '{}' exists; its capacity, message size and mode are unchanged", name));
            records.push_back(to_record(mq::posix_stat(name)));
        } catch (const error& e) {
            if (e.code() == exit_code::usage) throw;
            cli::report(e);
            if (status == 0) status = static_cast<int>(e.code());
        }
    }
    cli::emit(kind, records);
    return status;
}

// The message a --jsonl record or an argument gives, with its priority/type.
struct outgoing {
    std::string data;
    unsigned priority;
    long type;
};

outgoing outgoing_of(stream::message&& m, const options& o, bool posix) {
    outgoing out{std::move(m.data), o.priority, o.type_set ? o.type : 1};
    // A record's priority (POSIX) or type (System V) is kept unless -p/-T says otherwise.
    if (auto p = m.meta.find("priority"); posix && p != m.meta.end() && !o.priority_set) {
        long prio_max = ::sysconf(_SC_MQ_PRIO_MAX);
        if (!p->is_number_unsigned() || p->get<std::uint64_t>() >= static_cast<std::uint64_t>(prio_max))
            throw data_error(fmt::format("\"priority\" must be an integer from 0 to {}", prio_max - 1));
        out.priority = p->get<unsigned>();
    }
    if (auto t = m.meta.find("type"); !posix && t != m.meta.end() && !o.type_set) {
        if (!t->is_number_integer() || t->get<long>() <= 0) throw data_error("\"type\" must be an integer above 0");
        out.type = t->get<long>();
    }
    return out;
}

int do_send(options o) {
    // With --key/--id every operand is a message.
    if ((!o.key.empty() || !o.id.empty()) && o.name_given) {
        o.messages.insert(o.messages.begin(), o.name);
        o.name.clear();
        o.name_given = false;
    }
    auto t = select_one(o);
    if (!o.messages.empty() && (!o.input.file.empty() || o.input.whole || o.input.jsonl || o.input.nul))
        throw usage_error("give messages as arguments or on stdin, not both");
    if (t.name && o.type_set) throw usage_error("--type is for System V queues (--key/--id)");
    if (t.sysv && o.priority_set) throw usage_error("--priority is for POSIX queues; System V queues have --type");
    if (o.type_set && o.type <= 0) throw usage_error("--type must be above 0");

    std::optional<mq::posix_queue> pq;
    int sid = -1;
    if (t.name) pq = mq::posix_queue::open(*t.name, mq::posix_queue::access::write);
    else sid = mq::sysv_resolve(*t.sysv);
    warn_if_foreign(t, pq, sid);
    std::string label = t.name ? fmt::format("queue '{}'", *t.name) : fmt::format("System V queue {}", t.sysv->str());
    // The size limit is the queue's own; stdin records are held to it too.
    std::size_t max = t.name ? static_cast<std::size_t>(pq->attributes().mq_msgsize)
                             : static_cast<std::size_t>(std::max(mq::read_sysv_limits().msgmax, 1L));

    std::uint64_t sent = 0, bytes = 0;
    auto send_one = [&](outgoing m) {
        bool ok = t.name ? pq->send(m.data, m.priority, o.wait.deadline())
                         : mq::sysv_send(sid, m.type, m.data, o.wait.deadline());
        if (!ok)
            throw temp_failure(fmt::format("{} stayed full: {} message{} sent before the timeout", label, sent,
                                           sent == 1 ? "" : "s"),
                               EAGAIN);
        ++sent;
        bytes += m.data.size();
    };
    if (!o.messages.empty()) {
        // Every argument is checked before the first is sent.
        for (const auto& m : o.messages)
            if (m.size() > max)
                throw error(exit_code::data,
                            fmt::format("message of {} bytes is over the message size of {} ({} bytes); nothing sent",
                                        m.size(), label, max),
                            EMSGSIZE);
        for (const auto& m : o.messages) send_one(outgoing_of(stream::message{m, {}}, o, t.name.has_value()));
    } else {
        unique_fd file;
        int in = STDIN_FILENO;
        if (!o.input.file.empty() && o.input.file != "-") {
            file.reset(::open(o.input.file.c_str(), O_RDONLY | O_CLOEXEC));
            if (!file) throw last_system_error("open", "file", o.input.file);
            in = file.get();
        }
        // Lines longer than any message can be are refused by the reader itself.
        stream::input input(in, o.input.mode(), std::max<std::size_t>(max, 1));
        std::uint64_t line = 0;
        while (auto m = input.next()) {
            ++line;
            try {
                send_one(outgoing_of(std::move(*m), o, t.name.has_value()));
            } catch (const error& e) {
                if (e.code() != exit_code::data || !o.input.jsonl) throw;
                throw error(e.code(), fmt::format("record {}: {}", line, e.what()), e.errno_value());
            }
        }
    }
    if (cli::format() != out::format::text) {
        out::record r;
        r.add("name", t.name ? *t.name : t.sysv->str()).add("messages_sent", sent).add("bytes_sent", bytes);
        cli::emit(kind, std::vector{r});
    }
    return 0;
}

int do_recv(const options& o) {
    auto t = select_one(o);
    if (t.name && o.type_set) throw usage_error("--type is for System V queues (--key/--id)");
    if (o.follow && o.drain) throw usage_error("choose one of --follow and --drain");
    auto printer = cli::make_printer(o.print);
    std::optional<mq::posix_queue> pq;
    int sid = -1;
    if (t.name) pq = mq::posix_queue::open(*t.name, mq::posix_queue::access::read);
    else sid = mq::sysv_resolve(*t.sysv);
    warn_if_foreign(t, pq, sid);

    std::uint64_t got = 0;
    const std::uint64_t want = o.count;
    // --follow keeps taking, up to --count when one is given.
    bool unlimited = (o.follow || o.drain) && !o.count_set;
    while (unlimited || got < want) {
        auto take = [&](const deadline& until) {
            return t.name ? pq->receive(until) : mq::sysv_receive(sid, o.type, until);
        };
        // --drain takes what is there now and never waits. Otherwise what was
        // printed is flushed only when the next message is not there yet, so
        // a stream costs no write per message and a reader still sees each
        // message as soon as the queue runs dry.
        auto now = deadline::after(std::chrono::nanoseconds(0));
        std::optional<mq::message> m = take(now);
        if (!m && !o.drain) {
            printer.flush();
            m = take(o.wait.deadline());
        }
        if (!m) {
            printer.flush();
            if (o.drain) return 0;
            if (got == 0) throw temp_failure("no message within the timeout", ETIMEDOUT);
            if (unlimited) return static_cast<int>(exit_code::temp_fail);
            throw temp_failure(fmt::format("timed out after {} of {} messages", got, want), ETIMEDOUT);
        }
        ++got;
        stream::message sm{std::move(m->data), out::json::object()};
        if (t.name) sm.meta["priority"] = m->priority;
        else sm.meta["type"] = m->type;
        printer.print(sm, got, stream::now_ns());
    }
    return 0;
}

int do_stat(const options& o) {
    std::vector<out::record> records;
    if (!o.key.empty() || !o.id.empty()) {
        auto t = select_one(o);
        records.push_back(to_full_record(mq::sysv_stat(mq::sysv_resolve(*t.sysv))));
    } else {
        if (o.names.empty()) throw usage_error("missing queue NAME (or --key/--id)");
        std::vector<std::string> names;
        for (const auto& n : o.names) names.push_back(parse::posix_name(n));
        int status = 0;
        for (const auto& name : names) {
            try {
                records.push_back(to_full_record(mq::posix_stat(name)));
            } catch (const error& e) {
                cli::report(e);
                if (status == 0) status = static_cast<int>(e.code());
            }
        }
        cli::emit(kind, records, out::layout::list);
        return status;
    }
    cli::emit(kind, records, out::layout::list);
    return 0;
}

int do_ls(const options& o) {
    std::vector<out::record> records;
    if (o.sysv) {
        for (const auto& i : mq::sysv_list()) records.push_back(to_record(i));
    } else {
        for (const auto& i : mq::posix_list()) records.push_back(to_record(i));
    }
    cli::emit(kind, records);
    return 0;
}

int do_rm(const options& o) {
    std::vector<out::record> records;
    int status = 0;
    // A dry run makes the same look-ups as a removal, and removes nothing.
    auto attempt = [&](const std::string& label, auto&& check, auto&& remove) {
        try {
            check();
            if (o.dry_run) {
                if (!cli::quiet() && cli::format() == out::format::text)
                    out::stdout_stream().write(fmt::format("would remove {}\n", label));
            } else {
                remove();
            }
            out::record r;
            r.add("name", label).add("removed", !o.dry_run);
            records.push_back(std::move(r));
        } catch (const error& e) {
            if (e.code() == exit_code::usage) throw;
            cli::report(e);
            if (status == 0) status = static_cast<int>(e.code());
        }
    };
    if ((!o.key.empty() || !o.id.empty()) && !o.match.empty()) throw usage_error("give --match or --key/--id, not both");
    if (!o.key.empty() || !o.id.empty()) {
        auto t = select_one(o);
        int id = -1;
        attempt(t.sysv->str(), [&] { id = mq::sysv_resolve(*t.sysv); }, [&] { mq::sysv_remove(id); });
    } else if (!o.match.empty()) {
        if (!o.names.empty()) throw usage_error("give NAMEs or --match, not both");
        for (const auto& i : mq::posix_list()) {
            std::string body = i.name.substr(1);
            if (::fnmatch(o.match.c_str(), body.c_str(), 0) != 0 && ::fnmatch(o.match.c_str(), i.name.c_str(), 0) != 0)
                continue;
            attempt(i.name, [] {}, [&] { mq::posix_remove(i.name); });
        }
    } else {
        if (o.names.empty()) throw usage_error("missing queue NAME, --match GLOB, or --key/--id");
        std::vector<std::string> names;  // all checked before the first is removed
        for (const auto& n : o.names) names.push_back(parse::posix_name(n));
        for (const auto& name : names) {
            attempt(name, [&] { if (o.dry_run) mq::posix_stat(name); }, [&] { mq::posix_remove(name); });
        }
    }
    if (cli::format() != out::format::text) cli::emit(kind, records);
    return status;
}

// The depth of a queue now, or nullopt when it does not exist.
std::optional<out::record> look(const target& t) {
    try {
        if (t.name) return to_record(mq::posix_stat(*t.name));
        return to_record(mq::sysv_stat(mq::sysv_resolve(*t.sysv)));
    } catch (const error& e) {
        if (e.code() == exit_code::no_object) return std::nullopt;
        throw;
    }
}

int do_wait(const options& o) {
    auto t = select_one(o);
    auto step = parse::positive_duration(o.interval, "interval");
    auto until = o.wait.deadline();
    for (;;) {
        if (auto r = look(t)) {
            auto messages = r->find("messages");
            bool ok = true;
            if (o.min_msgs) ok = ok && messages->is_number() && messages->get<std::uint64_t>() >= *o.min_msgs;
            if (o.empty) ok = ok && messages->is_number() && messages->get<std::uint64_t>() == 0;
            if (ok) {
                if (cli::format() != out::format::text) cli::emit(kind, std::vector{*r});
                return 0;
            }
        }
        if (until.expired()) throw temp_failure("the queue did not meet the condition within the timeout", ETIMEDOUT);
        sleep_until(until, step);
    }
}

std::string text_or_dash(const out::json& v) { return v.is_null() ? "-" : v.dump(); }

int do_watch(const options& o) {
    if (cli::format() == out::format::csv) throw usage_error("watch writes text or jsonl");
    auto t = select_one(o);
    auto step = parse::positive_duration(o.interval, "interval");
    auto until = o.wait.deadline();
    std::optional<out::json> last;
    std::uint64_t seq = 0;
    for (;;) {
        auto r = look(t);
        out::json now = out::json::object();
        now["exists"] = r.has_value();
        if (r)
            for (const char* k : {"messages", "queued_bytes", "max_msgs", "capacity_bytes"})
                if (auto v = r->find(k)) now[k] = *v;
        if (!last || *last != now) {
            out::json rec = out::json::object();
            rec["seq"] = ++seq;
            rec["timestamp_ns"] = stream::now_ns();
            rec["name"] = t.name ? *t.name : t.sysv->str();
            for (auto it = now.begin(); it != now.end(); ++it) rec[it.key()] = it.value();
            if (!cli::quiet()) {
                if (cli::format() == out::format::text) {
                    out::stdout_stream().write(
                        r ? fmt::format("{} messages={} queued_bytes={}\n", rec["name"].get<std::string>(),
                                        text_or_dash(rec["messages"]), text_or_dash(rec.value("queued_bytes", out::json(nullptr))))
                          : fmt::format("{} gone\n", rec["name"].get<std::string>()));
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

int do_set_capacity(const options& o) {
    auto t = select_one(o);
    if (!t.sysv) throw usage_error("set-capacity is for System V queues (--key/--id); a POSIX queue's capacity is fixed at create");
    int id = mq::sysv_resolve(*t.sysv);
    auto before = mq::sysv_stat(id).capacity_bytes;
    auto granted = mq::sysv_set_capacity(id, parse::size(o.size));
    out::record r;
    r.add("id", id).add("previous_bytes", before).add("capacity_bytes", granted);
    cli::emit(kind, std::vector{r});
    return 0;
}

void add_selector(CLI::App* verb, options& o, bool many_names, bool with_id = true) {
    if (many_names) verb->add_option("name", o.names, "POSIX queue NAME or /NAME")->type_name("NAME");
    else
        verb->add_option("name", o.name, "POSIX queue NAME or /NAME")
            ->type_name("NAME")
            ->each([&](const std::string&) { o.name_given = true; });
    verb->add_option("-k,--key", o.key, "System V queue by key (decimal or 0x hex)")->type_name("KEY");
    if (with_id) verb->add_option("-i,--id", o.id, "System V queue by id")->type_name("ID");
}

} // namespace

int main(int argc, char** argv) {
    cli::app app("ipc-mq", "POSIX and System V message queues: create, send, receive, inspect, watch, remove.");
    options o;

    auto* create = app.verb("create", "Make queues (POSIX NAME, or System V --key)", [&] { return do_create(o); });
    add_selector(create, o, true, false);
    create->add_option("--max-msgs", o.max_msgs, "POSIX: capacity in messages (default: the system's)")->type_name("N");
    create->add_option("--max-msg-size", o.max_msg_size, "POSIX: largest message (default: the system's)")->type_name("SIZE");
    create->add_option("--max-bytes", o.max_bytes, "System V: capacity in bytes (msg_qbytes)")->type_name("SIZE");
    create->add_flag("-x,--exclusive", o.exclusive, "Fail (73) if the queue exists");
    app.add_mode(create, o.mode);

    auto* send = app.verb("send", "Send messages from the arguments or stdin", [&] { return do_send(o); });
    send->add_option("name", o.name, "POSIX queue NAME or /NAME (with --key/--id: the first message)")
        ->type_name("NAME")
        ->each([&](const std::string&) { o.name_given = true; });
    send->add_option("message", o.messages, "Messages (default: read from stdin)")->type_name("MSG");
    send->add_option("-k,--key", o.key, "System V queue by key (decimal or 0x hex)")->type_name("KEY");
    send->add_option("-i,--id", o.id, "System V queue by id")->type_name("ID");
    send->add_option("-p,--priority", o.priority, "POSIX: priority, higher first (default 0)")
        ->type_name("P")
        ->each([&](const std::string&) { o.priority_set = true; });
    send->add_option("-T,--type", o.type, "System V: message type, above 0 (default 1)")
        ->type_name("T")
        ->each([&](const std::string&) { o.type_set = true; });
    app.add_input(send, o.input);
    app.add_wait(send, o.wait);

    auto* recv = app.verb("recv", "Receive messages", [&] { return do_recv(o); });
    add_selector(recv, o, false);
    recv->add_option("-c,--count", o.count, "Take N messages (default 1)")
        ->type_name("N")
        ->each([&](const std::string&) { o.count_set = true; });
    recv->add_flag("-f,--follow", o.follow, "Keep taking messages");
    recv->add_flag("-d,--drain", o.drain, "Take what is queued now, then exit 0");
    recv->add_option("-T,--type", o.type,
                     "System V: 0 the first message, T the first of type T, -T the lowest type up to T")
        ->type_name("T")
        ->each([&](const std::string&) { o.type_set = true; });
    app.add_print(recv, o.print);
    app.add_wait(recv, o.wait);

    auto* stat = app.verb("stat", "Describe queues", [&] { return do_stat(o); });
    add_selector(stat, o, true);

    auto* ls = app.verb("ls", "List POSIX queues (needs the mqueue file system mounted), or System V ones", [&] { return do_ls(o); });
    ls->add_flag("-s,--sysv", o.sysv, "List System V queues");

    auto* rm = app.verb("rm", "Remove queues", [&] { return do_rm(o); });
    add_selector(rm, o, true);
    rm->add_option("--match", o.match, "Remove the POSIX queues whose names match GLOB")->type_name("GLOB");
    rm->add_flag("--dry-run", o.dry_run, "Say what would be removed; remove nothing");

    auto* wait = app.verb("wait", "Wait until a queue exists, or holds messages, or is empty", [&] { return do_wait(o); });
    add_selector(wait, o, false);
    wait->add_option("--min-msgs", o.min_msgs, "Until at least N messages are queued")->type_name("N");
    wait->add_flag("--empty", o.empty, "Until the queue is empty");
    wait->add_option("--interval", o.interval, "How often to look (default 100ms)")->type_name("DUR");
    app.add_wait(wait, o.wait);

    auto* watch = app.verb("watch", "Stream a queue's depth changes (never takes a message)", [&] { return do_watch(o); });
    add_selector(watch, o, false);
    watch->add_option("--interval", o.interval, "How often to look (default 100ms)")->type_name("DUR");
    watch->add_option("-c,--count", o.changes, "Stop after N changes (default: until interrupted)")->type_name("N");
    watch->add_option("-t,--timeout", o.wait.timeout, "Stop watching after DUR (default inf)")->type_name("DUR");

    auto* setcap = app.verb("set-capacity", "Set a System V queue's capacity in bytes (msg_qbytes)",
                            [&] { return do_set_capacity(o); });
    setcap->add_option("size", o.size, "New capacity")->required()->type_name("SIZE");
    setcap->add_option("-k,--key", o.key, "System V queue by key (decimal or 0x hex)")->type_name("KEY");
    setcap->add_option("-i,--id", o.id, "System V queue by id")->type_name("ID");

    return app.run(argc, argv);
}
