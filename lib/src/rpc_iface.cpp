// SPDX-License-Identifier: MIT
// Interface files: methods with typed params and results, versions, and the
// type checks a server makes on params.
#include <cerrno>
#include <charconv>
#include <fstream>
#include <iterator>
#include <set>

#include <fmt/format.h>

#include "ipc/error.hpp"
#include "ipc/rpc.hpp"

namespace ipc::rpc {

namespace {

bool identifier(std::string_view s) {
    if (s.empty() || s.size() > 64 || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
    for (char c : s)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
    return true;
}

// Splits "1.2.3" into numbers; nullopt unless every component is a number.
std::optional<std::vector<unsigned long>> components(std::string_view v) {
    std::vector<unsigned long> out;
    if (v.empty()) return std::nullopt;
    std::size_t i = 0;
    while (i <= v.size()) {
        auto dot = v.find('.', i);
        auto part = v.substr(i, dot == std::string_view::npos ? std::string_view::npos : dot - i);
        unsigned long n = 0;
        auto [p, ec] = std::from_chars(part.data(), part.data() + part.size(), n);
        if (part.empty() || ec != std::errc() || p != part.data() + part.size()) return std::nullopt;
        out.push_back(n);
        if (dot == std::string_view::npos) break;
        i = dot + 1;
    }
    return out;
}

} // namespace

bool valid_type(std::string_view t) {
    if (t.ends_with('?')) t.remove_suffix(1);
    if (t.size() >= 2 && ((t.front() == '[' && t.back() == ']') || (t.front() == '{' && t.back() == '}')))
        return valid_type(t.substr(1, t.size() - 2)) && !t.substr(1, t.size() - 2).ends_with('?');
    return t == "int" || t == "uint" || t == "float" || t == "bool" || t == "string" || t == "json";
}

namespace {
// "callback" stands alone: a top-level param, never inside a list or optional.
bool callback_type(std::string_view t) { return t == "callback"; }
} // namespace

bool type_matches(const json& v, std::string_view t) {
    if (t.ends_with('?')) {
        if (v.is_null()) return true;
        t.remove_suffix(1);
    }
    if (t.size() >= 2 && t.front() == '[' && t.back() == ']') {
        if (!v.is_array()) return false;
        for (const auto& e : v)
            if (!type_matches(e, t.substr(1, t.size() - 2))) return false;
        return true;
    }
    if (t.size() >= 2 && t.front() == '{' && t.back() == '}') {
        if (!v.is_object()) return false;
        for (const auto& e : v)
            if (!type_matches(e, t.substr(1, t.size() - 2))) return false;
        return true;
    }
    if (t == "int") return v.is_number_integer() && (v.is_number_unsigned() ? v.get<std::uint64_t>() <= INT64_MAX : true);
    if (t == "uint") return v.is_number_unsigned() || (v.is_number_integer() && v.get<std::int64_t>() >= 0);
    if (t == "float") return v.is_number();
    if (t == "bool") return v.is_boolean();
    if (t == "callback") return callback_of(v).has_value();
    if (t == "string") return v.is_string();
    return t == "json";
}

bool version_satisfies(std::string_view have, std::string_view want) {
    // "=1.2.0": exactly that version.
    if (want.starts_with('=')) return have == want.substr(1);
    auto h = components(have), w = components(want);
    if (!h || !w) return have == want;
    // Compatible as cargo's and npm's caret: the same major number, and not
    // older than want, component by component (a missing one counts 0).
    auto at = [](const std::vector<unsigned long>& v, std::size_t i) { return i < v.size() ? v[i] : 0UL; };
    if (at(*h, 0) != at(*w, 0)) return false;
    for (std::size_t i = 1; i < std::max(h->size(), w->size()); ++i)
        if (at(*h, i) != at(*w, i)) return at(*h, i) > at(*w, i);
    return true;
}

interface parse_interface(const json& v) {
    auto bad = [](const std::string& why) { return data_error("invalid interface: " + why); };
    if (!v.is_object()) throw bad("not a JSON object");
    interface out;
    for (auto it = v.begin(); it != v.end(); ++it)
        if (it.key() != "name" && it.key() != "version" && it.key() != "methods" && it.key() != "doc")
            throw bad(fmt::format("unknown member \"{}\"", it.key()));
    if (!v.contains("name") || !v["name"].is_string() || !identifier(v["name"].get<std::string>()))
        throw bad("\"name\" must be an identifier (letters, digits, '_')");
    out.name = v["name"];
    if (v.contains("version")) {
        if (!v["version"].is_string() || !components(v["version"].get<std::string>()))
            throw bad("\"version\" must be a string of dotted numbers such as \"1.2.0\"");
        out.version = v["version"];
    }
    if (!v.contains("methods") || !v["methods"].is_array()) throw bad("\"methods\" must be an array");
    std::set<std::string> names;
    for (const auto& m : v["methods"]) {
        if (!m.is_object() || !m.contains("name") || !m["name"].is_string())
            throw bad("every method needs a \"name\"");
        method x;
        x.name = m["name"];
        if (!identifier(x.name)) throw bad(fmt::format("method name '{}' is not an identifier", x.name));
        if (!names.insert(x.name).second) throw bad(fmt::format("method '{}' is given twice", x.name));
        for (auto it = m.begin(); it != m.end(); ++it) {
            const auto& k = it.key();
            if (k != "name" && k != "params" && k != "result" && k != "idempotent" && k != "run_to_completion" &&
                k != "command" && k != "doc")
                throw bad(fmt::format("method '{}': unknown member \"{}\"", x.name, k));
        }
        x.params = json::array();
        if (m.contains("params")) {
            if (!m["params"].is_array()) throw bad(fmt::format("method '{}': \"params\" must be an array", x.name));
            std::set<std::string> pnames;
            for (const auto& p : m["params"]) {
                if (!p.is_object() || !p.contains("name") || !p["name"].is_string() || !p.contains("type") ||
                    !p["type"].is_string())
                    throw bad(fmt::format("method '{}': a param needs a \"name\" and a \"type\"", x.name));
                std::string pn = p["name"], pt = p["type"];
                if (!identifier(pn)) throw bad(fmt::format("method '{}': param name '{}' is not an identifier", x.name, pn));
                if (!valid_type(pt) && !callback_type(pt))
                    throw bad(fmt::format("method '{}': param '{}' has an unknown type '{}'", x.name, pn, pt));
                if (!pnames.insert(pn).second) throw bad(fmt::format("method '{}': param '{}' is given twice", x.name, pn));
                json q = {{"name", pn}, {"type", pt}};
                if (p.contains("doc") && p["doc"].is_string()) q["doc"] = p["doc"];
                x.params.push_back(std::move(q));
            }
        }
        x.result = "json";
        if (m.contains("result")) {
            if (!m["result"].is_string() || !valid_type(m["result"].get<std::string>()))
                throw bad(fmt::format("method '{}': \"result\" must be a type name", x.name));
            x.result = m["result"];
        }
        auto flag = [&](const char* k) {
            if (!m.contains(k)) return false;
            if (!m[k].is_boolean()) throw bad(fmt::format("method '{}': \"{}\" must be true or false", x.name, k));
            return m[k].get<bool>();
        };
        x.idempotent = flag("idempotent");
        x.run_to_completion = flag("run_to_completion");
        if (m.contains("doc")) {
            if (!m["doc"].is_string()) throw bad(fmt::format("method '{}': \"doc\" must be a string", x.name));
            x.doc = m["doc"];
        }
        if (m.contains("command")) {
            if (m["command"].is_string()) x.argv = split_command(m["command"].get<std::string>());
            else if (m["command"].is_array() && !m["command"].empty()) {
                for (const auto& a : m["command"]) {
                    if (!a.is_string()) throw bad(fmt::format("method '{}': \"command\" must hold strings", x.name));
                    x.argv.push_back(a);
                }
            } else throw bad(fmt::format("method '{}': \"command\" must be a string or an array of strings", x.name));
            if (x.argv.empty()) throw bad(fmt::format("method '{}': empty \"command\"", x.name));
        }
        out.methods.push_back(std::move(x));
    }
    return out;
}

interface load_interface(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw system_error(errno, "open", "interface", path);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto v = parse_json(text);
    if (!v) throw data_error(fmt::format("interface '{}' is not valid JSON", path));
    try {
        return parse_interface(*v);
    } catch (const error& e) {
        throw error(e.code(), fmt::format("{}: {}", path, e.what()));
    }
}

} // namespace ipc::rpc

namespace ipc::rpc::stub {
void throw_malformed_result(const char* method, const char* type) {
    throw error(exit_code::protocol, fmt::format("malformed reply: the result of '{}' is not of type {}", method, type));
}
} // namespace ipc::rpc::stub
