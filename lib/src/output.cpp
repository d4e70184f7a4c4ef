// SPDX-License-Identifier: MIT
#include "ipc/output.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <unistd.h>

#include <fmt/format.h>

#include "ipc/error.hpp"
#include "ipc/fd.hpp"

namespace ipc::out {

format parse_format(std::string_view name) {
    if (name == "text") return format::text;
    if (name == "json") return format::json;
    if (name == "jsonl") return format::jsonl;
    if (name == "csv") return format::csv;
    throw usage_error(fmt::format("invalid output format '{}': expected text, json, jsonl or csv", name));
}

const json* record::find(std::string_view key) const {
    for (const auto& f : fields_)
        if (f.key == key) return &f.value;
    return nullptr;
}

json record::to_json() const {
    json obj = json::object();
    for (const auto& f : fields_) obj[f.key] = f.value;
    return obj;
}

namespace {

std::string scalar_text(const json& v) {
    if (v.is_null()) return "-";
    if (v.is_string()) return v.get<std::string>();
    if (v.is_array()) {
        if (v.empty()) return "-";
        std::string out;
        for (const auto& e : v) {
            if (!out.empty()) out += ',';
            out += scalar_text(e);
        }
        return out;
    }
    if (v.is_object()) {
        std::string out;
        for (auto it = v.begin(); it != v.end(); ++it) {
            if (!out.empty()) out += ' ';
            out += it.key() + "=" + scalar_text(it.value());
        }
        return out;
    }
    return v.dump();
}

std::string upper(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    return out;
}

std::string csv_cell(const std::string& s) {
    if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
    std::string out = "\"";
    for (char c : s) {
        if (c == '"') out += '"';
        out += c;
    }
    out += '"';
    return out;
}

// Display width, counting UTF-8 continuation bytes as nothing.
std::size_t width(std::string_view s) {
    return static_cast<std::size_t>(std::count_if(
        s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

// Column keys in first-seen order across all records, so records with
// optional fields still line up.
std::vector<std::string> columns(std::span<const record> records) {
    std::vector<std::string> keys;
    for (const auto& r : records)
        for (const auto& f : r.fields())
            if (std::find(keys.begin(), keys.end(), f.key) == keys.end()) keys.push_back(f.key);
    return keys;
}

const field* find_field(const record& r, const std::string& key) {
    for (const auto& f : r.fields())
        if (f.key == key) return &f;
    return nullptr;
}

std::string render_table(std::span<const record> records) {
    auto keys = columns(records);
    if (keys.empty()) return {};
    std::vector<std::vector<std::string>> cells;
    std::vector<bool> numeric(keys.size(), true);
    std::vector<std::size_t> widths(keys.size());
    for (std::size_t c = 0; c < keys.size(); ++c) widths[c] = width(upper(keys[c]));
    for (const auto& r : records) {
        auto& row = cells.emplace_back();
        for (std::size_t c = 0; c < keys.size(); ++c) {
            const field* f = find_field(r, keys[c]);
            row.push_back(f ? text_of(*f) : "-");
            if (f && !f->value.is_number() && !f->value.is_null()) numeric[c] = false;
            widths[c] = std::max(widths[c], width(row.back()));
        }
    }
    std::string out;
    auto emit = [&](const std::vector<std::string>& row) {
        std::string line;
        for (std::size_t c = 0; c < row.size(); ++c) {
            bool last = c + 1 == row.size();
            std::size_t pad = widths[c] - width(row[c]);
            if (numeric[c]) line.append(pad, ' ');
            line += row[c];
            if (!numeric[c] && !last) line.append(pad, ' ');
            if (!last) line += "  ";
        }
        while (!line.empty() && line.back() == ' ') line.pop_back();
        out += line;
        out += '\n';
    };
    std::vector<std::string> header;
    for (const auto& k : keys) header.push_back(upper(k));
    emit(header);
    for (const auto& row : cells) emit(row);
    return out;
}

std::string render_list(std::span<const record> records) {
    std::string out;
    bool first = true;
    for (const auto& r : records) {
        if (!first) out += '\n';
        first = false;
        std::size_t w = 0;
        for (const auto& f : r.fields()) w = std::max(w, f.key.size());
        for (const auto& f : r.fields())
            out += fmt::format("{:<{}}  {}\n", f.key + ":", w + 1, text_of(f));
    }
    return out;
}

} // namespace

std::string text_of(const field& f) { return f.text ? *f.text : scalar_text(f.value); }

std::string render(format fmt, std::string_view kind, std::span<const record> records,
                   layout text_layout) {
    switch (fmt) {
    case format::json: {
        json arr = json::array();
        for (const auto& r : records) arr.push_back(r.to_json());
        json doc = json::object();
        doc[std::string(kind)] = std::move(arr);
        return doc.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
    }
    case format::jsonl: {
        std::string out;
        for (const auto& r : records) {
            out += r.to_json().dump(-1, ' ', false, json::error_handler_t::replace);
            out += '\n';
        }
        return out;
    }
    case format::csv: {
        auto keys = columns(records);
        std::string out;
        for (std::size_t c = 0; c < keys.size(); ++c) out += (c ? "," : "") + csv_cell(keys[c]);
        out += "\r\n";
        for (const auto& r : records) {
            for (std::size_t c = 0; c < keys.size(); ++c) {
                const field* f = find_field(r, keys[c]);
                std::string cell;
                if (f && !f->value.is_null())
                    cell = f->value.is_string() ? f->value.get<std::string>()
                           : (f->value.is_structured() ? f->value.dump() : scalar_text(f->value));
                out += (c ? "," : "") + csv_cell(cell);
            }
            out += "\r\n";
        }
        return out;
    }
    case format::text:
        return text_layout == layout::list ? render_list(records) : render_table(records);
    }
    return {};
}

void stdout_sink::write_now(std::string_view data) {
    std::size_t done = 0;
    while (done < data.size()) {
        ssize_t n = retry([&] { return ::write(STDOUT_FILENO, data.data() + done, data.size() - done); });
        if (n >= 0) {
            done += static_cast<std::size_t>(n);
            continue;
        }
        if (errno == EPIPE) throw stdout_closed();
        if (errno == EAGAIN) {
            // stdout was left non-blocking by someone else: wait for room.
            wait_fd(STDOUT_FILENO, POLLOUT, deadline::never());
            continue;
        }
        throw error(exit_code::io, fmt::format("cannot write to standard output: {}", std::strerror(errno)),
                    errno);
    }
}

void stdout_sink::write(std::string_view data) {
    constexpr std::size_t limit = 64 * 1024;
    if (buffer_.size() + data.size() > limit) {
        flush();
        if (data.size() >= limit) {
            write_now(data);
            return;
        }
    }
    buffer_.append(data);
}

void stdout_sink::flush() {
    if (buffer_.empty()) return;
    std::string pending;
    pending.swap(buffer_);
    write_now(pending);
}

void stdout_sink::close() { flush(); }

stdout_sink& stdout_stream() {
    static stdout_sink sink;
    return sink;
}

} // namespace ipc::out
