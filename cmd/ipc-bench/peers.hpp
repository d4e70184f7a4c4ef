// SPDX-License-Identifier: MIT
// The peers ipc-bench compares the toolkit with (--peers): nng and ZeroMQ,
// present when the build found their libraries.
#pragma once

#include <string>
#include <vector>

#include "probe.hpp"

namespace bench {

/// The peer mechanisms this build has.
std::vector<mechanism> peer_mechanisms();

/// The peers this build lacks, each with why.
std::vector<std::string> peers_missing();

} // namespace bench
