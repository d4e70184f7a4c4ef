// SPDX-License-Identifier: MIT
#pragma once

#include <string_view>

/// Fault injection for crash tests. With IPC_FAULT=NAME[:N] in the
/// environment, the Nth time (default: the first) the code passes the point
/// NAME, the process kills itself with SIGKILL, as if killed from outside at
/// exactly that instruction. Without IPC_FAULT a point costs one branch.
namespace ipc::fault {

/// Set at start-up from IPC_FAULT, or by arm().
extern bool armed;
inline bool enabled() noexcept { return armed; }
/// Arms a point as IPC_FAULT would ("NAME" or "NAME:N"), for a forked child.
void arm(std::string_view spec);
void hit(std::string_view name) noexcept;

inline void point(std::string_view name) noexcept {
    if (enabled()) hit(name);
}

} // namespace ipc::fault
