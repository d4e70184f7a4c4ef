// SPDX-License-Identifier: MIT
#include <catch2/catch.hpp>

#include <cerrno>

#include "ipc/codec.hpp"
#include "ipc/error.hpp"
#include "ipc/output.hpp"

using namespace ipc;

TEST_CASE("errno maps to the contract's exit statuses", "[error]") {
    struct row {
        int err;
        exit_code code;
    };
    for (auto [err, code] : {row{ENOENT, exit_code::no_object}, row{EEXIST, exit_code::exists},
                             row{EACCES, exit_code::no_perm}, row{EPERM, exit_code::no_perm},
                             row{EAGAIN, exit_code::temp_fail}, row{ETIMEDOUT, exit_code::temp_fail},
                             row{EPIPE, exit_code::io}, row{EIO, exit_code::io},
                             row{ECONNREFUSED, exit_code::unavailable}, row{ENOSYS, exit_code::unavailable},
                             row{EMSGSIZE, exit_code::data}, row{EPROTO, exit_code::protocol},
                             row{EINTR, exit_code::interrupted}, row{ENOSPC, exit_code::os},
                             row{EMFILE, exit_code::os}}) {
        CAPTURE(err);
        CHECK(exit_for_errno(err) == code);
    }
    CHECK(static_cast<int>(exit_code::usage) == 64);
    CHECK(static_cast<int>(exit_code::temp_fail) == 75);
    CHECK(static_cast<int>(exit_code::interrupted) == 130);
}

TEST_CASE("system errors read 'cannot VERB KIND NAME: strerror'", "[error]") {
    auto e = system_error(ENOENT, "open", "queue", "/jobs");
    CHECK(std::string(e.what()) == "cannot open queue '/jobs': No such file or directory");
    CHECK(e.code() == exit_code::no_object);
    CHECK(e.errno_value() == ENOENT);
    CHECK(errno_name(ENOENT) == "ENOENT");
    CHECK(std::string(system_error(EACCES, "write to FIFO '/f'").what()) ==
          "cannot write to FIFO '/f': Permission denied");
}

namespace {

std::vector<out::record> sample() {
    std::vector<out::record> rs(2);
    rs[0].add("name", "/a").add("size_bytes", 4096).add("owner", nullptr).add("tags", out::json::array({"x", "y"}));
    rs[1].add("name", "/long-name").add("size_bytes", 17).add("owner", "root").add("tags", out::json::array());
    return rs;
}

} // namespace

TEST_CASE("JSON is one document of the kind, numbers stay numbers", "[output]") {
    auto rs = sample();
    auto doc = out::json::parse(out::render(out::format::json, "things", rs));
    REQUIRE(doc.contains("things"));
    REQUIRE(doc["things"].size() == 2);
    CHECK(doc["things"][0]["size_bytes"].is_number_integer());
    CHECK(doc["things"][0]["size_bytes"] == 4096);
    CHECK(doc["things"][0]["owner"].is_null());
    CHECK(doc["things"][0]["tags"] == out::json::array({"x", "y"}));
    // Field order is the record's order.
    auto it = doc["things"][0].begin();
    CHECK(it.key() == "name");
}

TEST_CASE("JSON Lines: one object per record per line", "[output]") {
    auto rs = sample();
    auto text = out::render(out::format::jsonl, "things", rs);
    auto nl = text.find('\n');
    REQUIRE(nl != std::string::npos);
    CHECK(out::json::parse(text.substr(0, nl))["name"] == "/a");
    CHECK(out::json::parse(text.substr(nl + 1))["size_bytes"] == 17);
    CHECK(std::count(text.begin(), text.end(), '\n') == 2);
}

TEST_CASE("text is an aligned table with upper-case headers", "[output]") {
    auto rs = sample();
    auto text = out::render(out::format::text, "things", rs);
    CHECK(text ==
          "NAME        SIZE_BYTES  OWNER  TAGS\n"
          "/a                4096  -      x,y\n"
          "/long-name          17  root   -\n");
}

TEST_CASE("text list layout for one object", "[output]") {
    std::vector<out::record> rs(1);
    rs[0].add("name", "/a").add("size_bytes", 1);
    CHECK(out::render(out::format::text, "k", rs, out::layout::list) == "name:        /a\nsize_bytes:  1\n");
}

TEST_CASE("CSV quotes per RFC 4180", "[output]") {
    std::vector<out::record> rs(1);
    rs[0].add("name", "a,\"b\"").add("n", 3).add("none", nullptr);
    CHECK(out::render(out::format::csv, "k", rs) == "name,n,none\r\n\"a,\"\"b\"\"\",3,\r\n");
}

TEST_CASE("strings that are not UTF-8 do not break JSON output", "[output]") {
    std::vector<out::record> rs(1);
    rs[0].add("name", std::string("bad\xff"));
    auto doc = out::json::parse(out::render(out::format::json, "k", rs));
    CHECK(doc["k"][0]["name"].get<std::string>().starts_with("bad"));
}

TEST_CASE("unknown output formats are usage errors", "[output]") {
    CHECK(out::parse_format("jsonl") == out::format::jsonl);
    CHECK_THROWS_AS(out::parse_format("yaml"), error);
}

TEST_CASE("base64 round trips and rejects junk", "[codec]") {
    for (std::string s : {std::string(""), std::string("f"), std::string("fo"), std::string("foo"),
                          std::string("foob"), std::string("\0\xff\x80 x", 5)}) {
        CAPTURE(s);
        auto enc = codec::base64_encode(s);
        CHECK(enc.size() % 4 == 0);
        CHECK(codec::base64_decode(enc) == s);
    }
    CHECK(codec::base64_encode("foobar") == "Zm9vYmFy");
    CHECK(codec::base64_encode("fo") == "Zm8=");
    CHECK_FALSE(codec::base64_decode("Zm9v!").has_value());
    CHECK_FALSE(codec::base64_decode("Z").has_value());
    CHECK_FALSE(codec::base64_decode("Zm9=").has_value());  // non-zero padding bits
}

TEST_CASE("UTF-8 validation", "[codec]") {
    CHECK(codec::valid_utf8("plain"));
    CHECK(codec::valid_utf8("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"));
    CHECK_FALSE(codec::valid_utf8("\xff"));
    CHECK_FALSE(codec::valid_utf8("\xc0\xaf"));          // overlong
    CHECK_FALSE(codec::valid_utf8("\xed\xa0\x80"));      // surrogate
    CHECK_FALSE(codec::valid_utf8("\xf4\x90\x80\x80"));  // above U+10FFFF
    CHECK_FALSE(codec::valid_utf8("\xe2\x82"));          // truncated
}

TEST_CASE("CRC-32C known value", "[codec]") {
    CHECK(codec::crc32c("123456789") == 0xE3069283u);
    CHECK(codec::crc32c("6789", codec::crc32c("12345")) == 0xE3069283u);
    // every length and alignment agrees with a bit-at-a-time reference
    std::string data;
    for (int i = 0; i < 80; ++i) data += static_cast<char>(i * 37 + 11);
    auto reference = [](std::string_view b) {
        std::uint32_t c = 0xffffffffu;
        for (unsigned char ch : b) {
            c ^= ch;
            for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
        }
        return ~c;
    };
    for (std::size_t off = 0; off < 8; ++off)
        for (std::size_t len = 0; off + len <= data.size(); len += 3)
            CHECK(codec::crc32c(std::string_view(data).substr(off, len)) == reference(std::string_view(data).substr(off, len)));
}
