// SPDX-License-Identifier: MIT
// How ipc-bench writes figures for people: the text table (compact, "12.3us",
// "781.3k") and Markdown (spaced, "12.3 µs", "781.3 k", with G above 10^9).
#pragma once

#include <string>

#include <fmt/format.h>

namespace bench {

enum class unit_style { compact, spaced };

inline std::string ns_text(double ns, unit_style st = unit_style::compact) {
    const char* sp = st == unit_style::spaced ? " " : "";
    if (ns < 10'000) return fmt::format("{:.0f}{}ns", ns, sp);
    if (ns < 10'000'000) return fmt::format("{:.1f}{}{}", ns / 1e3, sp, st == unit_style::spaced ? "µs" : "us");
    return fmt::format("{:.1f}{}ms", ns / 1e6, sp);
}

/// A rate with a k/M (and, spaced, G) prefix before `unit`.
inline std::string rate_text(double r, std::string_view unit = "", unit_style st = unit_style::compact) {
    const char* sp = st == unit_style::spaced ? " " : "";
    if (st == unit_style::spaced && r >= 1e9) return fmt::format("{:.2f}{}G{}", r / 1e9, sp, unit);
    if (r >= 1e6) return fmt::format("{:.2f}{}M{}", r / 1e6, sp, unit);
    if (r >= 1e3) return fmt::format("{:.1f}{}k{}", r / 1e3, sp, unit);
    return fmt::format("{:.0f}{}{}", r, sp, unit);
}

} // namespace bench
