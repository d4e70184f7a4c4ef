// SPDX-License-Identifier: MIT
// The server's reply store: one record per (client id, request id), in
// memory, and with a directory also on disk, so that a resent request is
// answered from its record instead of running again (exactly-once), also
// after the server restarts.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace ipc::rpc::detail {

class reply_store {
public:
    using json = nlohmann::json;
    /// dir empty: memory only. limit: records kept; the oldest finished ones
    /// are forgotten first.
    reply_store(std::string dir, std::size_t limit);

    bool durable() const { return !dir_.empty(); }

    enum class state { fresh, running, done, unknown };
    struct found {
        state st = state::fresh;
        json reply;  ///< done: the recorded response (its id as recorded)
    };
    /// Looks the call up; when it has no record yet, records it as running
    /// (on disk first when durable, before the command may start) and
    /// returns fresh. Throws ipc::error when the record cannot be written,
    /// and store_full when every record belongs to a running call.
    found begin(const std::string& client, const json& id, const std::string& method, bool durable);
    /// Records the reply (on disk before it is sent, when durable).
    void finish(const std::string& client, const json& id, const json& reply);
    /// Drops a running record whose call never started (refused).
    void abandon(const std::string& client, const json& id);
    /// Every record of one client: [{"id", "state", "reply"}].
    json of_client(const std::string& client);
    std::size_t size();

    class full : public std::runtime_error {
    public:
        using std::runtime_error::runtime_error;
    };

private:
    struct record {
        state st;
        std::uint64_t order;
        bool on_disk;
        std::optional<json> reply;  // memory copy (always in memory mode)
    };
    std::string key(const std::string& client, const json& id) const;
    std::string path_of(const std::string& client, const json& id, const char* ext) const;
    void load();
    void evict();
    std::optional<json> read_reply(const std::string& client, const json& id);

    std::string dir_;
    std::size_t limit_;
    std::mutex mu_;
    std::uint64_t next_ = 0;
    // key -> record; key is client '\0' dump(id)
    std::map<std::string, record> records_;
    std::map<std::uint64_t, std::string> by_age_;
};

} // namespace ipc::rpc::detail
