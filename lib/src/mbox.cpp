// SPDX-License-Identifier: MIT
// Mailboxes: what both backends share, and the dispatch between them.
#include "ipc/mbox.hpp"

#include <fnmatch.h>

#include <fmt/format.h>

#include "ipc/error.hpp"

namespace ipc::mbox {

std::string_view overflow_name(overflow_policy p) {
    return p == overflow_policy::drop_oldest ? "drop-oldest" : "block";
}

overflow_policy parse_overflow(std::string_view text) {
    if (text == "block") return overflow_policy::block;
    if (text == "drop-oldest") return overflow_policy::drop_oldest;
    throw usage_error(fmt::format("--overflow '{}': expected block or drop-oldest", text));
}

std::string_view sync_name(sync_policy p) { return p == sync_policy::always ? "always" : "none"; }

sync_policy parse_sync(std::string_view text) {
    if (text == "none") return sync_policy::none;
    if (text == "always") return sync_policy::always;
    throw usage_error(fmt::format("--sync '{}': expected none or always", text));
}

std::string group_spec::effective_name() const {
    if (!name.empty()) return name;
    if (topic.empty() && from.empty()) return "default";
    std::string n;
    if (!topic.empty()) n = "topic=" + topic;
    if (!from.empty()) n += (n.empty() ? "from=" : ",from=") + from;
    return n;
}

bool topic_matches(std::string_view pattern, std::string_view topic) {
    if (pattern.empty()) return true;
    return ::fnmatch(std::string(pattern).c_str(), std::string(topic).c_str(), 0) == 0;
}

namespace {
void check_backend(const location& where) {
    if (where.backend.empty() || where.backend == "local" || where.is_redis()) {
        if (where.is_redis() && !where.dir.empty())
            throw error(exit_code::unavailable, "the redis backend cannot keep a mailbox in a directory (--dir)");
        return;
    }
    throw usage_error(fmt::format("--backend '{}': expected local or redis://HOST:PORT[/DB]", where.backend));
}
} // namespace

bool create(const location& where, const create_options& opt) {
    check_backend(where);
    return where.is_redis() ? redis::create(where, opt) : local::create(where, opt);
}

std::unique_ptr<mailbox> open(const location& where) {
    check_backend(where);
    return where.is_redis() ? redis::open(where) : local::open(where);
}

void remove(const location& where) {
    check_backend(where);
    where.is_redis() ? redis::remove(where) : local::remove(where);
}

std::vector<mailbox_stat> list(const location& where) {
    check_backend(where);
    return where.is_redis() ? redis::list(where) : local::list(where);
}

} // namespace ipc::mbox
