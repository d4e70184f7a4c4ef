// SPDX-License-Identifier: MIT
// ipc-pipe, run as a real binary against real FIFOs, pipes and processes.
#include <catch2/catch.hpp>

#include <csignal>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "json_output.hpp"
#include "process.hpp"

using nlohmann::json;
using namespace std::chrono_literals;
using testing::child;
using testing::outcome;
using testing::temp_dir;

namespace {

const std::string bin = IPC_PIPE_BIN;

outcome ipc(std::vector<std::string> args, std::optional<std::string> in = std::nullopt,
            std::chrono::milliseconds limit = 20s) {
    args.insert(args.begin(), bin);
    return testing::run(std::move(args), std::move(in), limit);
}

child start(std::vector<std::string> args, std::optional<std::string> in = std::nullopt, bool keep_stdin = false) {
    args.insert(args.begin(), bin);
    return child(std::move(args), std::move(in), keep_stdin);
}

using testing::parse_json;
using testing::parse_lines;

std::string make_fifo(const temp_dir& dir, const std::string& name = "fifo") {
    std::string path = dir / name;
    REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
    return path;
}

// A process that holds the FIFO open for reading and writing (never blocks
// in open, never reads), so writes queue up.
child hold_open(const std::string& fifo) {
    return child({"/bin/sh", "-c", "exec 3<>\"$0\"; exec sleep 60", fifo});
}

json stat_json(const std::string& target) {
    auto r = ipc({"stat", target, "--json"});
    INFO(r.err);
    REQUIRE(r.status == 0);
    return parse_json(r.out)["pipes"][0];
}

std::string as_nobody() { return "setpriv --reuid=65534 --regid=65534 --clear-groups "; }

} // namespace

TEST_CASE("help and version go to stdout with status 0", "[pipe][usage]") {
    auto h = ipc({"--help"});
    CHECK(h.status == 0);
    CHECK(h.out.find("recv") != std::string::npos);
    CHECK(h.err.empty());
    auto vh = ipc({"recv", "--help"});
    CHECK(vh.status == 0);
    CHECK(vh.out.find("ipc-pipe recv") != std::string::npos);
    CHECK(vh.out.find("--timeout") != std::string::npos);
    auto v = ipc({"--version"});
    CHECK(v.status == 0);
    CHECK(v.out.rfind("ipc-pipe ", 0) == 0);
}

TEST_CASE("usage errors: one line, a hint, status 64", "[pipe][usage]") {
    for (auto args : std::vector<std::vector<std::string>>{
             {}, {"frobnicate"}, {"recv"}, {"recv", "/tmp/x", "--bogus"}, {"recv", "/tmp/x", "--count", "many"},
             {"recv", "/tmp/x", "--timeout", "soon"}, {"send", "/tmp/x", "--max-msg-size", "12Q", "m"},
             {"create", "/tmp/x", "--mode", "999"}, {"stat", "/tmp/x", "-o", "yaml"},
             {"set-capacity", "-", "lots"}, {"recv", "/tmp/x", "-0", "--framed"},
             {"recv", "/tmp/x", "-0", "--whole"}, {"recv", "/tmp/x", "--framed", "--whole"},
             {"send", "/tmp/x", "-0", "--framed", "m"}, {"send", "/tmp/x", "--whole", "m"}}) {
        CAPTURE(args);
        auto r = ipc(args);
        CHECK(r.status == 64);
        CHECK(r.out.empty());
        CHECK(r.err.find("ipc-pipe: ") == 0);
        CHECK(r.err.find("Try 'ipc-pipe") != std::string::npos);
        CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 2);
    }
}

TEST_CASE("create makes a FIFO with exactly the mode asked", "[pipe][create]") {
    temp_dir dir;
    std::string path = dir / "made";
    auto r = ipc({"create", path, "--mode", "0640", "--json"});
    REQUIRE(r.status == 0);
    auto doc = parse_json(r.out);
    CHECK(doc["pipes"][0]["name"] == path);
    CHECK(doc["pipes"][0]["kind"] == "fifo");
    CHECK(doc["pipes"][0]["mode"] == "0640");
    struct stat st {};
    REQUIRE(::lstat(path.c_str(), &st) == 0);
    CHECK(S_ISFIFO(st.st_mode));
    CHECK((st.st_mode & 07777) == 0640);

    SECTION("default mode is 0600, quiet prints nothing") {
        std::string p2 = dir / "default";
        auto q = ipc({"create", "-q", p2});
        CHECK(q.status == 0);
        CHECK(q.out.empty());
        REQUIRE(::lstat(p2.c_str(), &st) == 0);
        CHECK((st.st_mode & 07777) == 0600);
    }
    SECTION("an existing path is status 73") {
        auto again = ipc({"create", path});
        CHECK(again.status == 73);
        CHECK(again.err == "ipc-pipe: cannot create FIFO '" + path + "': File exists\n");
    }
    SECTION("a missing directory is status 66") {
        CHECK(ipc({"create", dir / "no/such"}).status == 66);
    }
}

TEST_CASE("rm removes FIFOs and refuses anything else", "[pipe][rm]") {
    temp_dir dir;
    auto fifo = make_fifo(dir);
    std::string file = dir / "regular";
    std::ofstream(file) << "data";
    std::string link = dir / "link";
    REQUIRE(::symlink(fifo.c_str(), link.c_str()) == 0);

    auto dry = ipc({"rm", "--dry-run", fifo});
    CHECK(dry.status == 0);
    CHECK(dry.out.find("would remove") != std::string::npos);
    CHECK(::access(fifo.c_str(), F_OK) == 0);

    auto reg = ipc({"rm", file});
    CHECK(reg.status == 65);
    CHECK(reg.err.find("not a FIFO (it is a regular file)") != std::string::npos);
    CHECK(::access(file.c_str(), F_OK) == 0);

    auto sym = ipc({"rm", link});
    CHECK(sym.status == 65);
    CHECK(::access(fifo.c_str(), F_OK) == 0);

    auto ok = ipc({"rm", fifo, "--json"});
    CHECK(ok.status == 0);
    CHECK(parse_json(ok.out)["pipes"][0]["removed"] == true);
    CHECK(::access(fifo.c_str(), F_OK) != 0);

    auto gone = ipc({"rm", fifo});
    CHECK(gone.status == 66);
    CHECK(gone.err.find("No such file or directory") != std::string::npos);
}

TEST_CASE("send and recv: lines, counts, JSON Lines", "[pipe][send][recv]") {
    temp_dir dir;
    auto fifo = make_fifo(dir);
    auto reader = start({"recv", fifo, "--count", "3", "-o", "jsonl"});
    auto s = ipc({"send", fifo, "alpha", "béta", "gamma delta"});
    CHECK(s.status == 0);
    auto r = reader.wait();
    INFO(r.err);
    REQUIRE(r.status == 0);
    auto lines = parse_lines(r.out);
    REQUIRE(lines.size() == 3);
    CHECK(lines[0]["seq"] == 1);
    CHECK(lines[0]["data"] == "alpha");
    CHECK(lines[1]["data"] == "béta");
    CHECK(lines[1]["size_bytes"] == 5);
    CHECK(lines[2]["seq"] == 3);
    CHECK(lines[2]["timestamp_ns"].is_number_integer());
    CHECK(lines[2]["timestamp_ns"].get<std::int64_t>() > 1'600'000'000'000'000'000);
}

TEST_CASE("send reads stdin: lines, NUL records, the whole input", "[pipe][send][recv]") {
    temp_dir dir;
    auto fifo = make_fifo(dir);
    SECTION("lines; a last line without newline is still a message") {
        auto reader = start({"recv", fifo, "--count", "3"});
        CHECK(ipc({"send", fifo}, std::string("one\ntwo\nthree")).status == 0);
        auto r = reader.wait();
        CHECK(r.status == 0);
        CHECK(r.out == "one\ntwo\nthree\n");
    }
    SECTION("-0 on both ends") {
        auto reader = start({"recv", fifo, "-0", "--count", "2"});
        CHECK(ipc({"send", "-0", fifo}, std::string("a b\0c\nd\0", 8)).status == 0);
        auto r = reader.wait();
        CHECK(r.status == 0);
        CHECK(r.out == std::string("a b\0c\nd\0", 8));
    }
    SECTION("--whole and --framed keep newlines and NULs inside one message") {
        auto reader = start({"recv", fifo, "--framed", "-o", "jsonl"});
        std::string body("line1\nline2\0end\n", 16);
        CHECK(ipc({"send", "--framed", "--whole", fifo}, body).status == 0);
        auto r = reader.wait();
        REQUIRE(r.status == 0);
        auto lines = parse_lines(r.out);
        REQUIRE(lines.size() == 1);
        CHECK(lines[0]["data"] == body);
    }
    SECTION("--jsonl replays binary records") {
        auto reader = start({"recv", fifo, "--framed", "-o", "jsonl", "--count", "2"});
        CHECK(ipc({"send", "--framed", "--jsonl", fifo},
                  std::string("{\"data_base64\":\"AP8=\"}\n{\"seq\":9,\"data\":\"txt\"}\n"))
                  .status == 0);
        auto r = reader.wait();
        REQUIRE(r.status == 0);
        auto lines = parse_lines(r.out);
        REQUIRE(lines.size() == 2);
        CHECK(lines[0]["data_base64"] == "AP8=");
        CHECK(lines[0]["size_bytes"] == 2);
        CHECK(lines[1]["data"] == "txt");
        CHECK(lines[1]["seq"] == 2);
    }
    SECTION("--file") {
        std::string file = dir / "messages";
        std::ofstream(file) << "x\ny\n";
        auto reader = start({"recv", fifo, "--count", "2"});
        CHECK(ipc({"send", fifo, "--file", file}).status == 0);
        CHECK(reader.wait().out == "x\ny\n");
    }
}

TEST_CASE("a message the wire cannot carry is refused whole, nothing sent", "[pipe][send]") {
    temp_dir dir;
    auto fifo = make_fifo(dir);
    auto holder = hold_open(fifo);
    REQUIRE(testing::eventually([&] { return stat_json(fifo)["readers"] == 1; }));
    SECTION("newline inside a line message") {
        auto r = ipc({"send", fifo, "ok", "bad\nmessage"});
        CHECK(r.status == 65);
        CHECK(r.err.find("--framed") != std::string::npos);
        CHECK(stat_json(fifo)["queued_bytes"] == 0);  // checked before anything was sent
    }
    SECTION("over --max-msg-size") {
        auto r = ipc({"send", fifo, "--max-msg-size", "10", "12345678901"});
        CHECK(r.status == 65);
        CHECK(stat_json(fifo)["queued_bytes"] == 0);
    }
    SECTION("malformed JSON Lines input") {
        auto r = ipc({"send", "--jsonl", fifo}, std::string("{\"data\":\"a\"}\n{nope\n"));
        CHECK(r.status == 65);
        CHECK(r.err.find("line 2") != std::string::npos);
        CHECK(stat_json(fifo)["queued_bytes"] == 2);
    }
}

TEST_CASE("timeouts: status 75, and a cut-short --count prints what it got", "[pipe][timeout]") {
    temp_dir dir;
    auto fifo = make_fifo(dir);
    SECTION("recv with nothing to take") {
        auto r = ipc({"recv", fifo, "--timeout", "200ms"});
        CHECK(r.status == 75);
        CHECK(r.out.empty());
        CHECK(ipc({"recv", fifo, "--nonblock"}).status == 75);
    }
    SECTION("send with no reader") {
        auto r = ipc({"send", fifo, "-t", "200ms", "x"});
        CHECK(r.status == 75);
        CHECK(r.err.find("no reader") != std::string::npos);
        CHECK(ipc({"send", fifo, "-n", "x"}).status == 75);
    }
    SECTION("send into a full pipe") {
        auto holder = hold_open(fifo);
        REQUIRE(testing::eventually([&] { return stat_json(fifo)["readers"] == 1; }));
        std::string lots;
        for (int i = 0; i < 20000; ++i) lots += "0123456789\n";
        auto r = ipc({"send", fifo, "-t", "300ms"}, lots);
        CHECK(r.status == 75);
        CHECK(r.err.find("stayed full") != std::string::npos);
        // Whole messages only: what is queued is a multiple of 11 bytes.
        CHECK(stat_json(fifo)["queued_bytes"].get<int>() % 11 == 0);
    }
    SECTION("--count cut short") {
        auto reader = start({"recv", fifo, "--count", "5", "--timeout", "500ms"});
        CHECK(ipc({"send", fifo, "one", "two"}).status == 0);
        auto r = reader.wait();
        CHECK(r.status == 75);
        CHECK(r.out == "one\ntwo\n");
        CHECK(r.err.find("2 of 5") != std::string::npos);
    }
}

TEST_CASE("recv survives writers coming and going - --until-eof stops", "[pipe][recv]") {
    temp_dir dir;
    auto fifo = make_fifo(dir);
    SECTION("two writers one after the other") {
        auto reader = start({"recv", fifo, "--count", "2"});
        CHECK(ipc({"send", fifo, "first"}).status == 0);
        CHECK(ipc({"send", fifo, "second"}).status == 0);
        auto r = reader.wait();
        CHECK(r.status == 0);
        CHECK(r.out == "first\nsecond\n");
    }
    SECTION("--until-eof ends at the first writer's close") {
        auto reader = start({"recv", fifo, "--follow", "--until-eof"});
        CHECK(ipc({"send", fifo, "a", "b"}).status == 0);
        auto r = reader.wait();
        CHECK(r.status == 0);
        CHECK(r.out == "a\nb\n");
    }
    SECTION("--count with --until-eof: end before the count is 75") {
        auto reader = start({"recv", fifo, "--count", "3", "--until-eof"});
        CHECK(ipc({"send", fifo, "a"}).status == 0);
        auto r = reader.wait();
        CHECK(r.status == 75);
        CHECK(r.out == "a\n");
    }
}

TEST_CASE("a writer that dies mid-message never produces a torn message", "[pipe][recv][torn]") {
    temp_dir dir;
    auto fifo = make_fifo(dir);
    SECTION("line: the partial line is dropped, the next writer's message arrives clean") {
        auto reader = start({"recv", fifo, "--count", "2"});
        auto w = testing::sh("printf 'ok\\npart' > '" + fifo + "'");
        CHECK(w.status == 0);
        CHECK(ipc({"send", fifo, "next"}).status == 0);
        auto r = reader.wait();
        CHECK(r.status == 0);
        CHECK(r.out == "ok\nnext\n");
        CHECK(r.err.find("warning: stream ended inside a message: 4 bytes") != std::string::npos);
    }
    SECTION("killed sender: a large framed message is either whole or absent") {
        auto reader = start({"recv", fifo, "--framed", "--follow", "--until-eof", "-o", "jsonl"});
        // A sender killed with SIGKILL at once, then a clean one.
        {
            std::string big(200000, 'k');
            auto victim = start({"send", "--framed", fifo}, big + "\n" + big + "\n", true);
            std::this_thread::sleep_for(5ms);
            victim.kill(SIGKILL);
            victim.wait();
        }
        auto r = reader.wait(30s);
        // Whatever arrived before the kill is whole; a torn frame is reported, not printed.
        for (const auto& line : parse_lines(r.out)) CHECK(line["size_bytes"] == 200000);
        CHECK((r.status == 0 || r.status == 65));
    }
    SECTION("--until-eof on a torn stream: status 65, the whole messages printed") {
        auto reader = start({"recv", fifo, "--follow", "--until-eof"});
        CHECK(testing::sh("printf 'ok\\npart' > '" + fifo + "'").status == 0);
        auto r = reader.wait();
        CHECK(r.status == 65);
        CHECK(r.out == "ok\n");
    }
}

TEST_CASE("length-prefixed frames that lie are bad input (65)", "[pipe][recv][framed]") {
    auto lie = ipc({"recv", "--framed", "-"}, std::string("\0\0\0\x10short", 9));
    CHECK(lie.status == 65);
    CHECK(lie.out.empty());
    auto huge = ipc({"recv", "--framed", "--max-msg-size", "1K", "-"}, std::string("\x7f\0\0\0xxxx", 8));
    CHECK(huge.status == 65);
    CHECK(huge.err.find("over the maximum message size") != std::string::npos);
    auto good = ipc({"recv", "--framed", "--count", "2", "-"}, std::string("\0\0\0\2hi\0\0\0\0", 10));
    CHECK(good.status == 0);
    CHECK(good.out == "hi\n\n");
}

TEST_CASE("recv from stdin takes only what it was asked for", "[pipe][recv]") {
    temp_dir dir;
    std::string file = dir / "in";
    std::ofstream(file) << "1\n2\n3\n";
    // Two recv in a row on one open file: each takes one line.
    auto r = testing::sh("{ '" + bin + "' recv -; '" + bin + "' recv -; cat; } < '" + file + "'");
    CHECK(r.status == 0);
    CHECK(r.out == "1\n2\n3\n");
    // The same through a pipe, where the reader peeks with tee(2).
    auto p = testing::sh("printf '1\\n2\\n3\\n' | { '" + bin + "' recv -; '" + bin + "' recv -; cat; }");
    CHECK(p.out == "1\n2\n3\n");
    auto end = ipc({"recv", "-", "--count", "3"}, std::string("only\n"));
    CHECK(end.status == 75);
    CHECK(end.out == "only\n");
}

TEST_CASE("many writers, messages up to PIPE_BUF arrive whole", "[pipe][atomic][ipc7]") {
    temp_dir dir;
    auto fifo = make_fifo(dir);
    const int writers = 6, each = 60;
    auto reader = start({"recv", fifo, "--count", std::to_string(writers * each), "--timeout", "20s"});
    std::vector<child> senders;
    for (int w = 0; w < writers; ++w) {
        std::string input;
        for (int i = 0; i < each; ++i) {
            // 4095 bytes + newline = PIPE_BUF: one write, whole.
            std::string body = std::to_string(w) + ":" + std::to_string(i) + ":";
            body += std::string(4095 - body.size(), static_cast<char>('a' + w));
            input += body + "\n";
        }
        // Input from files: the test process drains one child at a time.
        std::string file = dir / ("in" + std::to_string(w));
        std::ofstream(file) << input;
        senders.push_back(start({"send", fifo, "--file", file}));
    }
    for (auto& s : senders) CHECK(s.wait().status == 0);
    auto r = reader.wait(60s);
    REQUIRE(r.status == 0);
    std::set<std::string> seen;
    std::size_t pos = 0, count = 0;
    while (pos < r.out.size()) {
        auto nl = r.out.find('\n', pos);
        REQUIRE(nl != std::string::npos);
        std::string msg = r.out.substr(pos, nl - pos);
        pos = nl + 1;
        ++count;
        REQUIRE(msg.size() == 4095);
        char fill = msg.back();
        auto colon = msg.find(':', msg.find(':') + 1);
        CHECK(msg.find_first_not_of(fill, colon + 1) == std::string::npos);
        CHECK(fill == 'a' + std::stoi(msg.substr(0, msg.find(':'))));
        seen.insert(msg.substr(0, colon));
    }
    CHECK(count == writers * each);
    CHECK(seen.size() == static_cast<std::size_t>(writers * each));
}

TEST_CASE("many ipc-pipe writers of large framed messages never interleave", "[pipe][atomic]") {
    temp_dir dir;
    auto fifo = make_fifo(dir);
    const int writers = 4, each = 8;
    const std::size_t size = 150000;  // over the default 64 KiB capacity
    auto reader = start({"recv", fifo, "--framed", "-o", "jsonl", "--count", std::to_string(writers * each),
                         "--timeout", "30s"});
    std::vector<child> senders;
    for (int w = 0; w < writers; ++w) {
        std::string input;
        for (int i = 0; i < each; ++i) input += std::string(size, static_cast<char>('A' + w)) + "\n";
        std::string file = dir / ("in" + std::to_string(w));
        std::ofstream(file) << input;
        senders.push_back(start({"send", "--framed", fifo, "--file", file}));
    }
    for (auto& s : senders) CHECK(s.wait(60s).status == 0);
    auto r = reader.wait(60s);
    REQUIRE(r.status == 0);
    auto lines = parse_lines(r.out);
    REQUIRE(lines.size() == writers * each);
    for (const auto& l : lines) {
        auto data = l["data"].get<std::string>();
        REQUIRE(data.size() == size);
        CHECK(data.find_first_not_of(data[0]) == std::string::npos);
    }
}

TEST_CASE("stat: capacity, queued bytes and who holds each end", "[pipe][stat][ipc7]") {
    temp_dir dir;
    auto fifo = make_fifo(dir);
    child reader_proc({"/bin/sh", "-c", "exec cat \"$0\" > /dev/null", fifo});
    child writer_proc({"/bin/sh", "-c", "exec sleep 60 > \"$0\"", fifo});
    REQUIRE(testing::eventually([&] {
        auto s = stat_json(fifo);
        return s["readers"] == 1 && s["writers"] == 1;
    }));
    auto s = stat_json(fifo);
    CHECK(s["kind"] == "fifo");
    CHECK(s["capacity_bytes"] == 65536);  // the default pipe capacity
    CHECK(s["queued_bytes"] == 0);
    CHECK(s["holders_complete"] == true);
    std::set<std::pair<std::string, std::string>> holders;
    for (const auto& h : s["holders"])
        holders.insert({h["command"].get<std::string>(), h["end"].get<std::string>()});
    CHECK(holders.count({"cat", "read"}) == 1);
    CHECK(holders.count({"sleep", "write"}) == 1);
    for (const auto& h : s["holders"]) {
        CHECK(h["pid"].is_number_integer());
        CHECK(h["fd"].is_number_integer());
    }
}

TEST_CASE("stat never disturbs: a writer blocked in open stays blocked", "[pipe][stat]") {
    temp_dir dir;
    auto fifo = make_fifo(dir);
    child writer_proc({"/bin/sh", "-c", "echo data > \"$0\"", fifo});
    std::this_thread::sleep_for(100ms);
    auto s = stat_json(fifo);
    CHECK(s["readers"] == 0);
    CHECK(s["capacity_bytes"].is_null());
    CHECK(ipc({"ls", dir.path().string(), "--json"}).status == 0);
    std::this_thread::sleep_for(300ms);
    // Had stat opened the FIFO for reading, the writer would have finished.
    CHECK(::waitpid(writer_proc.pid(), nullptr, WNOHANG) == 0);
    auto r = ipc({"recv", fifo});
    CHECK(r.out == "data\n");
    CHECK(writer_proc.wait().status == 0);
}

TEST_CASE("stat of our stdin, of /proc/PID/fd/N, and errors", "[pipe][stat]") {
    SECTION("- : the pipe on stdin, with its queued bytes") {
        auto c = start({"stat", "-", "--json"}, std::string("hello"), true);
        auto r = c.wait(20s, true);
        REQUIRE(r.status == 0);
        auto s = parse_json(r.out)["pipes"][0];
        CHECK(s["kind"] == "pipe");
        CHECK(s["queued_bytes"] == 5);
        CHECK(s["capacity_bytes"] == 65536);
        CHECK(s["figures_source"] == "own descriptor");
    }
    SECTION("/proc/PID/fd/N: another process's pipe, both ends found") {
        child sleeper({"sleep", "60"}, std::nullopt, true);
        auto s = stat_json("/proc/" + std::to_string(sleeper.pid()) + "/fd/0");
        CHECK(s["kind"] == "pipe");
        CHECK(s["name"].get<std::string>().find("/fd/0") != std::string::npos);
        bool sleeper_reads = false, we_write = false;
        for (const auto& h : s["holders"]) {
            if (h["pid"] == sleeper.pid() && h["end"] == "read" && h["fd"] == 0) sleeper_reads = true;
            if (h["pid"] == ::getpid() && h["end"] == "write") we_write = true;
        }
        CHECK(sleeper_reads);
        CHECK(we_write);
        CHECK(s["capacity_bytes"] == 65536);
    }
    SECTION("missing: 66, and the --json error object on stderr") {
        auto r = ipc({"stat", "/nonexistent/fifo", "--json"});
        CHECK(r.status == 66);
        CHECK(r.out.empty());
        auto e = parse_json(r.err)["error"];
        CHECK(e["exit_status"] == 66);
        CHECK(e["errno"] == ENOENT);
        CHECK(e["errno_name"] == "ENOENT");
        CHECK(e["message"].get<std::string>().find("/nonexistent/fifo") != std::string::npos);
    }
    SECTION("a regular file: 65") {
        temp_dir dir;
        std::string file = dir / "f";
        std::ofstream(file) << "x";
        CHECK(ipc({"stat", file}).status == 65);
        CHECK(ipc({"recv", file, "-n"}).status == 65);
        CHECK(ipc({"send", file, "x"}).status == 65);
    }
}

TEST_CASE("ls lists FIFOs of a directory and anonymous pipes of processes", "[pipe][ls]") {
    temp_dir dir;
    auto a = make_fifo(dir, "a");
    auto b = make_fifo(dir, "b");
    std::ofstream(dir / "not-a-fifo") << "x";
    std::filesystem::create_directory(dir.path() / "sub");
    auto c = make_fifo(dir, "sub/c");

    auto flat = ipc({"ls", dir.path().string(), "--json"});
    REQUIRE(flat.status == 0);
    auto list = parse_json(flat.out)["pipes"];
    REQUIRE(list.size() == 2);
    CHECK(list[0]["name"] == a);
    CHECK(list[1]["name"] == b);

    auto deep = ipc({"ls", "-r", dir.path().string(), "-o", "jsonl"});
    REQUIRE(deep.status == 0);
    CHECK(parse_lines(deep.out).size() == 3);

    auto csv = ipc({"ls", dir.path().string(), "-o", "csv"});
    CHECK(csv.status == 0);
    CHECK(csv.out.rfind("name,kind,inode,", 0) == 0);

    auto text = ipc({"ls", dir.path().string()});
    CHECK(text.out.rfind("NAME ", 0) == 0);
    CHECK(std::count(text.out.begin(), text.out.end(), '\n') == 3);

    SECTION("--pid: the pipes a process holds, with the other end's holder") {
        child sleeper({"sleep", "60"}, std::nullopt, true);
        auto r = ipc({"ls", "--pid", std::to_string(sleeper.pid()), "--json"});
        REQUIRE(r.status == 0);
        auto pipes = parse_json(r.out)["pipes"];
        CHECK(pipes.size() >= 1);  // the sleeper's stdin
        bool found = false;
        for (const auto& p : pipes)
            for (const auto& h : p["holders"])
                if (h["pid"] == ::getpid()) found = true;
        CHECK(found);
        auto anon = ipc({"ls", "--anon", "--json"});
        INFO(anon.err);
        INFO(sleeper.pid());
        REQUIRE(anon.status == 0);
        bool listed = false;
        auto all = parse_json(anon.out);
        for (const auto& p : all["pipes"])
            for (const auto& h : p["holders"])
                if (h["pid"] == sleeper.pid()) listed = true;
        CHECK(listed);
    }
    SECTION("--pid of no process: 66") {
        CHECK(ipc({"ls", "--pid", "999999999"}).status == 66);
    }
    SECTION("a missing directory: 66") {
        CHECK(ipc({"ls", dir / "nope"}).status == 66);
    }
}

TEST_CASE("set-capacity reports what the kernel granted", "[pipe][capacity][ipc7]") {
    SECTION("on stdin") {
        auto r = ipc({"set-capacity", "-", "100K", "--json"}, std::string("x"));
        REQUIRE(r.status == 0);
        auto s = parse_json(r.out)["pipes"][0];
        CHECK(s["requested_bytes"] == 102400);
        CHECK(s["previous_bytes"] == 65536);
        CHECK(s["capacity_bytes"] == 131072);  // rounded up to a power-of-two number of pages
    }
    SECTION("on a FIFO someone holds, then seen by stat") {
        temp_dir dir;
        auto fifo = make_fifo(dir);
        auto holder = hold_open(fifo);
        REQUIRE(testing::eventually([&] { return stat_json(fifo)["readers"] == 1; }));
        auto r = ipc({"set-capacity", fifo, "1M", "--json"});
        REQUIRE(r.status == 0);
        CHECK(parse_json(r.out)["pipes"][0]["capacity_bytes"] == 1048576);
        CHECK(stat_json(fifo)["capacity_bytes"] == 1048576);
    }
    SECTION("on a FIFO nobody holds: 66") {
        temp_dir dir;
        auto fifo = make_fifo(dir);
        auto r = ipc({"set-capacity", fifo, "1M"});
        CHECK(r.status == 66);
        CHECK(r.err.find("only while") != std::string::npos);
    }
    SECTION("refused without privilege: names pipe-max-size, status 77") {
        auto r = testing::sh("printf x | setpriv --bounding-set=-sys_resource,-sys_admin '" + bin +
                             "' set-capacity - 16M");
        CHECK(r.status == 77);
        CHECK(r.err.find("/proc/sys/fs/pipe-max-size") != std::string::npos);
    }
}

TEST_CASE("permission denied is 77", "[pipe][perm]") {
    temp_dir dir;
    ::chmod(dir.path().c_str(), 0755);
    auto fifo = make_fifo(dir);  // 0600, owned by root
    auto r = testing::sh(as_nobody() + "'" + bin + "' recv -n '" + fifo + "'");
    CHECK(r.status == 77);
    CHECK(r.err.find("Permission denied") != std::string::npos);
    auto s = testing::sh(as_nobody() + "'" + bin + "' send -n '" + fifo + "' x");
    CHECK(s.status == 77);
    auto c = testing::sh(as_nobody() + "'" + bin + "' create '" + (dir / "new") + "'");
    CHECK(c.status == 77);
}

TEST_CASE("symbolic links are not followed when opening", "[pipe][safety]") {
    temp_dir dir;
    auto fifo = make_fifo(dir);
    std::string link = dir / "link";
    REQUIRE(::symlink(fifo.c_str(), link.c_str()) == 0);
    auto r = ipc({"recv", "-n", link});
    CHECK(r.status == 65);
    CHECK(r.err.find("symbolic link") != std::string::npos);
}

TEST_CASE("EPIPE on stdout is a normal end of a pipeline", "[pipe][epipe]") {
    temp_dir dir;
    auto fifo = make_fifo(dir);
    // bash, for the status of recv itself through PIPESTATUS.
    auto b = testing::run({"bash", "-c",
                           "yes line | '" + bin + "' send '" + fifo + "' 2>/dev/null & "
                           "'" + bin + "' recv --follow '" + fifo + "' | head -1; "
                           "echo \"status=${PIPESTATUS[0]}\"; wait"},
                          std::nullopt, 30s);
    CHECK(b.out == "line\nstatus=0\n");
    CHECK(b.err.empty());
}

TEST_CASE("EPIPE into a FIFO is an error: the message was not delivered", "[pipe][epipe]") {
    temp_dir dir;
    auto fifo = make_fifo(dir);
    // The reader takes one message and leaves; the sender's next writes fail.
    auto reader = start({"recv", fifo});
    std::string lots;
    for (int i = 0; i < 100000; ++i) lots += "message\n";
    auto s = ipc({"send", fifo}, lots, 30s);
    CHECK(reader.wait().status == 0);
    CHECK(s.status == 74);
    CHECK(s.err.find("Broken pipe") != std::string::npos);
}

TEST_CASE("SIGINT is 130, SIGTERM 143", "[pipe][signal]") {
    temp_dir dir;
    auto fifo = make_fifo(dir);
    for (auto [sig, status] : {std::pair{SIGINT, 130}, std::pair{SIGTERM, 143}}) {
        auto reader = start({"recv", fifo});
        REQUIRE(testing::eventually([&] { return stat_json(fifo)["readers"] == 1; }));
        reader.kill(sig);
        auto r = reader.wait();
        CHECK(r.status == status);
    }
}

TEST_CASE("relay: FIFO to stdout and stdin to FIFO, byte for byte", "[pipe][relay]") {
    temp_dir dir;
    auto fifo = make_fifo(dir);
    std::string data;
    std::mt19937 rng(42);
    for (int i = 0; i < 3 * 1024 * 1024; ++i) data += static_cast<char>(rng());
    std::string file = dir / "data";
    std::ofstream(file, std::ios::binary) << data;

    SECTION("FIFO to stdout") {
        auto relay = start({"relay", fifo});
        CHECK(testing::sh("cat '" + file + "' > '" + fifo + "'").status == 0);
        auto r = relay.wait();
        CHECK(r.status == 0);
        CHECK(r.out.size() == data.size());
        CHECK(r.out == data);
    }
    SECTION("stdin to FIFO, with a JSON summary") {
        auto reader = child({"/bin/sh", "-c", "cat \"$0\"", fifo});
        auto r = testing::sh("'" + bin + "' relay - '" + fifo + "' --json < '" + file + "'");
        REQUIRE(r.status == 0);
        auto s = parse_json(r.out)["pipes"][0];
        CHECK(s["bytes"] == data.size());
        CHECK(s["spliced"] == true);
        auto got = reader.wait();
        CHECK(got.out == data);
    }
    SECTION("--progress writes to stderr only") {
        auto relay = start({"relay", fifo, "--progress"});
        CHECK(testing::sh("cat '" + file + "' > '" + fifo + "'").status == 0);
        auto r = relay.wait();
        CHECK(r.out == data);
        CHECK(r.err.find("MiB") != std::string::npos);
    }
    SECTION("a FIFO with no writer times out") {
        CHECK(ipc({"relay", fifo, "-t", "200ms"}).status == 75);
    }
}

TEST_CASE("recv enforces --max-msg-size on complete messages too", "[pipe][recv]") {
    auto r = ipc({"recv", "--max-msg-size", "4", "-"}, std::string("123456789\n"));
    CHECK(r.status == 65);
    CHECK(r.out.empty());
    CHECK(r.err.find("over the maximum message size") != std::string::npos);
    CHECK(ipc({"recv", "--max-msg-size", "4", "-"}, std::string("1234\n")).out == "1234\n");
}

TEST_CASE("a message the wire cannot carry fails at once, before waiting for a reader", "[pipe][send]") {
    temp_dir dir;
    auto fifo = make_fifo(dir);
    auto r = ipc({"send", fifo, "a\nb"}, std::nullopt, 10s);
    CHECK(r.status == 65);
}

TEST_CASE("recv -q takes messages and prints nothing", "[pipe][recv]") {
    auto r = ipc({"recv", "-q", "--count", "2", "-"}, std::string("a\nb\nc\n"));
    CHECK(r.status == 0);
    CHECK(r.out.empty());
}

TEST_CASE("send - writes the wire format to stdout, with no summary mixed in", "[pipe][send]") {
    auto r = ipc({"send", "--framed", "-", "hi", "--json"});
    CHECK(r.status == 0);
    CHECK(r.out == std::string("\0\0\0\2hi", 6));
}

TEST_CASE("holders: exact counts, FIFOs under /dev/shm too", "[pipe][stat]") {
    SECTION("stat - counts ipc-pipe's stdin once and the writer once") {
        auto c = start({"stat", "-", "--json"}, std::string("x"), true);
        auto r = c.wait(20s, true);
        REQUIRE(r.status == 0);
        auto s = parse_json(r.out)["pipes"][0];
        CHECK(s["readers"] == 1);
        CHECK(s["writers"] == 1);
    }
    SECTION("/proc/PID/fd/N does not count ipc-pipe's borrowed copy") {
        child sleeper({"sleep", "60"}, std::nullopt, true);
        auto s = stat_json("/proc/" + std::to_string(sleeper.pid()) + "/fd/0");
        CHECK(s["readers"] == 1);
        CHECK(s["writers"] == 1);
    }
    SECTION("/dev/shm") {
        std::string fifo = "/dev/shm/" + testing::unique_name("ipc-pipe-test");
        REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
        struct cleanup {
            std::string p;
            ~cleanup() { ::unlink(p.c_str()); }
        } guard{fifo};
        auto holder = hold_open(fifo);
        REQUIRE(testing::eventually([&] { return stat_json(fifo)["readers"] == 1; }));
        CHECK(stat_json(fifo)["capacity_bytes"] == 65536);
    }
}

TEST_CASE("relay into stdout ends with 0 when stdout's reader leaves", "[pipe][relay][epipe]") {
    auto b = testing::run({"bash", "-c", "yes | '" + bin + "' relay - | head -c 1 >/dev/null; echo \"${PIPESTATUS[1]}\""},
                          std::nullopt, 30s);
    CHECK(b.out == "0\n");
}

TEST_CASE("create and rm carry on past a failing path - --json errors are JSON", "[pipe][create][rm]") {
    temp_dir dir;
    auto exists = make_fifo(dir, "exists");
    auto r = ipc({"create", dir / "a", exists, dir / "b", "--json"});
    CHECK(r.status == 73);
    CHECK(::access((dir / "a").c_str(), F_OK) == 0);
    CHECK(::access((dir / "b").c_str(), F_OK) == 0);
    CHECK(parse_json(r.out)["pipes"].size() == 2);
    CHECK(parse_json(r.err)["error"]["exit_status"] == 73);

    std::string link = dir / "link";
    REQUIRE(::symlink(exists.c_str(), link.c_str()) == 0);
    auto dry = ipc({"rm", "--dry-run", link});
    CHECK(dry.status == 65);
    auto rm = ipc({"rm", dir / "a", dir / "missing", dir / "b"});
    CHECK(rm.status == 66);
    CHECK(::access((dir / "b").c_str(), F_OK) != 0);
}

TEST_CASE("wait: until a FIFO exists, has a reader, holds data - 75 on timeout", "[pipe][wait]") {
    temp_dir dir;
    std::string fifo = dir / "later";
    SECTION("exists") {
        auto waiter = start({"wait", fifo, "-t", "10s"});
        std::this_thread::sleep_for(150ms);
        REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
        auto r = waiter.wait();
        CHECK(r.status == 0);
        CHECK(r.out.empty());
    }
    SECTION("a reader, then data, without disturbing the writer") {
        REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
        CHECK(ipc({"wait", fifo, "--reader", "-t", "200ms"}).status == 75);
        auto holder = hold_open(fifo);
        auto r = ipc({"wait", fifo, "--reader", "-t", "10s", "--json"});
        CHECK(r.status == 0);
        CHECK(parse_json(r.out)["pipes"][0]["readers"] == 1);
        CHECK(ipc({"wait", fifo, "--empty", "-n"}).status == 0);
        CHECK(ipc({"wait", fifo, "--min-bytes", "4", "-n"}).status == 75);
        CHECK(ipc({"send", fifo, "abc"}).status == 0);
        CHECK(ipc({"wait", fifo, "--min-bytes", "4", "-t", "10s"}).status == 0);
        CHECK(ipc({"wait", fifo, "--empty", "-t", "100ms"}).status == 75);
    }
    SECTION("bad interval is a usage error") {
        CHECK(ipc({"wait", fifo, "--interval", "0"}).status == 64);
    }
}

TEST_CASE("watch: one JSON Lines record per change", "[pipe][watch]") {
    temp_dir dir;
    auto fifo = make_fifo(dir);
    auto watcher = start({"watch", fifo, "-o", "jsonl", "--interval", "20ms", "--count", "2", "-t", "20s"});
    REQUIRE(watcher.read_stdout(1).size() > 0);  // the first record: the state now
    auto holder = hold_open(fifo);                // a change: a reader and a writer
    auto r = watcher.wait(30s);
    CHECK(r.status == 0);
    auto lines = parse_lines(r.out);
    REQUIRE(lines.size() == 2);
    CHECK(lines[0]["seq"] == 1);
    CHECK(lines[0]["readers"] == 0);
    CHECK(lines[1]["seq"] == 2);
    CHECK(lines[1]["readers"] == 1);
    CHECK(lines[1]["writers"] == 1);
    CHECK(lines[1]["timestamp_ns"].is_number_integer());
}

// The pipe column of the MECHANISMS COMPARED table in ipc(7), cell by cell.

TEST_CASE("ipc(7) pipe addressing: a path, or an inherited descriptor", "[ipc7]") {
    temp_dir dir;
    auto fifo = make_fifo(dir);
    auto reader = start({"recv", fifo});
    CHECK(ipc({"send", fifo, "by path"}).status == 0);
    CHECK(reader.wait().out == "by path\n");
    auto inherited = testing::sh("printf 'by descriptor\\n' | '" + bin + "' recv -");
    CHECK(inherited.out == "by descriptor\n");
}

TEST_CASE("ipc(7) pipe maximum message size: framed messages up to --max-msg-size, 64 MiB by default", "[ipc7]") {
    // A header announcing 64 MiB + 1 is refused before any payload is read.
    std::string header("\x04\x00\x00\x01", 4);
    auto over = ipc({"recv", "--framed", "-"}, header);
    CHECK(over.status == 65);
    // 64 MiB exactly is accepted: the stream then ends inside it (torn), also 65,
    // but with the torn-message error rather than the size error.
    std::string exact("\x04\x00\x00\x00", 4);
    auto at = ipc({"recv", "--framed", "-"}, exact);
    CHECK(at.status == 65);
    CHECK(at.err.find("ended inside") != std::string::npos);
}

TEST_CASE("ipc(7) pipe capacity: 64 KiB by default, up to pipe-max-size unprivileged", "[ipc7]") {
    auto dflt = ipc({"stat", "-", "--json"}, std::string("x"));
    REQUIRE(dflt.status == 0);
    CHECK(parse_json(dflt.out)["pipes"][0]["capacity_bytes"] == 65536);
    std::uint64_t max = 0;
    std::ifstream("/proc/sys/fs/pipe-max-size") >> max;
    REQUIRE(max > 0);
    auto unpriv = [&](std::uint64_t size) {
        return testing::sh("printf x | setpriv --bounding-set=-sys_resource,-sys_admin '" + bin +
                           "' set-capacity - " + std::to_string(size));
    };
    CHECK(unpriv(max).status == 0);
    CHECK(unpriv(max * 2).status == 77);
}

TEST_CASE("ipc(7) pipe storage and reliability: kept while held, lost when the last holder closes", "[ipc7]") {
    temp_dir dir;
    auto fifo = make_fifo(dir);
    {
        auto holder = hold_open(fifo);
        REQUIRE(testing::eventually([&] { return stat_json(fifo)["readers"] == 1; }));
        CHECK(ipc({"send", fifo, "kept"}).status == 0);
        CHECK(stat_json(fifo)["queued_bytes"] == 5);
        auto r = ipc({"recv", fifo, "-t", "5s"});  // while held, nothing is lost
        CHECK(r.out == "kept\n");
        CHECK(ipc({"send", fifo, "lost"}).status == 0);
        holder.kill(SIGKILL);
        holder.wait();
    }
    CHECK(stat_json(fifo)["queued_bytes"] == 0);
    CHECK(ipc({"recv", fifo, "-t", "200ms"}).status == 75);
}

TEST_CASE("ipc(7) pipe ordering: messages arrive in the order written, none lost", "[ipc7]") {
    temp_dir dir;
    auto fifo = make_fifo(dir);
    std::string input, expected;
    for (int i = 0; i < 20000; ++i) input += std::to_string(i) + "\n";
    auto reader = start({"recv", fifo, "--count", "20000"});
    CHECK(ipc({"send", fifo}, input).status == 0);
    auto r = reader.wait(60s);
    CHECK(r.status == 0);
    CHECK(r.out == input);
}

TEST_CASE("ipc(7) pipe blocking: full blocks the writer, empty the reader, non-blocking is 75", "[ipc7]") {
    temp_dir dir;
    auto fifo = make_fifo(dir);
    auto holder = hold_open(fifo);
    REQUIRE(testing::eventually([&] { return stat_json(fifo)["readers"] == 1; }));
    CHECK(ipc({"recv", fifo, "-n"}).status == 75);  // empty
    std::string fill;
    for (int i = 0; i < 70000; ++i) fill += "x\n";
    auto blocked = start({"send", fifo}, fill);
    std::this_thread::sleep_for(200ms);
    CHECK(::waitpid(blocked.pid(), nullptr, WNOHANG) == 0);  // still blocked: the pipe is full
    CHECK(stat_json(fifo)["queued_bytes"] == 65536);
    CHECK(ipc({"send", fifo, "-n", "more"}).status == 75);
    auto drain = ipc({"recv", fifo, "--count", "70000", "-q"}, std::nullopt, 60s);
    CHECK(drain.status == 0);
    CHECK(blocked.wait().status == 0);
}

TEST_CASE("ipc(7) pipe sender identity: none recorded", "[ipc7]") {
    auto r = ipc({"recv", "-", "-o", "jsonl"}, std::string("who\n"));
    REQUIRE(r.status == 0);
    auto rec = parse_json(r.out);
    CHECK_FALSE(rec.contains("sender"));
    CHECK(rec["data"] == "who");
}

TEST_CASE("other operating-system errors are 71", "[pipe][status]") {
    if (testing::sanitized()) {
        WARN("skipped: the sanitizer runtime needs the descriptors this test takes away");
        return;
    }
    temp_dir dir;
    auto fifo = make_fifo(dir);
    auto holder = hold_open(fifo);
    REQUIRE(testing::eventually([&] { return stat_json(fifo)["readers"] == 1; }));
    CHECK(ipc({"send", fifo, "x"}).status == 0);
    // One descriptor to spare: the FIFO opens, the peek pipe cannot (EMFILE).
    auto r = testing::sh("ulimit -n 4; exec '" + bin + "' recv '" + fifo + "'");
    CHECK(r.status == 71);
    CHECK(r.err.find("Too many open files") != std::string::npos);
}

TEST_CASE("recv --follow --count N stops after N", "[pipe][recv]") {
    auto r = ipc({"recv", "--follow", "--count", "2", "-"}, std::string("a\nb\nc\n"));
    CHECK(r.status == 0);
    CHECK(r.out == "a\nb\n");
}
