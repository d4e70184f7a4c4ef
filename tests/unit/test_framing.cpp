// SPDX-License-Identifier: MIT
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdio>
#include <string>
#include <thread>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ipc/error.hpp"
#include "ipc/fd.hpp"
#include "ipc/framing.hpp"
#include "ipc/stream.hpp"
#include "process.hpp"

using namespace ipc;
using namespace std::chrono_literals;

namespace {

struct pipe_pair {
    unique_fd r, w;
    pipe_pair() {
        int p[2];
        REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
        r.reset(p[0]);
        w.reset(p[1]);
    }
};

void put(int fd, std::string_view s) { REQUIRE(::write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size())); }

std::string rest_of(int fd) {
    set_nonblocking(fd, true);
    std::string out;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
}

std::string frame(std::string_view payload) {
    std::string out;
    framing::encode(framing::mode::framed, payload, out);
    return out;
}

} // namespace

TEST_CASE("encode: delimiters and big-endian length prefixes", "[framing]") {
    std::string out;
    framing::encode(framing::mode::line, "abc", out);
    framing::encode(framing::mode::nul, "d", out);
    CHECK(out == std::string("abc\nd\0", 6));
    CHECK(frame("hi") == std::string("\0\0\0\2hi", 6));
    CHECK(frame(std::string(258, 'x')).substr(0, 4) == std::string("\0\0\1\2", 4));
    std::string ignored;
    CHECK_THROWS_AS(framing::encode(framing::mode::line, "a\nb", ignored), error);
    CHECK_THROWS_AS(framing::encode(framing::mode::nul, std::string("a\0b", 3), ignored), error);
    CHECK_NOTHROW(framing::encode(framing::mode::framed, std::string("a\0\nb", 4), ignored));
}

TEST_CASE("lines over a pipe, in pieces", "[framing]") {
    pipe_pair p;
    framing::reader rd(p.r.get(), framing::mode::line, 1024);
    // Catch assertions belong to the main thread: the writer only counts.
    std::atomic<int> short_writes{0};
    std::thread writer([&] {
        for (std::string_view piece : {"hel", "lo\nwor", "ld\n", "\n", "last\n"}) {
            if (::write(p.w.get(), piece.data(), piece.size()) != static_cast<ssize_t>(piece.size())) ++short_writes;
            std::this_thread::sleep_for(2ms);
        }
        p.w.reset();
    });
    std::vector<std::string> got;
    for (;;) {
        auto r = rd.next(deadline::after(10s));
        REQUIRE(r.st != framing::status::timeout);
        if (r.st == framing::status::eof) break;
        got.push_back(r.data);
    }
    writer.join();
    CHECK(short_writes == 0);
    CHECK(got == std::vector<std::string>{"hello", "world", "", "last"});
}

TEST_CASE("the reader never takes bytes beyond the wanted messages (pipe, tee peek)", "[framing]") {
    pipe_pair p;
    put(p.w.get(), "one\ntwo\nthree\nfour");
    {
        framing::reader rd(p.r.get(), framing::mode::line, 1024);
        auto r = rd.next(deadline::after(5s), 2);
        CHECK(r.data == "one");
        r = rd.next(deadline::after(5s), 1);
        CHECK(r.data == "two");
    }
    CHECK(rest_of(p.r.get()) == "three\nfour");
}

TEST_CASE("the reader never takes bytes beyond the wanted message (framed)", "[framing]") {
    pipe_pair p;
    put(p.w.get(), frame("first") + frame(std::string("\0bin\n", 5)) + frame("third"));
    {
        framing::reader rd(p.r.get(), framing::mode::framed, 1024);
        CHECK(rd.next(deadline::after(5s), 1).data == "first");
        CHECK(rd.next(deadline::after(5s), 1).data == std::string("\0bin\n", 5));
    }
    CHECK(rest_of(p.r.get()) == frame("third"));
}

TEST_CASE("the reader never takes bytes beyond the wanted message (socket, MSG_PEEK)", "[framing]") {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    unique_fd a(sv[0]), b(sv[1]);
    put(b.get(), std::string("x\0y\0z", 5));
    {
        framing::reader rd(a.get(), framing::mode::nul, 1024);
        CHECK(rd.next(deadline::after(5s), 1).data == "x");
    }
    CHECK(rest_of(a.get()) == std::string("y\0z", 3));
}

TEST_CASE("a regular file's read-ahead is handed back", "[framing]") {
    testing::temp_dir dir;
    std::string path = dir / "input";
    {
        unique_fd f(::open(path.c_str(), O_WRONLY | O_CREAT, 0600));
        put(f.get(), "a\nb\nc\n");
    }
    unique_fd f(::open(path.c_str(), O_RDONLY));
    {
        framing::reader rd(f.get(), framing::mode::line, 1024);
        CHECK(rd.next(deadline::never(), 1).data == "a");
    }
    CHECK(::lseek(f.get(), 0, SEEK_CUR) == 2);
}

TEST_CASE("a stream that ends inside a message is torn, not a message", "[framing]") {
    SECTION("line") {
        pipe_pair p;
        put(p.w.get(), "whole\nhalf");
        p.w.reset();
        framing::reader rd(p.r.get(), framing::mode::line, 1024);
        CHECK(rd.next(deadline::after(5s)).data == "whole");
        try {
            rd.next(deadline::after(5s));
            FAIL("torn message returned");
        } catch (const error& e) {
            CHECK(e.code() == exit_code::data);
            CHECK(std::string(e.what()).find("4 bytes") != std::string::npos);
        }
    }
    SECTION("a frame that lies about its length") {
        pipe_pair p;
        put(p.w.get(), std::string("\0\0\0\x10short", 9));
        p.w.reset();
        framing::reader rd(p.r.get(), framing::mode::framed, 1024);
        CHECK_THROWS_AS(rd.next(deadline::after(5s)), error);
    }
    SECTION("user input may end without a newline") {
        pipe_pair p;
        put(p.w.get(), "a\nb");
        p.w.reset();
        framing::reader rd(p.r.get(), framing::mode::line, 1024);
        rd.accept_unterminated(true);
        CHECK(rd.next(deadline::after(5s)).data == "a");
        CHECK(rd.next(deadline::after(5s)).data == "b");
        CHECK(rd.next(deadline::after(5s)).st == framing::status::eof);
    }
}

TEST_CASE("oversized messages are refused", "[framing]") {
    SECTION("a frame header over the limit") {
        pipe_pair p;
        put(p.w.get(), frame(std::string(100, 'x')));
        framing::reader rd(p.r.get(), framing::mode::framed, 99);
        CHECK_THROWS_AS(rd.next(deadline::after(5s)), error);
    }
    SECTION("a line over the limit") {
        pipe_pair p;
        put(p.w.get(), std::string(200, 'x'));
        framing::reader rd(p.r.get(), framing::mode::line, 100);
        CHECK_THROWS_AS(rd.next(deadline::after(5s)), error);
    }
}

TEST_CASE("an empty pipe times out at the deadline", "[framing]") {
    pipe_pair p;
    framing::reader rd(p.r.get(), framing::mode::line, 1024);
    auto start = std::chrono::steady_clock::now();
    CHECK(rd.next(deadline::after(50ms)).st == framing::status::timeout);
    CHECK(std::chrono::steady_clock::now() - start >= 50ms);
    CHECK(rd.next(deadline::after(0ms)).st == framing::status::timeout);
}

TEST_CASE("a FIFO nobody has written to yet does not read as ended", "[framing]") {
    testing::temp_dir dir;
    std::string path = dir / "fifo";
    REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
    unique_fd r(::open(path.c_str(), O_RDONLY | O_NONBLOCK));
    REQUIRE(r);
    framing::reader rd(r.get(), framing::mode::line, 1024);
    CHECK(rd.next(deadline::after(50ms)).st == framing::status::timeout);
    {
        unique_fd w(::open(path.c_str(), O_WRONLY | O_NONBLOCK));
        REQUIRE(w);
        put(w.get(), "hi\n");
    }
    CHECK(rd.next(deadline::after(5s)).data == "hi");
    CHECK(rd.next(deadline::after(5s)).st == framing::status::eof);
}

TEST_CASE("whole mode: everything to the end is one message", "[framing]") {
    pipe_pair p;
    put(p.w.get(), std::string_view("a\nb\0c", 5));
    p.w.reset();
    framing::reader rd(p.r.get(), framing::mode::whole, 1024);
    CHECK(rd.next(deadline::after(5s)).data == std::string("a\nb\0c", 5));
    CHECK(rd.next(deadline::after(5s)).st == framing::status::eof);
}

TEST_CASE("JSON Lines records round trip, binary as base64", "[stream]") {
    stream::message m{std::string("\xff\x00z", 3), stream::json::object()};
    m.meta["priority"] = 7;
    auto rec = stream::to_record(m, 3, 1234);
    CHECK(rec["seq"] == 3);
    CHECK(rec["size_bytes"] == 3);
    CHECK(rec["priority"] == 7);
    CHECK(rec["timestamp_ns"] == 1234);
    CHECK_FALSE(rec.contains("data"));
    CHECK(rec.contains("data_base64"));
    auto back = stream::from_record(rec.dump());
    CHECK(back.data == m.data);
    CHECK(back.meta["priority"] == 7);
    CHECK_FALSE(back.meta.contains("seq"));

    auto text = stream::to_record(stream::message{"h\xc3\xa9", {}}, std::nullopt, std::nullopt);
    CHECK(text["data"] == "h\xc3\xa9");
    CHECK_FALSE(text.contains("seq"));
}

TEST_CASE("malformed JSON Lines records are data errors", "[stream]") {
    for (const char* line : {"{", "[1]", "{\"seq\":1}", "{\"data\":5}", "{\"data_base64\":\"!!\"}"}) {
        CAPTURE(line);
        try {
            stream::from_record(line);
            FAIL("accepted");
        } catch (const error& e) {
            CHECK(e.code() == exit_code::data);
        }
    }
}

TEST_CASE("write_all stops at the deadline on a full pipe", "[fd]") {
    pipe_pair p;
    set_nonblocking(p.w.get(), true);
    std::string big(1 << 20, 'x');
    auto n = write_all(p.w.get(), big, deadline::after(50ms), "pipe");
    CHECK(n > 0);
    CHECK(n < big.size());
    CHECK(wait_fd(p.r.get(), POLLIN, deadline::after(0ms)) & POLLIN);
}

TEST_CASE("unique_fd closes what it owns, once", "[fd]") {
    int raw;
    {
        pipe_pair p;
        raw = p.r.get();
        unique_fd moved = std::move(p.r);
        CHECK_FALSE(p.r);
        CHECK(moved.get() == raw);
        CHECK(::fcntl(raw, F_GETFD) >= 0);
    }
    CHECK(::fcntl(raw, F_GETFD) == -1);
}
