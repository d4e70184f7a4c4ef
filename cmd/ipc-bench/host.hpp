// SPDX-License-Identifier: MIT
// What ipc-bench says about the machine: identity, limits, and whether each
// mechanism can be used here.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ipc/output.hpp"

namespace bench {

struct host_info {
    std::string kernel;     ///< "Linux 6.1.0-13-amd64"
    std::string cpu_model;  ///< from /proc/cpuinfo
    long cpus = 0;          ///< online
};
host_info host();

/// The host as a JSON object: identity and the IPC limits.
ipc::out::json host_json();

/// One line of `check`: a fact or a mechanism tried for real.
struct check_result {
    std::string name;
    bool ok = false;
    ipc::out::json value;  ///< a number or text, or null
    std::string detail;    ///< what was found, or why it is unusable
};

/// Every check, in order: facts first (mounts, limits), then each mechanism
/// with a short send and receive.
std::vector<check_result> run_checks();

/// The check names a --require word stands for ("mq": both queue kinds).
std::optional<std::vector<std::string>> required_names(const std::string& word);

} // namespace bench
