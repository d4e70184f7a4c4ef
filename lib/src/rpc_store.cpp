// SPDX-License-Identifier: MIT
// The reply store. On disk: DIR/<hex client id>/<hex request id>.req, made
// and synced before the call's command starts, and .rep beside it, written
// to a temporary name, synced and renamed before the reply is sent. A .req
// without a .rep found at start is a call that was running when the server
// stopped: its outcome is unknown and it is never run again.
#include "rpc_store.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "ipc/error.hpp"
#include "ipc/fd.hpp"
#include "ipc/rpc.hpp"

namespace ipc::rpc::detail {

namespace {

std::string hex(std::string_view s) {
    std::string out;
    out.reserve(s.size() * 2);
    for (unsigned char c : s) out += fmt::format("{:02x}", c);
    return out;
}

std::optional<std::string> unhex(std::string_view h) {
    if (h.size() % 2) return std::nullopt;
    std::string out;
    for (std::size_t i = 0; i < h.size(); i += 2) {
        auto v = [](char c) -> int {
            if (c >= '0' && c <= '9') return c - '0';
            if (c >= 'a' && c <= 'f') return c - 'a' + 10;
            return -1;
        };
        int a = v(h[i]), b = v(h[i + 1]);
        if (a < 0 || b < 0) return std::nullopt;
        out += static_cast<char>(a * 16 + b);
    }
    return out;
}

void sync_dir(const std::string& dir) {
    unique_fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (d) ::fsync(d.get());
}

void write_synced(const std::string& path, const std::string& data, bool exclusive) {
    unique_fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (exclusive ? O_EXCL : O_TRUNC), 0600));
    if (!fd) throw last_system_error("create", "reply record", path);
    std::size_t done = 0;
    while (done < data.size()) {
        ssize_t n = ::write(fd.get(), data.data() + done, data.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw last_system_error("write", "reply record", path);
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd.get()) != 0) throw last_system_error("sync", "reply record", path);
}

std::string read_all(const std::string& path) {
    unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) return {};
    std::string out;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
}

} // namespace

reply_store::reply_store(std::string dir, std::size_t limit) : dir_(std::move(dir)), limit_(std::max<std::size_t>(limit, 1)) {
    if (!dir_.empty()) load();
}

std::string reply_store::key(const std::string& client, const json& id) const { return client + '\0' + dump(id); }

std::string reply_store::path_of(const std::string& client, const json& id, const char* ext) const {
    return fmt::format("{}/{}/{}{}", dir_, hex(client), hex(dump(id)), ext);
}

void reply_store::load() {
    if (::mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST) throw last_system_error("create", "state directory", dir_);
    struct stat st{};
    if (::stat(dir_.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) throw error(exit_code::data, fmt::format("'{}' is not a directory", dir_));
    struct found_rec {
        std::string k;
        timespec when;
        bool done;
    };
    std::vector<found_rec> all;
    DIR* top = ::opendir(dir_.c_str());
    if (!top) throw last_system_error("open", "state directory", dir_);
    while (auto* e = ::readdir(top)) {
        auto client = unhex(e->d_name);
        if (!client || client->empty()) continue;
        std::string sub = dir_ + "/" + e->d_name;
        DIR* d = ::opendir(sub.c_str());
        if (!d) continue;
        while (auto* f = ::readdir(d)) {
            std::string_view n = f->d_name;
            bool req = n.ends_with(".req");
            if (!req) {
                if (n.ends_with(".rep.tmp")) ::unlink((sub + "/" + std::string(n)).c_str());  // a reply never renamed
                continue;
            }
            auto idtext = unhex(n.substr(0, n.size() - 4));
            if (!idtext) continue;
            auto id = parse_json(*idtext);
            if (!id) continue;
            struct stat fs{};
            if (::stat((sub + "/" + std::string(n)).c_str(), &fs) != 0) continue;
            struct stat rs{};
            bool done = ::stat(path_of(*client, *id, ".rep").c_str(), &rs) == 0;
            all.push_back({key(*client, *id), fs.st_mtim, done});
        }
        ::closedir(d);
    }
    ::closedir(top);
    std::sort(all.begin(), all.end(), [](const found_rec& a, const found_rec& b) {
        return a.when.tv_sec != b.when.tv_sec ? a.when.tv_sec < b.when.tv_sec : a.when.tv_nsec < b.when.tv_nsec;
    });
    for (auto& r : all) {
        auto o = next_++;
        records_[r.k] = record{r.done ? state::done : state::unknown, o, true, std::nullopt};
        by_age_[o] = r.k;
    }
}

void reply_store::evict() {
    // Oldest finished records go first; a running one is never dropped.
    auto it = by_age_.begin();
    while (records_.size() > limit_ && it != by_age_.end()) {
        auto rec = records_.find(it->second);
        if (rec == records_.end() || rec->second.st == state::running) {
            ++it;
            continue;
        }
        if (rec->second.on_disk) {
            auto nul = it->second.find('\0');
            std::string client = it->second.substr(0, nul);
            auto id = parse_json(std::string_view(it->second).substr(nul + 1));
            if (id) {
                ::unlink(path_of(client, *id, ".rep").c_str());
                ::unlink(path_of(client, *id, ".req").c_str());
                ::rmdir(fmt::format("{}/{}", dir_, hex(client)).c_str());  // only when empty
            }
        }
        records_.erase(rec);
        it = by_age_.erase(it);
    }
}

std::optional<nlohmann::json> reply_store::read_reply(const std::string& client, const json& id) {
    auto text = read_all(path_of(client, id, ".rep"));
    return parse_json(text);
}

reply_store::found reply_store::begin(const std::string& client, const json& id, const std::string& method, bool durable) {
    std::lock_guard lock(mu_);
    auto k = key(client, id);
    if (auto it = records_.find(k); it != records_.end()) {
        auto& r = it->second;
        found f{r.st, nullptr};
        if (r.st == state::done) {
            if (r.reply) f.reply = *r.reply;
            else if (auto rep = read_reply(client, id)) f.reply = *rep;
            else f.st = state::unknown;  // a reply file that cannot be read: never run again
        }
        return f;
    }
    if (records_.size() >= limit_) {
        evict();
        if (records_.size() >= limit_) throw full(fmt::format("the reply store holds {} calls still running", records_.size()));
    }
    bool disk = durable && !dir_.empty();
    if (disk) {
        std::string sub = fmt::format("{}/{}", dir_, hex(client));
        if (::mkdir(sub.c_str(), 0700) == 0) sync_dir(dir_);
        else if (errno != EEXIST) throw last_system_error("create", "state directory", sub);
        json what = {{"method", method}, {"id", id}, {"client", client}};
        write_synced(path_of(client, id, ".req"), dump(what) + "\n", true);
        sync_dir(sub);
    }
    auto o = next_++;
    records_[k] = record{state::running, o, disk, std::nullopt};
    by_age_[o] = k;
    return {};
}

void reply_store::finish(const std::string& client, const json& id, const json& reply) {
    std::unique_lock lock(mu_);
    auto it = records_.find(key(client, id));
    if (it == records_.end()) return;
    bool disk = it->second.on_disk;
    lock.unlock();
    if (disk) {
        // Outside the lock: one slow disk does not hold every other call.
        std::string final = path_of(client, id, ".rep"), tmp = final + ".tmp";
        write_synced(tmp, dump(reply) + "\n", false);
        if (::rename(tmp.c_str(), final.c_str()) != 0) throw last_system_error("rename", "reply record", tmp);
        sync_dir(fmt::format("{}/{}", dir_, hex(client)));
    }
    lock.lock();
    it = records_.find(key(client, id));
    if (it == records_.end()) return;
    it->second.st = state::done;
    // Replies of durable records are read back from disk when needed.
    if (!disk) it->second.reply = reply;
    evict();
}

void reply_store::abandon(const std::string& client, const json& id) {
    std::lock_guard lock(mu_);
    auto it = records_.find(key(client, id));
    if (it == records_.end() || it->second.st != state::running) return;
    if (it->second.on_disk) ::unlink(path_of(client, id, ".req").c_str());
    by_age_.erase(it->second.order);
    records_.erase(it);
}

nlohmann::json reply_store::of_client(const std::string& client) {
    std::lock_guard lock(mu_);
    json out = json::array();
    std::string prefix = client + '\0';
    for (auto it = records_.lower_bound(prefix); it != records_.end() && it->first.starts_with(prefix); ++it) {
        auto id = parse_json(std::string_view(it->first).substr(prefix.size()));
        if (!id) continue;
        json e = {{"id", *id}};
        switch (it->second.st) {
        case state::running: e["state"] = "running"; break;
        case state::unknown: e["state"] = "unknown"; break;
        case state::done: {
            e["state"] = "done";
            if (it->second.reply) e["reply"] = *it->second.reply;
            else if (auto r = read_reply(client, *id)) e["reply"] = *r;
            else e["state"] = "unknown";
            break;
        }
        case state::fresh: break;
        }
        out.push_back(std::move(e));
    }
    return out;
}

std::size_t reply_store::size() {
    std::lock_guard lock(mu_);
    return records_.size();
}

} // namespace ipc::rpc::detail
