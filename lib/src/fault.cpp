// SPDX-License-Identifier: MIT
#include "ipc/fault.hpp"

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <string>

#include <unistd.h>

namespace ipc::fault {

namespace {

struct config {
    std::string name;
    long nth = 1;
    std::atomic<long> seen{0};
    bool on = false;
};

void configure(config& c, std::string_view spec) {
    auto colon = spec.find(':');
    c.name = std::string(spec.substr(0, colon));
    c.nth = colon == std::string_view::npos ? 1 : std::strtol(std::string(spec.substr(colon + 1)).c_str(), nullptr, 10);
    c.seen.store(0);
    c.on = true;
}

config& cfg() {
    static config c;
    static bool read = [] {
        if (const char* v = std::getenv("IPC_FAULT"); v && *v) configure(c, v);
        return true;
    }();
    (void)read;
    return c;
}

} // namespace

bool armed = [] {
    const char* v = std::getenv("IPC_FAULT");
    return v && *v;
}();

void arm(std::string_view spec) {
    configure(cfg(), spec);
    armed = true;
}

void hit(std::string_view name) noexcept {
    auto& c = cfg();
    if (name != c.name) return;
    if (c.seen.fetch_add(1) + 1 == c.nth) ::kill(::getpid(), SIGKILL);
}

} // namespace ipc::fault
