// SPDX-License-Identifier: MIT
// Test support: a private redis-server on a free loopback port, with a fresh
// working directory, stopped (SIGTERM) and removed when the fixture goes.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <sys/types.h>

#include "process.hpp"

namespace testing {

class redis_server {
public:
    /// Starts redis-server and waits until it answers PING. When
    /// redis-server is not installed, available() is false and why() says so.
    redis_server();
    ~redis_server();
    redis_server(const redis_server&) = delete;
    redis_server& operator=(const redis_server&) = delete;

    bool available() const { return pid_ > 0; }
    const std::string& why() const { return why_; }
    int port() const { return port_; }
    pid_t pid() const { return pid_; }
    /// "redis://127.0.0.1:PORT"
    std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
    /// Runs redis-cli against this server (raw output, one reply per line).
    outcome cli(const std::vector<std::string>& args) const;

private:
    bool start(std::string& log);
    void stop();
    pid_t pid_ = -1;
    int port_ = 0;
    std::filesystem::path dir_;
    std::string why_;
};

/// A loopback TCP port nobody listens on now (bound, read, closed).
int free_port();

} // namespace testing

/// Catch2 v2 has no SKIP: a test without redis-server warns and passes.
#define REDIS_OR_SKIP(server)                                   \
    do {                                                        \
        if (!(server).available()) {                            \
            WARN("skipped: " << (server).why());                \
            return;                                             \
        }                                                       \
    } while (0)
