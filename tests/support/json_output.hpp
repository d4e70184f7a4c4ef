// SPDX-License-Identifier: MIT
// Parsing what the binaries print, for CLI tests: a JSON document, or JSON
// Lines; a test fails (showing the text) when it is not valid.
#pragma once

#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

namespace testing {

inline nlohmann::json parse_json(const std::string& text) {
    INFO(text);
    REQUIRE(nlohmann::json::accept(text));
    return nlohmann::json::parse(text);
}

/// Every line a JSON value, every line ended by a newline.
inline std::vector<nlohmann::json> parse_lines(const std::string& text) {
    std::vector<nlohmann::json> out;
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto nl = text.find('\n', pos);
        REQUIRE(nl != std::string::npos);
        out.push_back(parse_json(text.substr(pos, nl - pos)));
        pos = nl + 1;
    }
    return out;
}

} // namespace testing
