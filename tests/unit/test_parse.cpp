// SPDX-License-Identifier: MIT
#include <catch2/catch.hpp>

#include <climits>

#include <sys/ipc.h>

#include "ipc/error.hpp"
#include "ipc/parse.hpp"

using namespace ipc;
using namespace std::chrono_literals;

namespace {

template <class F>
exit_code code_of(F f) {
    try {
        f();
    } catch (const error& e) {
        return e.code();
    }
    return exit_code::ok;
}

} // namespace

TEST_CASE("sizes take the contract's units, powers of 1024", "[parse]") {
    struct row {
        const char* text;
        std::uint64_t bytes;
    };
    for (auto [text, bytes] : {row{"0", 0}, row{"4096", 4096}, row{"4K", 4096}, row{"4KiB", 4096},
                               row{"4k", 4096}, row{"1M", 1 << 20}, row{"1MiB", 1 << 20},
                               row{"1G", 1ull << 30}, row{"2T", 2ull << 40}, row{"17B", 17}}) {
        CAPTURE(text);
        CHECK(parse::size(text) == bytes);
    }
}

TEST_CASE("bad sizes are usage errors that name the value", "[parse]") {
    for (const char* text : {"", "K", "-1", "1.5K", "4X", "4 K", "99999999999999999999", "17179869184G"}) {
        CAPTURE(text);
        CHECK(code_of([&] { parse::size(text); }) == exit_code::usage);
    }
    try {
        parse::size("12Q");
        FAIL("no error");
    } catch (const error& e) {
        CHECK(std::string(e.what()).find("'12Q'") != std::string::npos);
    }
}

TEST_CASE("durations: units, zero and infinity", "[parse]") {
    CHECK(parse::duration("250ms") == std::chrono::nanoseconds(250ms));
    CHECK(parse::duration("2s") == std::chrono::nanoseconds(2s));
    CHECK(parse::duration("1m") == std::chrono::nanoseconds(60s));
    CHECK(parse::duration("1.5s") == std::chrono::nanoseconds(1500ms));
    CHECK(parse::duration("3") == std::chrono::nanoseconds(3s));
    CHECK(parse::duration("500us") == std::chrono::nanoseconds(500us));
    CHECK(parse::duration("1h") == std::chrono::nanoseconds(3600s));
    CHECK(parse::duration("0") == std::chrono::nanoseconds(0));
    CHECK_FALSE(parse::duration("inf").has_value());
    CHECK_FALSE(parse::duration("INF").has_value());
    for (const char* text : {"", "ms", "-1s", "1x", "1e400", "9999999999d"}) {
        CAPTURE(text);
        CHECK(code_of([&] { parse::duration(text); }) == exit_code::usage);
    }
}

TEST_CASE("POSIX names are normalised to /NAME and checked", "[parse]") {
    CHECK(parse::posix_name("jobs") == "/jobs");
    CHECK(parse::posix_name("/jobs") == "/jobs");
    std::string longest(NAME_MAX, 'a');
    CHECK(parse::posix_name(longest) == "/" + longest);
    for (std::string text : {std::string(""), std::string("/"), std::string("a/b"), std::string("/a/b"),
                             std::string("//a"), std::string("."), std::string(".."),
                             std::string(NAME_MAX + 1, 'a')}) {
        CAPTURE(text);
        CHECK(code_of([&] { parse::posix_name(text); }) == exit_code::usage);
    }
}

TEST_CASE("modes are octal permissions", "[parse]") {
    CHECK(parse::mode("0600") == 0600);
    CHECK(parse::mode("644") == 0644);
    CHECK(parse::mode("1777") == 01777);
    for (const char* text : {"", "8", "0x1", "77777", "rw"}) {
        CAPTURE(text);
        CHECK(code_of([&] { parse::mode(text); }) == exit_code::usage);
    }
}

TEST_CASE("System V keys in decimal or hex", "[parse]") {
    CHECK(parse::sysv_key("1234") == 1234);
    CHECK(parse::sysv_key("0x4d2") == 1234);
    CHECK(parse::sysv_key("0xffffffff") == static_cast<key_t>(-1));
    CHECK(parse::sysv_key("-1") == static_cast<key_t>(-1));
    CHECK(parse::sysv_key("IPC_PRIVATE") == IPC_PRIVATE);
    for (const char* text : {"", "0x", "12z", "0x100000000", "99999999999"}) {
        CAPTURE(text);
        CHECK(code_of([&] { parse::sysv_key(text); }) == exit_code::usage);
    }
}

TEST_CASE("socket endpoints parse and print back", "[parse]") {
    auto u = parse::socket_endpoint("unix:/run/x.sock");
    CHECK(u.type == parse::endpoint::kind::unix_path);
    CHECK(u.path == "/run/x.sock");
    auto a = parse::socket_endpoint("unix:@abstract");
    CHECK(a.type == parse::endpoint::kind::unix_abstract);
    CHECK(a.path == "abstract");
    auto t = parse::socket_endpoint("tcp:localhost:8080");
    CHECK(t.type == parse::endpoint::kind::tcp);
    CHECK(t.host == "localhost");
    CHECK(t.port == 8080);
    auto v6 = parse::socket_endpoint("udp:[::1]:53");
    CHECK(v6.type == parse::endpoint::kind::udp);
    CHECK(v6.host == "::1");
    CHECK(v6.port == 53);
    // A port alone: the loopback address, never every interface.
    auto lo = parse::socket_endpoint("tcp:8080");
    CHECK(lo.host == "127.0.0.1");
    CHECK(lo.port == 8080);
    CHECK(parse::socket_endpoint("udp:0").host == "127.0.0.1");
    for (const char* text : {"unix:/run/x.sock", "unix:@abstract", "tcp:localhost:8080", "udp:[::1]:53", "tcp:9"})
        CHECK(parse::socket_endpoint(parse::socket_endpoint(text).str()) == parse::socket_endpoint(text));
    for (const char* text : {"", "unix:", "unix:@", "tcp:host", "tcp::80", "tcp:", "tcp:99999", "tcp:-1", "tcp:h:99999", "tcp:h:x",
                             "http://x", "tcp:::1:80", "udp:[::1]"}) {
        CAPTURE(text);
        CHECK(code_of([&] { parse::socket_endpoint(text); }) == exit_code::usage);
    }
    std::string too_long = "unix:/" + std::string(200, 'p');
    CHECK(code_of([&] { parse::socket_endpoint(too_long); }) == exit_code::usage);
}

TEST_CASE("human sizes for messages", "[parse]") {
    CHECK(parse::human_size(17) == "17 B");
    CHECK(parse::human_size(65536) == "64 KiB");
    CHECK(parse::human_size(1 << 20) == "1 MiB");
    CHECK(parse::human_size(1536 * 1024) == "1536 KiB");
}
