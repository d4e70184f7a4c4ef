// SPDX-License-Identifier: MIT
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

/// One record model, three renderings. A record is an ordered list of typed
/// fields; the text table, JSON, JSON Lines and CSV are all made from the same
/// records, so they cannot drift apart. Numbers stay JSON numbers.
namespace ipc::out {

using json = nlohmann::ordered_json;

enum class format { text, json, jsonl, csv };

/// "text", "json", "jsonl", "csv"; a usage error otherwise.
format parse_format(std::string_view name);

struct field {
    std::string key;                  ///< snake_case, with its unit (size_bytes)
    json value;                       ///< what JSON, JSON Lines and CSV show
    std::optional<std::string> text;  ///< what the text table shows, if not value
};

class record {
public:
    record& add(std::string key, json value) {
        fields_.push_back({std::move(key), std::move(value), std::nullopt});
        return *this;
    }
    /// A field whose text rendering differs from its value (lists, times).
    record& add(std::string key, json value, std::string text) {
        fields_.push_back({std::move(key), std::move(value), std::move(text)});
        return *this;
    }
    const std::vector<field>& fields() const noexcept { return fields_; }
    const json* find(std::string_view key) const;
    json to_json() const;

private:
    std::vector<field> fields_;
};

/// How the text format lays records out: a table with a header line, or
/// "key: value" lines per record (for stat of one object).
enum class layout { table, list };

/// The text of a field's value in the text table and CSV: strings bare,
/// numbers as JSON writes them, null as "-", lists comma-joined.
std::string text_of(const field& f);

/// Renders records of one kind. JSON: {"KIND": [ {...}, ... ]}. JSON Lines:
/// one object per line. CSV: a header line of keys, RFC 4180 quoting. Text: an
/// aligned table (header of upper-cased keys) or a key/value list.
std::string render(format fmt, std::string_view kind, std::span<const record> records,
                   layout text_layout = layout::table);

/// Buffered writer on standard output. EPIPE becomes ipc::stdout_closed (a
/// normal end of a pipeline); any other write error is an ipc::error with
/// status 74.
class stdout_sink {
public:
    void write(std::string_view data);
    void flush();
    /// Flushes and checks that stdout can still be written; used at exit.
    void close();

private:
    void write_now(std::string_view data);
    std::string buffer_;
};

/// The process's stdout sink.
stdout_sink& stdout_stream();

} // namespace ipc::out
