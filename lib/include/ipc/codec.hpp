// SPDX-License-Identifier: MIT
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

/// Byte encodings used by the machine-readable outputs.
namespace ipc::codec {

/// Standard base64 (RFC 4648, with padding).
std::string base64_encode(std::string_view bytes);

/// Decodes standard base64; whitespace is not allowed; padding optional.
/// nullopt when the text is not base64.
std::optional<std::string> base64_decode(std::string_view text);

/// True when bytes are well-formed UTF-8 (no overlongs, no surrogates, no
/// code points above U+10FFFF), so they can travel as a JSON string.
bool valid_utf8(std::string_view bytes) noexcept;

/// CRC-32C (Castagnoli) of bytes, continuing from crc.
std::uint32_t crc32c(std::string_view bytes, std::uint32_t crc = 0) noexcept;

} // namespace ipc::codec
