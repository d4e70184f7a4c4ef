// SPDX-License-Identifier: MIT
#include "ipc/parse.hpp"

#include <cctype>
#include <charconv>
#include <climits>
#include <cmath>

#include <sys/ipc.h>
#include <sys/un.h>

#include <fmt/format.h>

#include "ipc/error.hpp"

namespace ipc::parse {

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// Splits "12.5ms" into the number and the unit; false when no number leads.
bool split_number(std::string_view text, std::string_view& number, std::string_view& unit) {
    std::size_t i = 0;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
        ++i;
    if (i == 0) return false;
    number = text.substr(0, i);
    unit = text.substr(i);
    return true;
}

} // namespace

std::uint64_t unsigned_number(std::string_view text, std::string_view what, std::uint64_t max) {
    std::uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 10);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size())
        throw usage_error(fmt::format("invalid {} '{}': expected a non-negative integer", what, text));
    if (value > max)
        throw usage_error(fmt::format("invalid {} '{}': at most {}", what, text, max));
    return value;
}

std::int64_t signed_number(std::string_view text, std::string_view what) {
    std::int64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 10);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size())
        throw usage_error(fmt::format("invalid {} '{}': expected an integer", what, text));
    return value;
}

std::uint64_t size(std::string_view text) {
    auto bad = [&](std::string_view why) {
        return usage_error(fmt::format("invalid size '{}': {}", text, why));
    };
    std::string_view number, unit;
    if (!split_number(text, number, unit) || number.find('.') != std::string_view::npos)
        throw bad("expected an integer with an optional unit (4096, 4K, 1MiB, 1G)");
    std::uint64_t value = 0;
    auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
    if (ec != std::errc() || end != number.data() + number.size()) throw bad("number out of range");
    std::string u = lower(unit);
    unsigned shift = 0;
    if (u.empty() || u == "b") shift = 0;
    else if (u == "k" || u == "kib" || u == "kb") shift = 10;
    else if (u == "m" || u == "mib" || u == "mb") shift = 20;
    else if (u == "g" || u == "gib" || u == "gb") shift = 30;
    else if (u == "t" || u == "tib" || u == "tb") shift = 40;
    else throw bad(fmt::format("unknown unit '{}' (use K, M, G or T: powers of 1024)", unit));
    if (shift && value > (UINT64_MAX >> shift)) throw bad("too large");
    return value << shift;
}

std::chrono::nanoseconds positive_duration(std::string_view text, std::string_view what) {
    auto d = duration(text);
    if (!d || d->count() <= 0)
        throw usage_error(fmt::format("invalid {} '{}': must be finite and above 0", what, text));
    return *d;
}

std::optional<std::chrono::nanoseconds> duration(std::string_view text) {
    std::string t = lower(text);
    if (t == "inf" || t == "infinity" || t == "never") return std::nullopt;
    std::string_view number, unit;
    if (!split_number(text, number, unit))
        throw usage_error(fmt::format("invalid duration '{}': expected 250ms, 2s, 1m, 0 or inf", text));
    double value = 0;
    auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
    if (ec != std::errc() || end != number.data() + number.size() || !std::isfinite(value))
        throw usage_error(fmt::format("invalid duration '{}'", text));
    std::string u = lower(unit);
    double scale = 0;
    if (u.empty() || u == "s") scale = 1e9;
    else if (u == "ms") scale = 1e6;
    else if (u == "us" || u == "µs") scale = 1e3;
    else if (u == "ns") scale = 1;
    else if (u == "m" || u == "min") scale = 60e9;
    else if (u == "h") scale = 3600e9;
    else if (u == "d") scale = 86400e9;
    else
        throw usage_error(fmt::format("invalid duration '{}': unknown unit '{}' (ns, us, ms, s, m, h, d)",
                                      text, unit));
    double ns = value * scale;
    if (ns > 9.2e18) throw usage_error(fmt::format("invalid duration '{}': too long (use inf)", text));
    return std::chrono::nanoseconds(static_cast<std::int64_t>(std::llround(ns)));
}

std::string posix_name(std::string_view text) {
    std::string_view body = text;
    if (!body.empty() && body.front() == '/') body.remove_prefix(1);
    if (body.empty()) throw usage_error(fmt::format("invalid name '{}': empty", text));
    if (body.find('/') != std::string_view::npos)
        throw usage_error(fmt::format("invalid name '{}': only one '/', at the start, is allowed", text));
    if (body == "." || body == "..") throw usage_error(fmt::format("invalid name '{}'", text));
    if (body.size() > NAME_MAX)
        throw usage_error(fmt::format("invalid name '{}...': longer than {} characters",
                                      body.substr(0, 16), NAME_MAX));
    if (body.find('\0') != std::string_view::npos)
        throw usage_error("invalid name: contains a NUL character");
    return "/" + std::string(body);
}

mode_t mode(std::string_view text) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 8);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value > 07777)
        throw usage_error(fmt::format("invalid mode '{}': expected octal permissions such as 0600", text));
    return static_cast<mode_t>(value);
}

key_t sysv_key(std::string_view text) {
    std::string t = lower(text);
    if (t == "ipc_private" || t == "private") return IPC_PRIVATE;
    int base = 10;
    std::string_view digits = text;
    if (t.starts_with("0x")) {
        base = 16;
        digits.remove_prefix(2);
    }
    std::int64_t value = 0;
    bool negative = !digits.empty() && digits.front() == '-' && base == 10;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value, base);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size())
        throw usage_error(fmt::format("invalid key '{}': expected a decimal or 0x hex number", text));
    // Keys are 32-bit: accept 0..0xffffffff and negative decimals as ipcs prints them.
    if (value > 0xffffffffLL || value < INT32_MIN || (negative && value > 0))
        throw usage_error(fmt::format("invalid key '{}': out of the 32-bit range", text));
    return static_cast<key_t>(static_cast<std::uint32_t>(value));
}

std::string endpoint::str() const {
    switch (type) {
    case kind::unix_path: return "unix:" + path;
    case kind::unix_abstract: return "unix:@" + path;
    case kind::tcp:
    case kind::udp: {
        std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
        return fmt::format("{}:{}:{}", type == kind::tcp ? "tcp" : "udp", h, port);
    }
    }
    return {};
}

endpoint socket_endpoint(std::string_view text) {
    auto bad = [&](std::string_view why) {
        return usage_error(fmt::format("invalid endpoint '{}': {}", text, why));
    };
    endpoint ep;
    constexpr std::size_t max_path = sizeof(sockaddr_un::sun_path) - 1;
    if (text.starts_with("unix:")) {
        std::string_view rest = text.substr(5);
        if (rest.starts_with("@")) {
            ep.type = endpoint::kind::unix_abstract;
            ep.path = std::string(rest.substr(1));
            if (ep.path.empty()) throw bad("empty abstract name");
        } else {
            ep.type = endpoint::kind::unix_path;
            ep.path = std::string(rest);
            if (ep.path.empty()) throw bad("empty path");
        }
        if (ep.path.size() > max_path)
            throw bad(fmt::format("longer than the {} bytes a socket address holds", max_path));
        return ep;
    }
    std::string_view rest;
    if (text.starts_with("tcp:")) ep.type = endpoint::kind::tcp;
    else if (text.starts_with("udp:")) ep.type = endpoint::kind::udp;
    else throw bad("expected unix:/path, unix:@name, tcp:HOST:PORT or udp:HOST:PORT");
    rest = text.substr(4);
    std::string_view host, port;
    if (rest.starts_with("[")) {
        auto close = rest.find(']');
        if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':')
            throw bad("expected [ADDRESS]:PORT");
        host = rest.substr(1, close - 1);
        port = rest.substr(close + 2);
    } else {
        auto colon = rest.rfind(':');
        if (colon != std::string_view::npos) {
            host = rest.substr(0, colon);
            port = rest.substr(colon + 1);
            if (host.find(':') != std::string_view::npos) throw bad("write IPv6 addresses as [ADDRESS]:PORT");
        } else if (!rest.empty() && rest.find_first_not_of("0123456789") == std::string_view::npos) {
            // tcp:PORT and udp:PORT: the loopback address; every interface
            // only when the user names it (tcp:0.0.0.0:PORT).
            host = "127.0.0.1";
            port = rest;
        } else throw bad("missing :PORT");
    }
    if (host.empty()) throw bad("empty host");
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value > 65535)
        throw bad("port must be a number from 0 to 65535");
    ep.host = std::string(host);
    ep.port = static_cast<std::uint16_t>(value);
    return ep;
}

std::string human_size(std::uint64_t bytes) {
    static constexpr const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    std::uint64_t v = bytes;
    while (u < 4 && v >= 1024 && v % 1024 == 0) {
        v /= 1024;
        ++u;
    }
    if (v >= 10240 && u < 4) {
        double d = static_cast<double>(bytes);
        int k = 0;
        while (k < 4 && d >= 1024) {
            d /= 1024;
            ++k;
        }
        return fmt::format("{:.1f} {}", d, units[k]);
    }
    return fmt::format("{} {}", v, units[u]);
}

} // namespace ipc::parse
