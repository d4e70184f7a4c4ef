// SPDX-License-Identifier: MIT
// What the ipc-rpc CLI tests share: running the binary, and a server in the
// background that is stopped and reaped when the test ends, also when it fails.
#pragma once

#include <catch2/catch.hpp>

#include <csignal>
#include <cstring>
#include <string>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <vector>

#include <nlohmann/json.hpp>

#include "process.hpp"

namespace rpc_test {

using nlohmann::json;
using namespace std::chrono_literals;
using testing::child;
using testing::outcome;

inline const std::string bin = IPC_RPC_BIN;

inline outcome rpc(std::vector<std::string> args, std::optional<std::string> in = std::nullopt,
            std::chrono::milliseconds limit = 30s) {
    args.insert(args.begin(), bin);
    return testing::run(std::move(args), std::move(in), limit);
}

inline json parse(const std::string& text) {
    auto v = json::parse(text, nullptr, false);
    INFO("not JSON: " << text);
    REQUIRE_FALSE(v.is_discarded());
    return v;
}

inline std::string nobody() { return "setpriv --reuid=65534 --regid=65534 --clear-groups "; }

// A server in the background; stopped with SIGTERM (its commands with it) and
// reaped when the test ends, also when it fails. It prints its endpoint when
// it accepts calls.
struct server {
    child proc;
    std::string endpoint;

    /// Runs `program args...` (ipc-rpc by default).
    explicit server(std::vector<std::string> args, const std::string& program = bin) : proc(with(program, std::move(args))) {
        bool up = testing::eventually([&] { return proc.read_stdout(0, 0ms).find('\n') != std::string::npos; }, 30s);
        auto out = proc.read_stdout(0, 0ms);
        if (!up) {
            auto o = proc.wait(5s);
            FAIL("the server did not start: status " << o.status << ": " << o.err);
        }
        endpoint = out.substr(0, out.find('\n'));
    }
    ~server() {
        proc.kill(SIGTERM);
        proc.wait(20s);
    }
    static std::vector<std::string> with(const std::string& program, std::vector<std::string> args) {
        args.insert(args.begin(), program);
        return args;
    }
};

// A raw client: one connection, lines in and out.
struct raw_client {
    int fd = -1;
    std::string buf;
    explicit raw_client(const std::string& path) {
        fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd >= 0);
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
        REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    }
    ~raw_client() { ::close(fd); }
    void write(const std::string& data) {
        std::size_t done = 0;
        while (done < data.size()) {
            ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
            REQUIRE(n > 0);
            done += static_cast<std::size_t>(n);
        }
    }
    // Exactly n bytes, or what came before EOF or 30 s.
    std::string read(std::size_t n) {
        std::string got = buf.substr(0, std::min(n, buf.size()));
        buf.erase(0, got.size());
        while (got.size() < n) {
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, 30000) != 1) break;
            char tmp[4096];
            ssize_t r = ::read(fd, tmp, std::min(sizeof tmp, n - got.size()));
            if (r <= 0) break;
            got.append(tmp, static_cast<std::size_t>(r));
        }
        return got;
    }
    // The next line, or "" at EOF; fails after 30 s.
    std::string line() {
        for (;;) {
            auto nl = buf.find('\n');
            if (nl != std::string::npos) {
                auto l = buf.substr(0, nl);
                buf.erase(0, nl + 1);
                return l;
            }
            pollfd p{fd, POLLIN, 0};
            REQUIRE(::poll(&p, 1, 30000) == 1);
            char tmp[4096];
            ssize_t n = ::read(fd, tmp, sizeof tmp);
            if (n <= 0) return "";
            buf.append(tmp, static_cast<std::size_t>(n));
        }
    }
};

} // namespace rpc_test
