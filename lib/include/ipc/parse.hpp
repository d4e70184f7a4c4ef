// SPDX-License-Identifier: MIT
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <sys/types.h>

/// Parsers for the values the contract fixes. Each throws ipc::error with
/// exit_code::usage and a one-line message naming the bad value.
namespace ipc::parse {

/// "4096", "4K", "4KiB", "1M", "1MiB", "1G", "1T" (powers of 1024; case of the
/// unit letter ignored; "B" accepted as a unit of one).
std::uint64_t size(std::string_view text);

/// "250ms", "2s", "1m", "1h", "1.5s", "500us", "0" (do not wait), "inf" (wait
/// forever: nullopt). A bare number is seconds.
std::optional<std::chrono::nanoseconds> duration(std::string_view text);

/// A duration that must be finite and above 0 (--interval, --lease); a usage
/// error naming `what` otherwise ("invalid interval '0': ...").
std::chrono::nanoseconds positive_duration(std::string_view text, std::string_view what);

/// A POSIX object name, "NAME" or "/NAME", normalised to "/NAME". An empty
/// name, ".", "..", a second '/' or more than NAME_MAX characters is refused.
std::string posix_name(std::string_view text);

/// Permission bits in octal ("0600", "644"); at most 07777.
mode_t mode(std::string_view text);

/// A System V key, decimal or 0x hex; "0"/"IPC_PRIVATE" is IPC_PRIVATE.
key_t sysv_key(std::string_view text);

/// A non-negative decimal integer no greater than max.
std::uint64_t unsigned_number(std::string_view text, std::string_view what,
                              std::uint64_t max = UINT64_MAX);

/// A decimal integer (may be negative).
std::int64_t signed_number(std::string_view text, std::string_view what);

/// A socket endpoint: unix:/path, unix:@abstract, tcp:HOST:PORT,
/// udp:HOST:PORT ([v6]:PORT for IPv6 literals).
struct endpoint {
    enum class kind { unix_path, unix_abstract, tcp, udp };
    kind type = kind::unix_path;
    std::string path;  ///< unix: the path or the abstract name (without '@')
    std::string host;  ///< tcp/udp
    std::uint16_t port = 0;

    /// The canonical spelling, which parses back to the same endpoint.
    std::string str() const;
    bool operator==(const endpoint&) const = default;
};
endpoint socket_endpoint(std::string_view text);

/// "64 KiB", "1 MiB", "17 B": for messages, not for machine output.
std::string human_size(std::uint64_t bytes);

} // namespace ipc::parse
