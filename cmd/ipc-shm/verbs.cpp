// SPDX-License-Identifier: MIT
#include "verbs.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <csignal>

#include <fcntl.h>
#include <fnmatch.h>
#include <pwd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include "ipc/codec.hpp"
#include "ipc/error.hpp"
#include "ipc/parse.hpp"
#include "ipc/proc.hpp"
#include "ipc/ring.hpp"
#include "ipc/shm.hpp"
#include "ipc/stream.hpp"

namespace ipc_shm {

using namespace ipc;
namespace shm = ipc::shm;

namespace {

constexpr const char* kind_key = "objects";

using proc::user_name;

std::string key_text(key_t k) { return fmt::format("{:#010x}", static_cast<std::uint32_t>(k)); }

bool by_sysv(const options& o) { return !o.key.empty() || !o.id.empty(); }

std::optional<key_t> key_of(const options& o) {
    if (o.key.empty()) return std::nullopt;
    return parse::sysv_key(o.key);
}

std::optional<int> id_of(const options& o) {
    if (o.id.empty()) return std::nullopt;
    return static_cast<int>(parse::unsigned_number(o.id, "id", INT32_MAX));
}

// The one POSIX name a verb acts on.
std::string one_name(const options& o) {
    if (by_sysv(o) && o.name_given) throw usage_error("give a NAME or --key/--id, not both");
    if (!o.key.empty() && !o.id.empty()) throw usage_error("give --key or --id, not both");
    if (!o.name_given) throw usage_error("missing NAME");
    return parse::posix_name(o.name);
}

// An object owned by another user is not trusted without saying so.
void warn_if_foreign(const std::string& name, uid_t owner) {
    if (owner != ::geteuid()) cli::warn(fmt::format("'{}' belongs to another user ({})", name, user_name(owner)));
}

// The same for an object a verb is about to use; one that is missing is left
// for the verb itself to report.
void check_owner(const std::string& name) {
    if (auto uid = shm::owner(name)) warn_if_foreign(name, *uid);
}

shm::semaphore_ref semaphore_of(const options& o) {
    shm::semaphore_ref r;
    if (by_sysv(o)) {
        if (o.name_given) throw usage_error("give a NAME or --key/--id, not both");
        if (!o.key.empty() && !o.id.empty()) throw usage_error("give --key or --id, not both");
        r.key = key_of(o);
        r.id = id_of(o);
    } else {
        r.name = one_name(o);
        check_owner(*r.name);
    }
    return r;
}

out::json pid_list(const std::vector<pid_t>& pids) {
    out::json a = out::json::array();
    for (pid_t p : pids) a.push_back(p);
    return a;
}

out::record to_record(const shm::object_info& i) {
    out::record r;
    r.add("name", i.name)
        .add("kind", std::string(shm::kind_name(i.kind)))
        .add("size_bytes", i.size_bytes)
        .add("mode", fmt::format("{:04o}", i.mode))
        .add("uid", i.uid)
        .add("user", user_name(i.uid))
        .add("attached", i.attached.size())
        .add("creator_pid", i.creator_pid ? out::json(*i.creator_pid) : out::json(nullptr))
        .add("creator_alive", i.creator_alive ? out::json(*i.creator_alive) : out::json(nullptr));
    return r;
}

out::record to_full_record(const shm::object_info& i) {
    auto r = to_record(i);
    r.add("attached_pids", pid_list(i.attached))
        .add("attached_complete", i.attached_complete)
        .add("tool", i.tool.empty() ? out::json(nullptr) : out::json(i.tool))
        .add("mtime_unix", i.mtime_unix)
        .add("ctime_unix", i.ctime_unix);
    // What the kind itself knows.
    try {
        if (i.kind == shm::kind::channel) {
            auto m = shm::map(i.name, false, shm::kind::channel);
            auto s = ring::channel(m.bytes()).stat();
            r.add("capacity_bytes", s.capacity)
                .add("max_msg_size_bytes", s.max_msg)
                .add("used_bytes", s.used_bytes)
                .add("messages", s.messages)
                .add("sent", s.sent)
                .add("taken", s.taken)
                .add("senders_waiting", s.senders_waiting)
                .add("receivers_waiting", s.receivers_waiting)
                .add("stale_waiters", s.stale_waiters)
                .add("sender_recoveries", s.sender_recoveries)
                .add("receiver_recoveries", s.receiver_recoveries);
        } else if (i.kind == shm::kind::consistent) {
            auto m = shm::map(i.name, shm::consistent::reader_writes, shm::kind::consistent);
            r.add("content_bytes", shm::consistent::content_size(m.bytes()))
                .add("generation", shm::consistent::generation(m.bytes()));
        } else if (i.kind == shm::kind::semaphore) {
            auto s = shm::sem_stat(shm::semaphore_ref{i.name, std::nullopt, std::nullopt});
            r.add("value", s.value).add("waiters", s.waiters ? out::json(*s.waiters) : out::json(nullptr));
        }
    } catch (const error& e) {
        // Damage is reported in the record, not as a failure of stat.
        r.add("damage", e.what());
    }
    return r;
}

out::record to_record(const shm::sysv_info& i) {
    out::record r;
    r.add("id", i.id)
        .add("kind", "segment")
        .add("key", static_cast<std::int64_t>(i.key), key_text(i.key))
        .add("size_bytes", i.size_bytes)
        .add("mode", fmt::format("{:04o}", i.mode))
        .add("uid", i.uid)
        .add("user", user_name(i.uid))
        .add("attached", i.attached)
        .add("creator_pid", i.creator_pid)
        .add("last_pid", i.last_pid);
    return r;
}

out::record to_full_record(const shm::sysv_info& i) {
    auto r = to_record(i);
    r.add("cuid", i.cuid)
        .add("gid", i.gid)
        .add("attach_time_unix", i.attach_time)
        .add("detach_time_unix", i.detach_time)
        .add("change_time_unix", i.change_time)
        .add("removed", i.removed);
    return r;
}

out::record to_record(const shm::semaphore_info& i) {
    out::record r;
    if (i.sysv) r.add("id", i.id).add("key", static_cast<std::int64_t>(i.key), key_text(i.key));
    else r.add("name", i.name);
    r.add("kind", "semaphore")
        .add("value", i.value < 0 ? out::json(nullptr) : out::json(i.value))
        .add("waiters", i.waiters ? out::json(*i.waiters) : out::json(nullptr))
        .add("mode", fmt::format("{:04o}", i.mode))
        .add("uid", i.uid)
        .add("user", user_name(i.uid));
    if (i.sysv)
        r.add("zero_waiters", i.zero_waiters ? out::json(*i.zero_waiters) : out::json(nullptr))
            .add("last_pid", i.last_pid ? out::json(*i.last_pid) : out::json(nullptr));
    return r;
}

template <class F>
int carry_on(const std::vector<std::string>& items, F f) {
    int status = 0;
    for (const auto& it : items) {
        try {
            f(it);
        } catch (const error& e) {
            if (e.code() == exit_code::usage) throw;
            cli::report(e);
            if (status == 0) status = static_cast<int>(e.code());
        }
    }
    return status;
}

std::vector<std::string> checked_names(const std::vector<std::string>& names) {
    std::vector<std::string> out;
    for (const auto& n : names) out.push_back(parse::posix_name(n));  // all checked before any is touched
    return out;
}

} // namespace

int do_create(const options& o) {
    mode_t m = parse::mode(o.mode);
    int kinds = int(o.consistent) + int(o.channel) + int(o.semaphore);
    if (kinds > 1) throw usage_error("choose one of --consistent, --channel and --semaphore");
    if (o.semaphore) {
        if (!o.size.empty() || !o.max_bytes.empty()) throw usage_error("a semaphore takes --value, not a size");
        std::vector<out::record> records;
        if (!o.key.empty()) {
            if (!o.names.empty()) throw usage_error("give a NAME or --key, not both");
            shm::semaphore_ref r{std::nullopt, parse::sysv_key(o.key), std::nullopt};
            if (*r.key == 0) throw usage_error("a System V semaphore set needs a key other than 0");
            if (!shm::sem_create(r, o.value.value_or(0), m, o.exclusive))
                cli::warn(fmt::format("semaphore set with key {} exists; it is left as it is", o.key));
            records.push_back(to_record(shm::sem_stat(r)));
            cli::emit(kind_key, records);
            return 0;
        }
        if (o.names.empty()) throw usage_error("missing NAME (or --key)");
        auto names = checked_names(o.names);
        int status = carry_on(names, [&](const std::string& n) {
            shm::semaphore_ref r{n, std::nullopt, std::nullopt};
            if (!shm::sem_create(r, o.value.value_or(0), m, o.exclusive))
                cli::warn(fmt::format("'{}' exists; it is left as it is", n));
            records.push_back(to_record(shm::sem_stat(r)));
        });
        cli::emit(kind_key, records);
        return status;
    }
    if (o.value) throw usage_error("--value is for semaphores (--semaphore)");
    if (!o.key.empty()) {
        if (!o.names.empty()) throw usage_error("give a NAME or --key, not both");
        if (o.channel || o.consistent) throw usage_error("channels and consistent segments are POSIX objects (a NAME)");
        if (o.size.empty()) throw usage_error("a segment needs --size");
        bool created = false;
        int id = shm::sysv_create(parse::sysv_key(o.key), parse::size(o.size), m, o.exclusive, &created);
        if (!created) cli::warn(fmt::format("segment with key {} exists; it is left as it is", o.key));
        cli::emit(kind_key, std::vector{to_record(shm::sysv_stat(id))});
        return 0;
    }
    if (o.names.empty()) throw usage_error("missing NAME (or --key)");
    auto names = checked_names(o.names);
    std::vector<out::record> records;
    int status = carry_on(names, [&](const std::string& n) {
        bool created;
        if (o.channel) {
            if (o.max_bytes.empty()) throw usage_error("a channel needs --max-bytes");
            if (!o.size.empty()) throw usage_error("a channel's size is --max-bytes");
            created = shm::create_channel(n, parse::size(o.max_bytes),
                                          o.max_msg_size.empty() ? 0 : parse::size(o.max_msg_size), m, o.exclusive);
        } else {
            if (o.size.empty()) throw usage_error("a segment needs --size");
            if (!o.max_bytes.empty() || !o.max_msg_size.empty())
                throw usage_error("--max-bytes and --max-msg-size are for channels (--channel)");
            created = shm::create_segment(n, parse::size(o.size), m, o.exclusive,
                                          o.consistent ? shm::kind::consistent : shm::kind::segment);
        }
        if (!created) cli::warn(fmt::format("'{}' exists; it is left as it is", n));
        records.push_back(to_record(shm::stat(n)));
    });
    cli::emit(kind_key, records);
    return status;
}

int do_stat(const options& o) {
    std::vector<out::record> records;
    if (by_sysv(o)) {
        if (!o.names.empty()) throw usage_error("give NAMEs or --key/--id, not both");
        if (o.semaphore) {
            shm::semaphore_ref r{std::nullopt, key_of(o), id_of(o)};
            records.push_back(to_record(shm::sem_stat(r)));
        } else {
            records.push_back(to_full_record(shm::sysv_stat(shm::sysv_resolve(key_of(o), id_of(o)))));
        }
        cli::emit(kind_key, records, out::layout::list);
        return 0;
    }
    if (o.names.empty()) throw usage_error("missing NAME (or --key/--id)");
    auto names = checked_names(o.names);
    int status = carry_on(names, [&](const std::string& n) { records.push_back(to_full_record(shm::stat(n))); });
    cli::emit(kind_key, records, out::layout::list);
    return status;
}

int do_ls(const options& o) {
    std::optional<shm::kind> only;
    if (!o.kind.empty()) {
        only = shm::parse_kind(o.kind);
        if (!only) throw usage_error(fmt::format("unknown kind '{}'", o.kind));
    }
    std::vector<out::record> records;
    if (o.sysv) {
        if (!only || *only == shm::kind::segment)
            for (const auto& i : shm::sysv_list()) records.push_back(to_record(i));
        if (!only || *only == shm::kind::semaphore)
            for (const auto& i : shm::sem_list_sysv()) records.push_back(to_record(i));
    } else {
        for (const auto& i : shm::list())
            if (!only || i.kind == *only) records.push_back(to_record(i));
    }
    cli::emit(kind_key, records);
    return 0;
}

int do_rm(const options& o) {
    std::vector<out::record> records;
    auto removed = [&](const std::string& label) {
        if (o.dry_run && !cli::quiet() && cli::format() == out::format::text)
            out::stdout_stream().write(fmt::format("would remove {}\n", label));
        out::record r;
        r.add("name", label).add("removed", !o.dry_run);
        records.push_back(std::move(r));
    };
    bool bulk = !o.match.empty() || !o.older_than.empty() || !o.owner.empty() || o.stale;
    if (by_sysv(o)) {
        if (!o.names.empty() || bulk) throw usage_error("--key/--id select one System V object: no NAME or selector");
        int status = 0;
        try {
            if (o.semaphore) {
                shm::semaphore_ref r{std::nullopt, key_of(o), id_of(o)};
                auto s = shm::sem_stat(r);
                if (!o.dry_run) shm::sem_remove(r);
                removed(fmt::format("semaphore set {}", s.id));
            } else {
                int id = shm::sysv_resolve(key_of(o), id_of(o));
                if (!o.dry_run) shm::sysv_remove(id);
                removed(fmt::format("segment {}", id));
            }
        } catch (const error& e) {
            if (e.code() == exit_code::usage) throw;
            cli::report(e);
            status = static_cast<int>(e.code());
        }
        if (cli::format() != out::format::text) cli::emit(kind_key, records);
        return status;
    }
    // Which kinds may go: ipc-shm's own unless --kind says otherwise.
    std::optional<shm::kind> only;
    if (!o.kind.empty()) {
        only = shm::parse_kind(o.kind);
        if (!only) throw usage_error(fmt::format("unknown kind '{}'", o.kind));
    }
    auto kind_ok = [&](shm::kind k) {
        if (only) return k == *only;
        return k == shm::kind::segment || k == shm::kind::consistent || k == shm::kind::channel ||
               k == shm::kind::semaphore;
    };
    auto refuse_kind = [&](const shm::object_info& i) {
        return error(exit_code::data, fmt::format("'{}' is {}{}, not one of ipc-shm's objects; say --kind {} to remove it",
                                                  i.name, i.kind == shm::kind::other ? std::string("another tool's object")
                                                                                     : "a " + std::string(shm::kind_name(i.kind)),
                                                  i.tool.empty() ? "" : " of " + i.tool, shm::kind_name(i.kind)));
    };
    int status = 0;
    if (!bulk) {
        if (o.names.empty()) throw usage_error("missing NAME, or a selector (--match, --older-than, --owner, --stale)");
        auto names = checked_names(o.names);
        status = carry_on(names, [&](const std::string& n) {
            auto i = shm::stat(n);
            if (!kind_ok(i.kind)) throw refuse_kind(i);
            if (!o.dry_run) shm::remove(n);
            removed(n);
        });
    } else {
        if (!o.names.empty()) throw usage_error("give NAMEs or selectors, not both");
        std::optional<std::chrono::nanoseconds> age;
        if (!o.older_than.empty()) {
            age = parse::duration(o.older_than);
            if (!age) throw usage_error("--older-than needs a finite duration");
        }
        std::optional<uid_t> owner;
        if (!o.owner.empty()) {
            const passwd* pw = ::getpwnam(o.owner.c_str());
            if (pw) owner = pw->pw_uid;
            else owner = static_cast<uid_t>(parse::unsigned_number(o.owner, "user", UINT32_MAX));
        }
        auto now = std::chrono::system_clock::now().time_since_epoch();
        std::vector<std::string> chosen;
        for (const auto& i : shm::list()) {
            if (!kind_ok(i.kind)) continue;
            std::string body = i.name.substr(1);
            if (!o.match.empty() && ::fnmatch(o.match.c_str(), body.c_str(), 0) != 0 &&
                ::fnmatch(o.match.c_str(), i.name.c_str(), 0) != 0)
                continue;
            if (age && std::chrono::seconds(i.mtime_unix) > now - *age) continue;
            if (owner && i.uid != *owner) continue;
            // Stale: no process we can see holds it, and the process that made
            // it is gone. (Processes we cannot inspect belong to other users, who
            // could not have mapped an object only its owner may open.)
            if (o.stale && !(i.attached.empty() && i.creator_alive == false)) continue;
            chosen.push_back(i.name);
        }
        status = carry_on(chosen, [&](const std::string& n) {
            if (!o.dry_run) shm::remove(n);
            removed(n);
        });
        // A create killed before it linked its object into place leaves the
        // temporary file it was making: stale once its process is gone.
        if (o.stale && (!only || *only == shm::kind::other)) {
            for (const auto& t : shm::abandoned_temporaries()) {
                std::string body = t.name.substr(1);
                if (!o.match.empty() && ::fnmatch(o.match.c_str(), body.c_str(), 0) != 0 &&
                    ::fnmatch(o.match.c_str(), t.name.c_str(), 0) != 0)
                    continue;
                if (age && std::chrono::seconds(t.mtime_unix) > now - *age) continue;
                if (owner && t.uid != *owner) continue;
                try {
                    if (!o.dry_run) shm::remove_temporary(t.file);
                    removed(t.file);
                } catch (const error& e) {
                    cli::report(e);
                    status = static_cast<int>(e.code());
                }
            }
        }
    }
    if (cli::format() != out::format::text) cli::emit(kind_key, records);
    return status;
}

int do_resize(const options& o) {
    auto n = one_name(o);
    shm::resize(n, parse::size(o.size));
    cli::emit(kind_key, std::vector{to_record(shm::stat(n))});
    return 0;
}

namespace {

// The bytes of a segment (for a consistent one: a snapshot of its content).
std::string read_bytes(const options& o, std::uint64_t offset, std::optional<std::uint64_t> length) {
    auto range = [&](std::uint64_t size) {
        if (offset > size) throw data_error(fmt::format("offset {} is beyond the segment's {} bytes", offset, size));
        std::uint64_t len = length.value_or(size - offset);
        if (len > size - offset)
            throw data_error(fmt::format("{} bytes at offset {} go beyond the segment's {} bytes", len, offset, size));
        return len;
    };
    if (by_sysv(o)) {
        auto m = shm::sysv_map(shm::sysv_resolve(key_of(o), id_of(o)), false);
        auto len = range(m.bytes().size());
        return std::string(reinterpret_cast<const char*>(m.bytes().data()) + offset, len);
    }
    auto name = one_name(o);
    auto info = shm::stat(name);
    warn_if_foreign(info.name, info.uid);
    if (info.kind == shm::kind::channel)
        throw data_error(fmt::format("'{}' is a channel: take its messages with recv", name));
    if (info.kind == shm::kind::semaphore) throw data_error(fmt::format("'{}' is a semaphore", name));
    if (info.kind == shm::kind::mailbox) throw data_error(fmt::format("'{}' is a mailbox (ipc-mbox)", name));
    if (info.kind == shm::kind::consistent) {
        // Readers need no write access (except in ThreadSanitizer builds).
        auto m = shm::map(name, shm::consistent::reader_writes, shm::kind::consistent);
        auto len = range(shm::consistent::content_size(m.bytes()));
        return shm::consistent::read(m.bytes(), offset, len);
    }
    // pread(2), not loads through a mapping: see shm::read_at.
    auto len = range(info.size_bytes);
    return len ? shm::read_at(name, offset, len) : std::string();
}

std::string hex_dump(std::string_view data, std::uint64_t base) {
    std::string out;
    for (std::size_t i = 0; i < data.size(); i += 16) {
        out += fmt::format("{:08x}  ", base + i);
        for (std::size_t k = 0; k < 16; ++k) {
            if (i + k < data.size()) out += fmt::format("{:02x} ", static_cast<unsigned char>(data[i + k]));
            else out += "   ";
            if (k == 7) out += ' ';
        }
        out += " |";
        for (std::size_t k = 0; k < 16 && i + k < data.size(); ++k) {
            unsigned char c = static_cast<unsigned char>(data[i + k]);
            out += c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '.';
        }
        out += "|\n";
    }
    return out;
}

} // namespace

int do_read(const options& o) {
    if (o.hex && o.base64) throw usage_error("choose one of --hex and --base64");
    std::uint64_t offset = parse::size(o.offset);
    std::optional<std::uint64_t> length;
    if (!o.length.empty()) length = parse::size(o.length);
    auto data = read_bytes(o, offset, length);
    if (cli::quiet()) return 0;  // read, checked, not shown
    if (cli::format() != out::format::text) {
        if (o.hex || o.base64) throw usage_error("--hex and --base64 are text; -o json/jsonl/csv carry the bytes themselves");
        out::record r;
        r.add("name", by_sysv(o) ? (o.key.empty() ? "id " + o.id : "key " + o.key) : one_name(o))
            .add("offset", offset)
            .add("length_bytes", data.size());
        if (codec::valid_utf8(data)) r.add("data", data);
        else r.add("data_base64", codec::base64_encode(data));
        cli::emit(kind_key, std::vector{r});
        return 0;
    }
    auto& out = out::stdout_stream();
    if (o.hex) out.write(hex_dump(data, offset));
    else if (o.base64) out.write(codec::base64_encode(data) + "\n");
    else out.write(data);
    return 0;
}

int do_write(const options& o) {
    std::uint64_t offset = parse::size(o.offset);
    std::string data;
    if (o.data) {
        data = *o.data;
    } else {
        char buf[65536];
        for (;;) {
            ssize_t n = retry([&] { return ::read(STDIN_FILENO, buf, sizeof buf); });
            if (n < 0) throw last_system_error("read", "", "standard input");
            if (n == 0) break;
            data.append(buf, static_cast<std::size_t>(n));
        }
    }
    auto check = [&](std::uint64_t size) {
        if (offset > size || data.size() > size - offset)
            throw data_error(fmt::format("{} bytes at offset {} do not fit the segment's {} bytes; nothing written",
                                         data.size(), offset, size));
    };
    std::optional<std::uint64_t> generation;
    if (by_sysv(o)) {
        auto m = shm::sysv_map(shm::sysv_resolve(key_of(o), id_of(o)), true);
        check(m.bytes().size());
        std::memcpy(m.bytes().data() + offset, data.data(), data.size());
    } else {
        auto name = one_name(o);
        auto info = shm::stat(name);
        warn_if_foreign(info.name, info.uid);
        if (info.kind == shm::kind::channel)
            throw data_error(fmt::format("'{}' is a channel: put messages in with send", name));
        if (info.kind == shm::kind::semaphore) throw data_error(fmt::format("'{}' is a semaphore", name));
        if (info.kind == shm::kind::mailbox) throw data_error(fmt::format("'{}' is a mailbox (ipc-mbox)", name));
        if (info.kind == shm::kind::consistent) {
            auto m = shm::map(name, true, shm::kind::consistent);
            generation = shm::consistent::write(m.bytes(), offset, data, o.wait.deadline());
        } else {
            // pwrite(2), not a store through a mapping: a segment whose pages
            // /dev/shm cannot supply says ENOSPC, where a store gets SIGBUS.
            check(info.size_bytes);
            shm::write_at(name, offset, data);
        }
    }
    if (cli::format() != out::format::text) {
        out::record r;
        r.add("name", by_sysv(o) ? (o.key.empty() ? "id " + o.id : "key " + o.key) : one_name(o))
            .add("offset", offset)
            .add("bytes_written", data.size())
            .add("generation", generation ? out::json(*generation) : out::json(nullptr));
        cli::emit(kind_key, std::vector{r});
    }
    return 0;
}

int do_watch(const options& o) {
    if (cli::format() == out::format::csv || cli::format() == out::format::json)
        throw usage_error("watch writes text or jsonl");
    auto step = parse::duration(o.interval);
    if (!step || step->count() <= 0) throw usage_error(fmt::format("invalid interval '{}'", o.interval));
    auto until = o.wait.deadline();
    std::string label = by_sysv(o) ? (o.key.empty() ? "id " + o.id : "key " + o.key) : one_name(o);
    std::optional<std::string> last;
    std::uint64_t seq = 0;
    bool text = cli::format() == out::format::text;
    for (;;) {
        std::optional<std::string> now;
        try {
            now = read_bytes(o, 0, std::nullopt);
        } catch (const error& e) {
            if (e.code() != exit_code::no_object) throw;
        }
        // Changed ranges, with gaps of under 8 unchanged bytes merged.
        out::json ranges = out::json::array();
        bool changed = !last || last->size() != (now ? now->size() : 0) || !now;
        if (last && now) {
            std::size_t n = std::min(last->size(), now->size());
            std::size_t i = 0;
            while (i < n) {
                if ((*last)[i] == (*now)[i]) {
                    ++i;
                    continue;
                }
                std::size_t start = i, same = 0;
                for (; i < n && same < 8; ++i) same = (*last)[i] == (*now)[i] ? same + 1 : 0;
                ranges.push_back({{"offset", start}, {"length", i - start - same}});
            }
            if (now->size() != last->size())
                ranges.push_back({{"offset", n}, {"length", std::max(now->size(), last->size()) - n}});
            changed = changed || !ranges.empty();
        }
        if ((changed && !(last == now)) || seq == 0) {
            out::json rec = out::json::object();
            rec["seq"] = ++seq;
            rec["timestamp_ns"] = stream::now_ns();
            rec["name"] = label;
            rec["exists"] = now.has_value();
            rec["size_bytes"] = now ? now->size() : 0;
            rec["changes"] = ranges;
            if (!cli::quiet()) {
                if (text) {
                    std::string line = fmt::format("{} {}", label, now ? fmt::format("size={}", now->size()) : "gone");
                    for (const auto& r : ranges)
                        line += fmt::format(" {}+{}", r["offset"].get<std::size_t>(), r["length"].get<std::size_t>());
                    out::stdout_stream().write(line + "\n");
                } else {
                    out::stdout_stream().write(rec.dump() + "\n");
                }
                out::stdout_stream().flush();
            }
            last = now;
            if (o.changes && seq >= o.changes) return 0;
        }
        if (until.expired()) return 0;
        sleep_until(until, *step);
    }
}

int do_send(options o) {
    if (!o.messages.empty() && (!o.input.file.empty() || o.input.whole || o.input.jsonl || o.input.nul))
        throw usage_error("give messages as arguments or on stdin, not both");
    auto mode = sync::parse_wait_mode(o.wait_mode);
    auto name = one_name(o);
    auto m = shm::map(name, true, shm::kind::channel);
    check_owner(name);
    ring::channel ch(m.bytes());
    std::uint64_t sent = 0, bytes = 0;
    auto send_one = [&](std::string_view payload) {
        if (!ch.send(payload, o.wait.deadline(), mode))
            throw temp_failure(fmt::format("channel '{}' stayed full: {} message{} sent before the timeout", name, sent,
                                           sent == 1 ? "" : "s"),
                               EAGAIN);
        ++sent;
        bytes += payload.size();
    };
    if (!o.messages.empty()) {
        for (const auto& msg : o.messages)
            if (msg.size() > ch.max_msg())
                throw error(exit_code::data,
                            fmt::format("message of {} bytes is over the channel's largest message ({} bytes); nothing sent",
                                        msg.size(), ch.max_msg()),
                            EMSGSIZE);
        std::vector<std::string_view> all(o.messages.begin(), o.messages.end());
        sent = ch.send_many(all, o.wait.deadline(), mode);
        for (std::size_t i = 0; i < sent; ++i) bytes += all[i].size();
        if (sent < all.size())
            throw temp_failure(fmt::format("channel '{}' stayed full: {} message{} sent before the timeout", name, sent,
                                           sent == 1 ? "" : "s"),
                               EAGAIN);
    } else {
        unique_fd file;
        int in = STDIN_FILENO;
        if (!o.input.file.empty() && o.input.file != "-") {
            file.reset(::open(o.input.file.c_str(), O_RDONLY | O_CLOEXEC));
            if (!file) throw last_system_error("open", "file", o.input.file);
            in = file.get();
        }
        stream::input input(in, o.input.mode(), static_cast<std::size_t>(ch.max_msg()));
        while (auto msg = input.next()) send_one(msg->data);
    }
    if (cli::format() != out::format::text) {
        out::record r;
        r.add("name", name).add("messages_sent", sent).add("bytes_sent", bytes);
        cli::emit(kind_key, std::vector{r});
    }
    return 0;
}

int do_recv(const options& o) {
    auto mode = sync::parse_wait_mode(o.wait_mode);
    auto printer = cli::make_printer(o.print);
    auto name = one_name(o);
    auto m = shm::map(name, true, shm::kind::channel);
    check_owner(name);
    ring::channel ch(m.bytes());
    bool unlimited = o.follow && !o.count_set;
    std::uint64_t got = 0;
    // Messages are taken in bursts of what is there (one lock and one
    // wake-up check per burst), copied out, and printed after the lock is
    // released: a slow stdout never holds up other receivers.
    constexpr std::size_t burst = 64;
    std::vector<stream::message> msgs(burst);
    std::vector<std::uint64_t> seqs(burst);
    while (unlimited || got < o.count) {
        std::size_t want = unlimited ? burst : static_cast<std::size_t>(std::min<std::uint64_t>(burst, o.count - got));
        std::size_t k = 0;
        auto copy = [&](std::uint64_t seq, std::string_view data) {
            msgs[k].data.assign(data);
            seqs[k++] = seq;
        };
        // Flush only when the next message is not there yet.
        std::size_t n = ch.receive_many(want, copy, deadline::after(std::chrono::nanoseconds(0)), mode);
        if (!n) {
            printer.flush();
            n = ch.receive_many(want, copy, o.wait.deadline(), mode);
        }
        if (!n) {
            printer.flush();
            if (got == 0) throw temp_failure("no message within the timeout", ETIMEDOUT);
            if (unlimited) return static_cast<int>(exit_code::temp_fail);
            throw temp_failure(fmt::format("timed out after {} of {} messages", got, o.count), ETIMEDOUT);
        }
        auto now = stream::now_ns();
        for (std::size_t i = 0; i < n; ++i) printer.print(msgs[i], seqs[i], now);
        got += n;
    }
    return 0;
}

int do_post(const options& o) {
    auto r = semaphore_of(o);
    shm::sem_post(r);
    if (cli::format() != out::format::text) cli::emit(kind_key, std::vector{to_record(shm::sem_stat(r))});
    return 0;
}

int do_wait(const options& o) {
    if (o.exists) {
        auto name = one_name(o);
        auto until = o.wait.deadline();
        for (;;) {
            try {
                auto i = shm::stat(name);
                if (cli::format() != out::format::text) cli::emit(kind_key, std::vector{to_record(i)});
                return 0;
            } catch (const error& e) {
                if (e.code() != exit_code::no_object) throw;
            }
            if (until.expired()) throw temp_failure(fmt::format("'{}' did not appear within the timeout", name), ETIMEDOUT);
            sleep_until(until, std::chrono::milliseconds(50));
        }
    }
    auto r = semaphore_of(o);
    if (!shm::sem_wait(r, o.wait.deadline()))
        throw temp_failure(fmt::format("semaphore {} stayed at 0 until the timeout", r.str()), ETIMEDOUT);
    return 0;
}

namespace {

volatile sig_atomic_t g_child = 0;

extern "C" void forward_signal(int sig) {
    if (g_child > 0) ::kill(g_child, sig);
}

[[noreturn]] void exec_command(const std::vector<std::string>& command) {
    // The command gets the default dispositions and an empty mask.
    for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT}) ::signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    std::vector<char*> argv;
    for (const auto& a : command) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    int err = errno;
    std::fprintf(stderr, "%s: cannot run '%s': %s\n", cli::program().data(), argv[0], std::strerror(err));
    ::_exit(err == ENOENT ? 127 : 126);
}

} // namespace

int do_run(options o) {
    if (by_sysv(o) && o.name_given) {
        o.command.insert(o.command.begin(), o.name);  // with --key/--id every operand is the command
        o.name_given = false;
    }
    if (o.command.empty()) throw usage_error("missing COMMAND (after --)");
    auto r = semaphore_of(o);
    bool sysv = !r.name.has_value();
    // POSIX: one open semaphore for the wait and the post, so the unit goes
    // back to the semaphore it came from even if the name is reused meanwhile.
    std::optional<shm::named_semaphore> held;
    if (!sysv) held.emplace(*r.name);
    if (sysv ? !shm::sem_wait(r, o.wait.deadline(), true) : !held->wait(o.wait.deadline()))
        throw temp_failure(fmt::format("semaphore {} stayed at 0 until the timeout", r.str()), ETIMEDOUT);
    out::stdout_stream().flush();
    if (sysv) {
        // SEM_UNDO outlives exec: the kernel gives the unit back when the
        // command ends, however it ends, SIGKILL included.
        exec_command(o.command);
    }
    // POSIX semaphores have no undo: a parent waits and posts when the
    // command ends, forwarding the signals that would stop it.
    pid_t pid = ::fork();
    if (pid < 0) {
        int err = errno;
        held->post();
        throw system_error(err, "start", "command", o.command.front());
    }
    if (pid == 0) exec_command(o.command);
    g_child = pid;
    struct sigaction sa {};
    sa.sa_handler = forward_signal;
    sigemptyset(&sa.sa_mask);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) ::sigaction(sig, &sa, nullptr);
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    held->post();
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    return 128 + WTERMSIG(st);
}

} // namespace ipc_shm
