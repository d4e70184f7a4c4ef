// SPDX-License-Identifier: MIT
// ipc-pipe: named and unnamed pipes from the shell. Parses, calls lib/, emits.
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include "ipc/cli.hpp"
#include "ipc/error.hpp"
#include "ipc/parse.hpp"
#include "ipc/proc.hpp"
#include "ipc/pipe.hpp"
#include "ipc/stream.hpp"

namespace {

using namespace ipc;
constexpr const char* kind = "pipes";

struct options {
    std::vector<std::string> paths;
    std::string path, dest = "-";
    std::string mode = "0600";
    std::string size;
    std::string max_msg_size = "64M";
    std::vector<std::string> messages;
    cli::wait_options wait;
    cli::print_options print;
    cli::input_options input;
    bool framed = false;
    bool follow = false;
    bool until_eof = false;
    std::uint64_t count = 1;
    bool count_set = false;
    bool recursive = false;
    bool anon = false;
    std::optional<pid_t> pid;
    bool dry_run = false;
    bool progress = false, no_progress = false;
    pipe::condition until;
    std::string min_bytes;
    std::string interval = "100ms";
    std::uint64_t changes = 0;  // watch --count: 0 is no limit
};

using proc::user_name;

out::record to_record(const pipe::info& i) {
    out::json holders = out::json::array();
    std::string holders_text;
    for (const auto& h : i.holders) {
        holders.push_back({{"pid", h.pid}, {"command", h.command}, {"fd", h.fd}, {"end", pipe::end_name(h.end)}});
        if (!holders_text.empty()) holders_text += ',';
        holders_text += fmt::format("{}({}):{}{}", h.pid, h.command, h.fd,
                                    h.end == pipe::end::read ? "r" : h.end == pipe::end::write ? "w" : "rw");
    }
    auto opt = [](const std::optional<std::uint64_t>& v) { return v ? out::json(*v) : out::json(nullptr); };
    out::record r;
    r.add("name", i.name)
        .add("kind", i.named ? "fifo" : "pipe")
        .add("inode", i.inode)
        .add("mode", fmt::format("{:04o}", i.mode))
        .add("uid", i.uid)
        .add("user", user_name(i.uid))
        .add("capacity_bytes", opt(i.capacity_bytes))
        .add("queued_bytes", opt(i.queued_bytes))
        .add("readers", i.readers())
        .add("writers", i.writers())
        .add("holders", holders, holders_text.empty() ? "-" : holders_text);
    return r;
}

out::record to_full_record(const pipe::info& i) {
    auto r = to_record(i);
    r.add("holders_complete", i.holders_complete)
        .add("figures_source", i.figures_source)
        .add("mtime_unix", i.mtime_unix);
    return r;
}

// How messages travel in the pipe. send: --framed, -0 or newline (whatever
// the input mode); recv: also --whole (everything up to the writers' close).
framing::mode wire_mode(const options& o, bool receiving) {
    bool nul = o.input.nul || o.print.nul;
    bool whole = receiving && o.input.whole;
    if (int(nul) + int(o.framed) + int(whole) > 1) throw usage_error("choose one framing: -0, --framed or --whole");
    if (o.framed) return framing::mode::framed;
    if (nul) return framing::mode::nul;
    if (whole) return framing::mode::whole;
    return framing::mode::line;
}

// Runs f for each path, carrying on past failures; the first failure's status.
template <class F>
int for_each_path(const std::vector<std::string>& paths, F f) {
    int status = 0;
    for (const auto& p : paths) {
        try {
            f(p);
        } catch (const error& e) {
            if (e.code() == exit_code::usage) throw;
            cli::report(e);
            if (status == 0) status = static_cast<int>(e.code());
        }
    }
    return status;
}

int do_create(const options& o) {
    mode_t m = parse::mode(o.mode);
    std::vector<out::record> records;
    int status = for_each_path(o.paths, [&](const std::string& p) {
        pipe::create(p, m);
        records.push_back(to_record(pipe::stat(p)));
    });
    cli::emit(kind, records);
    return status;
}

int do_rm(const options& o) {
    std::vector<out::record> records;
    int status = for_each_path(o.paths, [&](const std::string& p) {
        pipe::remove(p, o.dry_run);
        if (o.dry_run && !cli::quiet() && cli::format() == out::format::text)
            out::stdout_stream().write(fmt::format("would remove {}\n", p));
        out::record r;
        r.add("name", p).add("removed", !o.dry_run);
        records.push_back(std::move(r));
    });
    if (cli::format() != out::format::text) cli::emit(kind, records);
    return status;
}

int do_stat(const options& o) {
    std::vector<out::record> records;
    for (const auto& p : o.paths) records.push_back(to_full_record(pipe::stat(p)));
    cli::emit(kind, records, out::layout::list);
    return 0;
}

int do_ls(const options& o) {
    std::vector<pipe::info> found;
    if (o.pid || o.anon) {
        if (!o.path.empty()) throw usage_error("give a directory or --pid/--anon, not both");
        found = pipe::list_pipes(o.pid);
    } else {
        found = pipe::list_fifos(o.path.empty() ? "." : o.path, o.recursive);
    }
    std::vector<out::record> records;
    for (const auto& i : found) records.push_back(to_record(i));
    cli::emit(kind, records);
    return 0;
}

int do_send(const options& o) {
    auto mode = wire_mode(o, false);
    auto max = parse::size(o.max_msg_size);
    if (!o.messages.empty() && (!o.input.file.empty() || o.input.whole || o.input.jsonl))
        throw usage_error("give messages as arguments or on stdin, not both");
    // Messages given as arguments are checked before anything is opened.
    std::string scratch;
    for (const auto& m : o.messages) {
        if (m.size() > max)
            throw data_error(fmt::format("message of {} bytes is over the maximum message size ({}); nothing sent",
                                         m.size(), parse::human_size(max)));
        framing::encode(mode, m, scratch);
        scratch.clear();
    }
    unique_fd own;
    int fd = STDOUT_FILENO;
    std::string label = "standard output";
    if (o.path != "-") {
        own = pipe::open_fifo(o.path, pipe::direction::write, o.wait.deadline(),
                              [](const std::string& w) { cli::warn(w); });
        fd = own.get();
        label = fmt::format("FIFO '{}'", o.path);
    }
    pipe::sender sender(fd, label, mode);
    std::uint64_t sent = 0, bytes = 0;
    auto send_one = [&](std::string_view payload) {
        if (payload.size() > max)
            throw data_error(fmt::format("message of {} bytes is over the maximum message size ({}); nothing sent",
                                         payload.size(), parse::human_size(max)));
        if (!sender.send(payload, o.wait.deadline()))
            throw temp_failure(fmt::format("timed out sending to {} after {} message{}: the pipe stayed full",
                                           label, sent, sent == 1 ? "" : "s"),
                               EAGAIN);
        ++sent;
        bytes += payload.size();
    };
    if (!o.messages.empty()) {
        for (const auto& m : o.messages) send_one(m);
    } else {
        unique_fd file;
        int in = STDIN_FILENO;
        if (!o.input.file.empty() && o.input.file != "-") {
            file.reset(::open(o.input.file.c_str(), O_RDONLY | O_CLOEXEC));
            if (!file) throw last_system_error("open", "file", o.input.file);
            in = file.get();
        }
        stream::input input(in, o.input.mode(), max);
        while (auto m = input.next()) send_one(m->data);
    }
    // With "-" stdout carries the messages themselves: no summary there.
    if (cli::format() != out::format::text && o.path != "-") {
        out::record r;
        r.add("name", o.path).add("messages_sent", sent).add("bytes_sent", bytes);
        cli::emit(kind, std::vector{r});
    }
    return 0;
}

int do_recv(const options& o) {
    auto mode = wire_mode(o, true);
    auto max = parse::size(o.max_msg_size);
    auto printer = cli::make_printer(o.print);
    bool is_fifo = o.path != "-";
    unique_fd fd;
    if (is_fifo) fd = pipe::open_fifo(o.path, pipe::direction::read, o.wait.deadline(), [](const std::string& w) {
        cli::warn(w);
    });
    int in = is_fifo ? fd.get() : STDIN_FILENO;
    framing::reader reader(in, mode, max);
    std::uint64_t got = 0;
    // --follow keeps taking, up to --count when one is given.
    const bool follow = o.follow && !o.count_set;
    const std::uint64_t want = o.count;
    auto reopen = [&] {
        // Open the next read end before closing this one, so that writers
        // never find the FIFO without a reader.
        auto next = pipe::open_fifo(o.path, pipe::direction::read, deadline::never());
        reader.restart(next.get());
        fd = std::move(next);
    };
    while (follow || got < want) {
        framing::result r;
        try {
            r = reader.next(o.wait.deadline(), follow ? framing::all : static_cast<std::size_t>(want - got));
        } catch (const error& e) {
            if (e.code() != exit_code::data || !is_fifo || o.until_eof || reader.partial_bytes() > 0) throw;
            // A writer left in the middle of a message: drop it, wait for the next.
            cli::warn(e.what());
            reopen();
            continue;
        }
        if (r.st == framing::status::message) {
            ++got;
            printer.print(stream::message{std::move(r.data), {}}, got, stream::now_ns());
            if (o.follow) printer.flush();
            continue;
        }
        if (r.st == framing::status::timeout) {
            printer.flush();
            if (got == 0) throw temp_failure("no message within the timeout", ETIMEDOUT);
            if (follow) return static_cast<int>(exit_code::temp_fail);
            throw temp_failure(fmt::format("timed out after {} of {} messages", got, want), ETIMEDOUT);
        }
        // End of stream: a FIFO waits for its next writer unless told otherwise.
        if (is_fifo && !o.until_eof) {
            reopen();
            continue;
        }
        if (follow) return 0;
        printer.flush();
        throw temp_failure(got == 0 ? std::string("end of input before any message")
                                    : fmt::format("end of input after {} of {} messages", got, want));
    }
    return 0;
}

int do_set_capacity(const options& o) {
    auto c = pipe::set_capacity(o.path, parse::size(o.size));
    out::record r;
    r.add("name", c.name)
        .add("requested_bytes", c.requested)
        .add("previous_bytes", c.previous)
        .add("capacity_bytes", c.granted)
        .add("via", c.via);
    cli::emit(kind, std::vector{r});
    return 0;
}

int do_relay(const options& o) {
    unique_fd in_own, out_own;
    int in = STDIN_FILENO, out = STDOUT_FILENO;
    if (o.path != "-") {
        in_own = pipe::open_fifo(o.path, pipe::direction::read, o.wait.deadline(),
                                 [](const std::string& w) { cli::warn(w); });
        // Wait for the first writer: a FIFO without one reads as ended.
        if (wait_fd(in_own.get(), POLLIN, o.wait.deadline()) == 0)
            throw temp_failure(fmt::format("no writer opened FIFO '{}' within the timeout", o.path), ETIMEDOUT);
        set_nonblocking(in_own.get(), false);
        in = in_own.get();
    }
    if (o.dest != "-") {
        out_own = pipe::open_fifo(o.dest, pipe::direction::write, o.wait.deadline(),
                                  [](const std::string& w) { cli::warn(w); });
        set_nonblocking(out_own.get(), false);
        out = out_own.get();
    }
    bool show = o.progress || (!o.no_progress && ::isatty(STDERR_FILENO));
    auto start = std::chrono::steady_clock::now();
    auto seconds = [&] {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    };
    std::function<void(std::uint64_t)> progress;
    if (show)
        progress = [&](std::uint64_t bytes) {
            double s = seconds();
            std::fprintf(stderr, "\r%s: %s in %.1fs (%s/s)   ", cli::program().data(),
                         parse::human_size(bytes).c_str(), s,
                         parse::human_size(static_cast<std::uint64_t>(s > 0 ? bytes / s : 0)).c_str());
        };
    pipe::relay_stats stats;
    try {
        stats = pipe::relay(in, out, progress);
    } catch (const error& e) {
        // stdout's reader leaving is the normal end of a pipeline.
        if (e.errno_value() == EPIPE && o.dest == "-") throw stdout_closed();
        throw;
    }
    if (show) std::fputc('\n', stderr);
    if (o.dest != "-" && cli::format() != out::format::text) {
        double s = seconds();
        out::record r;
        r.add("name", o.path)
            .add("destination", o.dest)
            .add("bytes", stats.bytes)
            .add("seconds", s)
            .add("bytes_per_second", s > 0 ? static_cast<double>(stats.bytes) / s : 0.0)
            .add("spliced", stats.spliced);
        cli::emit(kind, std::vector{r});
    }
    return 0;
}

} // namespace

int do_wait(options o) {
    if (!o.min_bytes.empty()) o.until.min_bytes = parse::size(o.min_bytes);
    auto step = parse::positive_duration(o.interval, "interval");
    auto until = o.wait.deadline();
    for (;;) {
        // stat never opens the FIFO, so waiting disturbs nobody.
        if (auto i = pipe::try_stat(o.path); i && pipe::meets(*i, o.until)) {
            if (cli::format() != out::format::text) cli::emit(kind, std::vector{to_full_record(*i)});
            return 0;
        }
        if (until.expired()) throw temp_failure(fmt::format("'{}' did not meet the condition within the timeout", o.path), ETIMEDOUT);
        sleep_until(until, step);
    }
}

int do_watch(const options& o) {
    auto step = parse::positive_duration(o.interval, "interval");
    auto until = o.wait.deadline();
    std::optional<out::json> last;
    std::uint64_t changes = 0;
    bool text = cli::format() == out::format::text;
    for (;;) {
        auto i = pipe::try_stat(o.path);
        out::json now = out::json::object();
        if (i) {
            auto r = to_record(*i);
            for (const auto& f : r.fields())
                if (f.key != "name" && f.key != "kind" && f.key != "inode" && f.key != "uid" && f.key != "user")
                    now[f.key] = f.value;
        } else {
            now["exists"] = false;
        }
        if (!last || *last != now) {
            ++changes;
            out::json rec = out::json::object();
            rec["seq"] = changes;
            rec["timestamp_ns"] = stream::now_ns();
            rec["name"] = o.path;
            rec["exists"] = i.has_value();
            for (auto it = now.begin(); it != now.end(); ++it) rec[it.key()] = it.value();
            if (!cli::quiet()) {
                if (text) {
                    std::string line = o.path + " gone";
                    if (i)
                        line = fmt::format("{} queued={} capacity={} readers={} writers={}", o.path,
                                           i->queued_bytes ? std::to_string(*i->queued_bytes) : "-",
                                           i->capacity_bytes ? std::to_string(*i->capacity_bytes) : "-",
                                           i->readers(), i->writers());
                    out::stdout_stream().write(line + "\n");
                } else {
                    out::stdout_stream().write(rec.dump() + "\n");
                }
                out::stdout_stream().flush();
            }
            last = std::move(now);
            if (o.changes && changes >= o.changes) return 0;
        }
        if (until.expired()) return 0;
        sleep_until(until, step);
    }
}

int main(int argc, char** argv) {
    cli::app app("ipc-pipe", "Named and unnamed pipes: create, inspect, send and receive messages, relay.");
    options o;

    auto* create = app.verb("create", "Make FIFOs (mkfifo)", [&] { return do_create(o); });
    create->add_option("path", o.paths, "FIFO to create")->required()->type_name("PATH");
    app.add_mode(create, o.mode);

    auto* rm = app.verb("rm", "Remove FIFOs (refuses anything else)", [&] { return do_rm(o); });
    rm->add_option("path", o.paths, "FIFO to remove")->required()->type_name("PATH");
    rm->add_flag("--dry-run", o.dry_run, "Say what would be removed; remove nothing");

    auto* stat = app.verb("stat", "Describe a FIFO or pipe: capacity, bytes queued, holders", [&] { return do_stat(o); });
    stat->add_option("path", o.paths, "FIFO path, /proc/PID/fd/N, or - for stdin")->required()->type_name("PATH");

    auto* ls = app.verb("ls", "List FIFOs in a directory, or the pipes processes hold", [&] { return do_ls(o); });
    ls->add_option("dir", o.path, "Directory to list (default: the current one)")->type_name("DIR");
    ls->add_flag("-r,--recursive", o.recursive, "Descend into subdirectories");
    ls->add_option("-p,--pid", o.pid, "Pipes and FIFOs that process PID holds")->type_name("PID");
    ls->add_flag("-a,--anon", o.anon, "Anonymous pipes of every visible process");

    auto* send = app.verb("send", "Write messages into a FIFO", [&] { return do_send(o); });
    send->add_option("path", o.path, "FIFO, or - for stdout")->required()->type_name("PATH");
    send->add_option("message", o.messages, "Messages (default: read from stdin)")->type_name("MSG");
    send->add_flag("--framed", o.framed, "Length-prefixed frames (4-byte big-endian length), binary-safe");
    send->add_option("--max-msg-size", o.max_msg_size, "Largest message accepted (default 64M)")->type_name("SIZE");
    app.add_input(send, o.input);
    app.add_wait(send, o.wait);

    auto* recv = app.verb("recv", "Read messages from a FIFO or stdin", [&] { return do_recv(o); });
    recv->add_option("path", o.path, "FIFO, or - for stdin")->required()->type_name("PATH");
    recv->add_option("-c,--count", o.count, "Take N messages (default 1)")
        ->type_name("N")
        ->each([&](const std::string&) { o.count_set = true; });
    recv->add_flag("-f,--follow", o.follow, "Keep taking messages");
    recv->add_flag("--until-eof", o.until_eof, "Stop when the writers close the FIFO");
    recv->add_flag("--framed", o.framed, "Length-prefixed frames (4-byte big-endian length), binary-safe");
    recv->add_flag("--whole", o.input.whole, "Everything up to the writers' close is one message");
    recv->add_option("--max-msg-size", o.max_msg_size, "Largest message accepted (default 64M)")->type_name("SIZE");
    app.add_print(recv, o.print);
    app.add_wait(recv, o.wait);

    auto* setcap = app.verb("set-capacity", "Resize a pipe's buffer (F_SETPIPE_SZ)", [&] { return do_set_capacity(o); });
    setcap->add_option("path", o.path, "FIFO path, /proc/PID/fd/N, or - for stdin")->required()->type_name("PATH");
    setcap->add_option("size", o.size, "New capacity (rounded up by the kernel)")->required()->type_name("SIZE");

    auto* relay = app.verb("relay", "Copy a FIFO or stdin to a FIFO or stdout, with splice(2)", [&] { return do_relay(o); });
    relay->add_option("source", o.path, "FIFO to read, or - for stdin")->required()->type_name("SRC");
    relay->add_option("dest", o.dest, "FIFO to write, or - for stdout (default)")->type_name("DST");
    relay->add_flag("--progress", o.progress, "Bytes and rate on stderr (default when stderr is a terminal)");
    relay->add_flag("--no-progress", o.no_progress, "No progress line");
    app.add_wait(relay, o.wait);

    auto* wait = app.verb("wait", "Wait until a FIFO exists, or has a reader, a writer, data", [&] { return do_wait(o); });
    wait->add_option("path", o.path, "FIFO path, /proc/PID/fd/N, or - for stdin")->required()->type_name("PATH");
    wait->add_flag("--reader", o.until.reader, "Until some process holds it for reading");
    wait->add_flag("--writer", o.until.writer, "Until some process holds it for writing");
    wait->add_flag("--empty", o.until.empty, "Until nothing is queued in it");
    wait->add_option("--min-bytes", o.min_bytes, "Until at least SIZE bytes are queued")->type_name("SIZE");
    wait->add_option("--interval", o.interval, "How often to look (default 100ms)")->type_name("DUR");
    app.add_wait(wait, o.wait);

    auto* watch = app.verb("watch", "Stream changes of a FIFO's queue and holders", [&] { return do_watch(o); });
    watch->add_option("path", o.path, "FIFO path, /proc/PID/fd/N, or - for stdin")->required()->type_name("PATH");
    watch->add_option("--interval", o.interval, "How often to look (default 100ms)")->type_name("DUR");
    watch->add_option("-c,--count", o.changes, "Stop after N changes (default: until interrupted)")->type_name("N");
    watch->add_option("-t,--timeout", o.wait.timeout, "Stop watching after DUR (default inf)")->type_name("DUR");

    return app.run(argc, argv);
}
