// SPDX-License-Identifier: MIT
#include "ipc/error.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <iterator>

#include <fmt/format.h>

namespace ipc {

exit_code exit_for_errno(int err) noexcept {
    switch (err) {
    case 0:
        return exit_code::ok;
    case ENOENT:
    case ENXIO:  // no such device or address: a FIFO with no reader, a gone pid
    case ESRCH:
    case EIDRM:  // System V object removed
        return exit_code::no_object;
    case EEXIST:
        return exit_code::exists;
    case EACCES:
    case EPERM:
    case EROFS:
        return exit_code::no_perm;
    case EAGAIN:
    case ETIMEDOUT:
    case EBUSY:
    case ENOMSG:  // System V: no message of the wanted type
        return exit_code::temp_fail;
    case EINTR:
        return exit_code::interrupted;
    case EIO:
    case EPIPE:
    case ECONNRESET:
        return exit_code::io;
    case ENOSYS:
    case EOPNOTSUPP:
    case ECONNREFUSED:
    case ENODEV:
    case EAFNOSUPPORT:
    case EPROTONOSUPPORT:
    case ENETUNREACH:
    case EHOSTUNREACH:
        return exit_code::unavailable;
    case EMSGSIZE:
    case EBADMSG:
    case EILSEQ:
    case ENOTDIR:
    case EISDIR:
    case ENAMETOOLONG:
        return exit_code::data;
    case EPROTO:
        return exit_code::protocol;
    default:
        return exit_code::os;
    }
}

std::string_view errno_name(int err) noexcept {
    const char* name = ::strerrorname_np(err);
    return name != nullptr ? name : "E?";
}

error system_error(int err, std::string_view action) {
    return error(exit_for_errno(err),
                 fmt::format("cannot {}: {}", action, std::strerror(err)), err);
}

error system_error(int err, std::string_view verb, std::string_view kind,
                   std::string_view name) {
    std::string action(verb);
    if (!kind.empty()) fmt::format_to(std::back_inserter(action), " {}", kind);
    if (!name.empty()) fmt::format_to(std::back_inserter(action), " '{}'", name);
    return system_error(err, action);
}

error last_system_error(std::string_view verb, std::string_view kind,
                        std::string_view name) {
    return system_error(errno, verb, kind, name);
}

interrupted::interrupted(int signo)
    : error(signo == SIGINT ? exit_code::interrupted
                            : static_cast<exit_code>(128 + signo),
            fmt::format("interrupted by SIG{}", sigabbrev_np(signo) ? sigabbrev_np(signo) : "?"),
            EINTR),
      signo_(signo) {}

} // namespace ipc
