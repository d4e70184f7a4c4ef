// SPDX-License-Identifier: MIT
#pragma once

#include <string>

#include "ipc/rpc.hpp"

namespace ipc::rpc::gen {

/// The C++ header for an interface (its JSON as read), naming `source` in
/// its first line. 65 when the interface is malformed.
std::string cpp_header(const json& iface, const std::string& source);

} // namespace ipc::rpc::gen
