// SPDX-License-Identifier: MIT
// What the ipc-rpc CLI tests share: running the binary, and a server in the
// background that is stopped and reaped when the test ends, also when it fails.
#pragma once

#include <catch2/catch.hpp>

#include <csignal>
#include <string>
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

} // namespace rpc_test
