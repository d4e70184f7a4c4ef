// SPDX-License-Identifier: MIT
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "ipc/framing.hpp"
#include "ipc/output.hpp"

/// The contract's message streams: what `send` reads and what `recv` writes,
/// the same for every mechanism.
namespace ipc::stream {

using out::json;

/// One message with the mechanism's metadata (priority, type, topic,
/// sender...) as an ordered JSON object, without seq, size or data.
struct message {
    std::string data;
    json meta = json::object();
};

/// Wall-clock nanoseconds since the epoch.
std::int64_t now_ns() noexcept;

/// The JSON Lines record of a message: seq (if known), size_bytes, meta's
/// fields, timestamp_ns (if known), then data (valid UTF-8) or data_base64.
json to_record(const message& m, std::optional<std::uint64_t> seq,
               std::optional<std::int64_t> timestamp_ns);

/// Parses one JSON Lines record as `recv -o jsonl` writes it: data or
/// data_base64 become the payload; every other field except seq, size_bytes
/// and timestamp_ns is kept in meta. Throws a data error (65) when malformed.
message from_record(std::string_view line);

/// How send takes its input.
enum class input_mode { line, nul, whole, jsonl };

/// Messages from a descriptor (stdin, a file): one per line, NUL-separated,
/// the whole input, or JSON Lines records. A last line without a newline is
/// still a message.
class input {
public:
    input(int fd, input_mode m, std::size_t max_message);
    /// The next message, or nullopt at the end of input.
    std::optional<message> next();

private:
    input_mode mode_;
    framing::reader reader_;
    std::uint64_t line_ = 0;
};

/// How recv writes what it took: payload plus delimiter, or JSON Lines.
struct printer_options {
    bool jsonl = false;
    char delimiter = '\n';
    bool no_delimiter = false;
    bool discard = false;  ///< -q: take messages, print nothing
};

class printer {
public:
    explicit printer(printer_options o) : opts_(o) {}
    void print(const message& m, std::optional<std::uint64_t> seq,
               std::optional<std::int64_t> timestamp_ns);
    void flush();

private:
    printer_options opts_;
};

} // namespace ipc::stream
