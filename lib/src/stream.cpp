// SPDX-License-Identifier: MIT
#include "ipc/stream.hpp"

#include <chrono>

#include <fmt/format.h>

#include "ipc/codec.hpp"
#include "ipc/error.hpp"

namespace ipc::stream {

std::int64_t now_ns() noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

json to_record(const message& m, std::optional<std::uint64_t> seq,
               std::optional<std::int64_t> timestamp_ns) {
    json r = json::object();
    if (seq) r["seq"] = *seq;
    r["size_bytes"] = m.data.size();
    for (auto it = m.meta.begin(); it != m.meta.end(); ++it) r[it.key()] = it.value();
    if (timestamp_ns) r["timestamp_ns"] = *timestamp_ns;
    if (codec::valid_utf8(m.data)) r["data"] = m.data;
    else r["data_base64"] = codec::base64_encode(m.data);
    return r;
}

message from_record(std::string_view line) {
    json r;
    try {
        r = json::parse(line);
    } catch (const json::parse_error& e) {
        throw data_error(fmt::format("malformed JSON record: {}", e.what()));
    }
    if (!r.is_object()) throw data_error("malformed JSON record: expected an object");
    message m;
    bool has_data = false;
    for (auto it = r.begin(); it != r.end(); ++it) {
        const std::string& key = it.key();
        if (key == "data") {
            if (!it.value().is_string()) throw data_error("malformed JSON record: \"data\" must be a string");
            m.data = it.value().get<std::string>();
            has_data = true;
        } else if (key == "data_base64") {
            if (!it.value().is_string())
                throw data_error("malformed JSON record: \"data_base64\" must be a string");
            auto bytes = codec::base64_decode(it.value().get<std::string>());
            if (!bytes) throw data_error("malformed JSON record: \"data_base64\" is not base64");
            m.data = std::move(*bytes);
            has_data = true;
        } else if (key == "seq" || key == "size_bytes" || key == "timestamp_ns") {
            // Facts of the old delivery; the new one gets its own.
        } else {
            m.meta[key] = it.value();
        }
    }
    if (!has_data) throw data_error("malformed JSON record: no \"data\" or \"data_base64\"");
    return m;
}

namespace {

framing::mode framing_of(input_mode m) {
    switch (m) {
    case input_mode::nul: return framing::mode::nul;
    case input_mode::whole: return framing::mode::whole;
    case input_mode::line:
    case input_mode::jsonl: break;
    }
    return framing::mode::line;
}

} // namespace

input::input(int fd, input_mode m, std::size_t max_message)
    : mode_(m),
      // A JSON record of a message is longer than the message: allow for base64.
      reader_(fd, framing_of(m), m == input_mode::jsonl ? max_message / 3 * 4 + 4096 : max_message) {
    reader_.accept_unterminated(true);
}

std::optional<message> input::next() {
    for (;;) {
        auto r = reader_.next(deadline::never());
        if (r.st != framing::status::message) return std::nullopt;
        ++line_;
        if (mode_ != input_mode::jsonl) return message{std::move(r.data), json::object()};
        if (r.data.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank line
        try {
            return from_record(r.data);
        } catch (const error& e) {
            throw data_error(fmt::format("line {}: {}", line_, e.what()));
        }
    }
}

void printer::print(const message& m, std::optional<std::uint64_t> seq,
                    std::optional<std::int64_t> timestamp_ns) {
    if (opts_.discard) return;
    auto& out = out::stdout_stream();
    if (opts_.jsonl) {
        out.write(to_record(m, seq, timestamp_ns).dump(-1, ' ', false, json::error_handler_t::replace));
        out.write("\n");
        return;
    }
    out.write(m.data);
    if (!opts_.no_delimiter) out.write(std::string_view(&opts_.delimiter, 1));
}

void printer::flush() { out::stdout_stream().flush(); }

} // namespace ipc::stream
