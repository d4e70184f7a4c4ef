// SPDX-License-Identifier: MIT
// ipc-pipe: named and unnamed pipes from the shell. Parses, calls lib/, emits.
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include <fcntl.h>
#include <pwd.h>
#include <unistd.h>

#include <fmt/format.h>

#include "ipc/cli.hpp"
#include "ipc/error.hpp"
#include "ipc/parse.hpp"
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
    bool recursive = false;
    bool anon = false;
    std::optional<pid_t> pid;
    bool dry_run = false;
    bool progress = false, no_progress = false;
};

std::string user_name(uid_t uid) {
    const passwd* pw = ::getpwuid(uid);
    return pw ? pw->pw_name : std::to_string(uid);
}

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

framing::mode wire_mode(const options& o) {
    if (o.framed) {
        if (o.input.nul || o.print.nul) throw usage_error("choose one of -0 and --framed");
        return framing::mode::framed;
    }
    if (o.input.nul || o.print.nul) return framing::mode::nul;
    if (o.input.whole) return framing::mode::whole;
    return framing::mode::line;
}

int do_create(const options& o) {
    mode_t m = parse::mode(o.mode);
    std::vector<out::record> records;
    for (const auto& p : o.paths) {
        pipe::create(p, m);
        records.push_back(to_record(pipe::stat(p)));
    }
    cli::emit(kind, records);
    return 0;
}

int do_rm(const options& o) {
    std::vector<out::record> records;
    int status = 0;
    for (const auto& p : o.paths) {
        try {
            if (o.dry_run) {
                // Same checks as a real removal, without the unlink.
                auto info = pipe::stat(p);
                (void)info;
                if (!cli::quiet() && cli::format() == out::format::text)
                    out::stdout_stream().write(fmt::format("would remove {}\n", p));
            } else {
                pipe::remove(p);
            }
            out::record r;
            r.add("name", p).add("removed", !o.dry_run);
            records.push_back(std::move(r));
        } catch (const error& e) {
            if (e.code() == exit_code::usage) throw;
            std::fprintf(stderr, "%s: %s\n", cli::program().data(), e.what());
            if (status == 0) status = static_cast<int>(e.code());
        }
    }
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
    auto mode = wire_mode(o);
    auto max = parse::size(o.max_msg_size);
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
        if (!o.input.file.empty() || o.input.whole || o.input.jsonl)
            throw usage_error("give messages as arguments or on stdin, not both");
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
    if (cli::format() != out::format::text) {
        out::record r;
        r.add("name", o.path).add("messages_sent", sent).add("bytes_sent", bytes);
        cli::emit(kind, std::vector{r});
    }
    return 0;
}

int do_recv(const options& o) {
    if (o.input.whole && o.framed) throw usage_error("choose one of --whole and --framed");
    auto mode = wire_mode(o);
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
    const bool follow = o.follow;
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
            if (follow) printer.flush();
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
    auto until = o.wait.deadline();
    unique_fd in_own, out_own;
    int in = STDIN_FILENO, out = STDOUT_FILENO;
    if (o.path != "-") {
        in_own = pipe::open_fifo(o.path, pipe::direction::read, until, [](const std::string& w) { cli::warn(w); });
        // Wait for the first writer: a FIFO without one reads as ended.
        if (wait_fd(in_own.get(), POLLIN, until) == 0)
            throw temp_failure(fmt::format("no writer opened FIFO '{}' within the timeout", o.path), ETIMEDOUT);
        set_nonblocking(in_own.get(), false);
        in = in_own.get();
    }
    if (o.dest != "-") {
        out_own = pipe::open_fifo(o.dest, pipe::direction::write, until, [](const std::string& w) { cli::warn(w); });
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
    auto stats = pipe::relay(in, out, progress);
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
    recv->add_option("-c,--count", o.count, "Take N messages (default 1)")->type_name("N");
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

    return app.run(argc, argv);
}
