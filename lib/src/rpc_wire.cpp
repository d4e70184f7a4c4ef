// SPDX-License-Identifier: MIT
// How JSON-RPC messages travel: JSON lines, or CBOR / MessagePack in frames
// with a 4-byte length in network byte order; the first byte of a
// connection chooses.
#include <arpa/inet.h>

#include <cstring>

#include <fmt/format.h>

#include "ipc/error.hpp"
#include "ipc/rpc.hpp"

namespace ipc::rpc {

std::string_view name_of(encoding e) noexcept {
    switch (e) {
    case encoding::cbor: return "cbor";
    case encoding::msgpack: return "msgpack";
    case encoding::json: break;
    }
    return "json";
}

encoding encoding_named(std::string_view name) {
    if (name == "json") return encoding::json;
    if (name == "cbor") return encoding::cbor;
    if (name == "msgpack") return encoding::msgpack;
    throw usage_error(fmt::format("unknown encoding '{}': expected json, cbor or msgpack", name));
}

namespace {

std::vector<std::uint8_t> to_binary(const json& v, encoding e) {
    return e == encoding::cbor ? json::to_cbor(v) : json::to_msgpack(v);
}

// Builds a value from a binary parser's events, refusing to nest deeper than
// max_depth before the parser recurses any further.
class limited_sax : public nlohmann::detail::json_sax_dom_parser<json> {
public:
    using base = nlohmann::detail::json_sax_dom_parser<json>;
    explicit limited_sax(json& into) : base(into, false) {}
    bool start_object(std::size_t n) {
        if (++depth_ > max_depth || (n != static_cast<std::size_t>(-1) && n > (1u << 24))) return false;
        return base::start_object(n);
    }
    bool end_object() {
        --depth_;
        return base::end_object();
    }
    bool start_array(std::size_t n) {
        if (++depth_ > max_depth || (n != static_cast<std::size_t>(-1) && n > (1u << 24))) return false;
        return base::start_array(n);
    }
    bool end_array() {
        --depth_;
        return base::end_array();
    }

private:
    std::size_t depth_ = 0;
};

} // namespace

std::optional<json> decode_binary(std::string_view payload, encoding e) {
    if (e == encoding::json) return parse_json(payload);
    json v;
    limited_sax sax(v);
    bool ok = false;
    try {
        auto fmt = e == encoding::cbor ? nlohmann::detail::input_format_t::cbor : nlohmann::detail::input_format_t::msgpack;
        ok = json::sax_parse(payload.begin(), payload.end(), &sax, fmt, true);
    } catch (const std::exception&) {
        ok = false;
    }
    if (!ok || sax.is_errored() || v.is_discarded()) return std::nullopt;
    return v;
}

std::string frame(const json& v, encoding e) {
    if (e == encoding::json) return dump(v) + "\n";
    auto bytes = to_binary(v, e);
    std::uint32_t len = htonl(static_cast<std::uint32_t>(bytes.size()));
    std::string out(4 + bytes.size(), '\0');
    std::memcpy(out.data(), &len, 4);
    std::memcpy(out.data() + 4, bytes.data(), bytes.size());
    return out;
}

std::string datagram(const json& v, encoding e) {
    if (e == encoding::json) return dump(v);
    auto bytes = to_binary(v, e);
    std::string out(1, static_cast<char>(e == encoding::cbor ? cbor_marker : msgpack_marker));
    out.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    return out;
}

std::optional<json> from_datagram(std::string_view d, encoding& e) {
    if (!d.empty() && static_cast<unsigned char>(d[0]) == cbor_marker) e = encoding::cbor;
    else if (!d.empty() && static_cast<unsigned char>(d[0]) == msgpack_marker) e = encoding::msgpack;
    else {
        e = encoding::json;
        return parse_json(d);
    }
    return decode_binary(d.substr(1), e);
}

void frame_reader::feed(const char* data, std::size_t n) {
    if (n == 0) return;
    if (!enc_) {
        auto first = static_cast<unsigned char>(data[0]);
        if (first == cbor_marker || first == msgpack_marker) {
            enc_ = first == cbor_marker ? encoding::cbor : encoding::msgpack;
            ++data;
            --n;
        } else enc_ = encoding::json;
    }
    if (*enc_ == encoding::json) lines_.feed(data, n);
    else bin_.append(data, n);
}

frame_reader::status frame_reader::next(std::string& payload) {
    if (!enc_) return status::need_more;
    if (*enc_ == encoding::json) {
        switch (lines_.next(payload)) {
        case line_reader::status::line: return status::message;
        case line_reader::status::too_long: return status::too_long;
        case line_reader::status::need_more: return status::need_more;
        }
    }
    if (bin_.size() < 4) return status::need_more;
    std::uint32_t len;
    std::memcpy(&len, bin_.data(), 4);
    len = ntohl(len);
    if (len > max_) return status::too_long;
    if (bin_.size() < 4 + static_cast<std::size_t>(len)) return status::need_more;
    payload.assign(bin_, 4, len);
    bin_.erase(0, 4 + static_cast<std::size_t>(len));
    return status::message;
}

std::string frame_reader::rest() {
    if (enc_ && *enc_ != encoding::json) return std::exchange(bin_, {});
    return lines_.rest();
}

} // namespace ipc::rpc
