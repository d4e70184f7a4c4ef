// SPDX-License-Identifier: MIT
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace ipc {

/// The exit statuses every binary uses: part of the interface, documented in
/// ipc(7). Change a value only together with that page.
enum class exit_code : int {
    ok = 0,
    negative = 1,      ///< a negative answer (check found a fault, remote error)
    usage = 64,        ///< the command line is wrong
    data = 65,         ///< malformed input: message, frame, JSON; wrong object kind
    no_object = 66,    ///< the object does not exist
    unavailable = 69,  ///< mechanism unsupported or unmounted, connection refused
    internal = 70,     ///< a bug
    os = 71,           ///< any other operating-system error
    exists = 73,       ///< the object already exists
    io = 74,           ///< input/output error
    temp_fail = 75,    ///< timed out, would block, full or empty: try again
    protocol = 76,     ///< a peer broke the protocol
    no_perm = 77,      ///< permission denied
    unknown_outcome = 79, ///< a request went out and no answer will come: it may or may not have taken effect
    interrupted = 130, ///< SIGINT
};

/// The one table from errno to exit status.
exit_code exit_for_errno(int err) noexcept;

/// "ENOENT" for ENOENT; "E?" for an unknown value.
std::string_view errno_name(int err) noexcept;

/// A failure with the exit status it maps to. what() is the message without
/// the program prefix; the run wrapper adds "ipc-X: ".
class error : public std::runtime_error {
public:
    error(exit_code code, const std::string& message, int err = 0)
        : std::runtime_error(message), code_(code), errno_(err) {}

    exit_code code() const noexcept { return code_; }
    /// errno behind the failure, 0 when there is none.
    int errno_value() const noexcept { return errno_; }

private:
    exit_code code_;
    int errno_;
};

/// "cannot VERB KIND 'NAME': strerror(err)" with the status from the errno
/// table. kind may be empty ("cannot open '/x': ...").
error system_error(int err, std::string_view verb, std::string_view kind,
                   std::string_view name);

/// "cannot ACTION: strerror(err)", where action names the object itself, as
/// in "write to FIFO '/tmp/f'".
error system_error(int err, std::string_view action);

/// Same as system_error, with errno read now.
error last_system_error(std::string_view verb, std::string_view kind,
                        std::string_view name);

/// A usage error (status 64): the run wrapper adds the "Try --help" hint.
inline error usage_error(const std::string& message) {
    return error(exit_code::usage, message);
}

/// Bad input data (status 65).
inline error data_error(const std::string& message) {
    return error(exit_code::data, message);
}

/// Timed out, would block, full or empty (status 75).
inline error temp_failure(const std::string& message, int err = 0) {
    return error(exit_code::temp_fail, message, err);
}

/// Thrown when a SIGINT or SIGTERM arrived during a wait; status 130 (or 143).
class interrupted : public error {
public:
    explicit interrupted(int signo);
    int signal() const noexcept { return signo_; }

private:
    int signo_;
};

/// Thrown when stdout's reader went away (EPIPE): a normal end of a pipeline.
class stdout_closed : public std::exception {
public:
    const char* what() const noexcept override { return "stdout closed"; }
};

} // namespace ipc
