// SPDX-License-Identifier: MIT
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <netdb.h>
#include <sys/types.h>

#include <nlohmann/json.hpp>

#include "ipc/fd.hpp"
#include "ipc/parse.hpp"

/// JSON-RPC 2.0 over stream sockets (Unix path, Unix abstract, TCP), one JSON
/// text per line: the message model and its validation, line framing with a
/// size limit, a client, and a server that runs a command per call.
namespace ipc::rpc {

using json = nlohmann::json;

/// The error codes of the JSON-RPC 2.0 specification, and the server-defined
/// ones (-32000..-32099) ipc-rpc uses.
namespace code {
inline constexpr int parse_error = -32700;       ///< the request is not JSON
inline constexpr int invalid_request = -32600;   ///< JSON, but no valid request
inline constexpr int method_not_found = -32601;
inline constexpr int invalid_params = -32602;
inline constexpr int internal_error = -32603;
inline constexpr int command_failed = -32000;    ///< the command exited non-zero or was killed
inline constexpr int timed_out = -32001;         ///< the command ran past the call's time limit
inline constexpr int request_too_large = -32002; ///< a request line over --max-request
inline constexpr int not_allowed = -32003;       ///< the peer's uid/gid is not admitted
inline constexpr int output_too_large = -32004;  ///< the command wrote too much
inline constexpr int server_busy = -32005;       ///< too many calls waiting for a worker
} // namespace code

/// The standard message of a code ("Parse error", "Method not found"...).
std::string_view message_of(int code) noexcept;

/// Magnitude from which a double no longer holds every integer exactly.
inline constexpr double exact_limit = 9007199254740992.0;  // 2^53

/// Deepest nesting of arrays and objects accepted: deeper texts are treated
/// as malformed, so that no recursion over a value can exhaust the stack.
inline constexpr std::size_t max_depth = 256;

/// Parses one JSON text; nullopt when it is not JSON or nests deeper than
/// max_depth. Integers that fit int64 or uint64 are kept exactly; others
/// become doubles (see numbers_exact).
std::optional<json> parse_json(std::string_view text);

/// False when v holds a floating-point number of magnitude 2^53 or more: an
/// integer written beyond the 64-bit range, or a float with no exact integer
/// value. Such numbers are refused rather than silently rounded.
bool numbers_exact(const json& v);

/// The JSON text of v on one line (no newline added); invalid UTF-8 in
/// strings is replaced by U+FFFD rather than failing.
std::string dump(const json& v);

json error_object(int code, std::string message = {}, json data = nullptr);
json error_response(json id, int code, std::string message = {}, json data = nullptr);
json result_response(json id, json result);
/// A request (a notification when id is nullopt); params omitted when null.
json make_request(const std::string& method, const json& params, std::optional<json> id);

/// A request that passed validation.
struct request {
    std::string method;
    json params;                ///< null when absent, else an object or an array
    std::optional<json> id;     ///< nullopt: a notification
    bool notification() const { return !id.has_value(); }
};

/// Checks one element of a request (or of a batch): a valid request, or the
/// error response to send (id null when the id is unusable). Numbers that
/// would be rounded make the request invalid (-32600).
std::variant<request, json> validate_request(const json& v);

/// Checks a response object: jsonrpc "2.0", an id, exactly one of result and
/// error, and an error object with an integer code and a string message.
bool valid_response(const json& v);

/// Splits a stream into lines of at most max bytes (the newline not counted;
/// a trailing '\r' is dropped).
class line_reader {
public:
    explicit line_reader(std::size_t max) : max_(max) {}
    void feed(const char* data, std::size_t n) { buf_.append(data, n); }
    enum class status { line, need_more, too_long };
    /// The next whole line; too_long when max bytes came without a newline.
    status next(std::string& line);
    /// What is left after the last newline (a half-sent frame at EOF).
    std::string rest() { return std::exchange(buf_, {}); }
    std::size_t buffered() const { return buf_.size(); }

private:
    std::size_t max_;
    std::string buf_;
};

// ---- client -----------------------------------------------------------------

/// The addresses of a tcp: endpoint (getaddrinfo, any family, stream
/// sockets; passive: for listening). 69 when the host does not resolve.
struct addrinfo_free {
    void operator()(struct ::addrinfo* a) const noexcept;
};
using addrinfo_list = std::unique_ptr<struct ::addrinfo, addrinfo_free>;
addrinfo_list resolve(const parse::endpoint& ep, bool passive);

/// Connects to a stream endpoint before the deadline. Failures are ipc::error:
/// 69 (refused, no such socket, unknown host), 77 (permission), 75 (timed
/// out), 64 for udp.
unique_fd connect(const parse::endpoint& ep, const deadline& until);

/// Sends one JSON text and its newline. 74 on a write error, 75 on timeout.
void send(int fd, const json& message, const deadline& until);

/// Reads one line from a socket and parses it; what follows the line stays
/// unread. 75 on timeout, 76 when the peer closes first, sends more than max
/// bytes, no JSON, or numbers that would be rounded.
json receive(int fd, std::size_t max, const deadline& until);

/// Largest reply the client accepts.
inline constexpr std::size_t max_reply = 64u << 20;

// ---- server -----------------------------------------------------------------

/// A method the server offers: NAME=COMMAND.
struct method {
    std::string name;
    std::vector<std::string> argv;
};

/// Splits a COMMAND into words as a shell would for quoting only ('single',
/// "double", backslash), with no expansion: usage error on an open quote.
std::vector<std::string> split_command(std::string_view text);

struct server_options {
    std::vector<method> methods;
    unsigned workers = 4;
    std::optional<std::chrono::nanoseconds> call_timeout;  ///< nullopt: no limit
    std::size_t max_request = 1u << 20;
    unsigned max_connections = 64;
    mode_t mode = 0600;
    /// Peers admitted besides the server's own user, by SO_PEERCRED. With
    /// both empty a path socket admits whoever its mode lets connect, and an
    /// abstract socket (which has no mode) the server's own user only.
    std::vector<uid_t> allow_uids;
    std::vector<gid_t> allow_gids;
    std::string api_version = "0";
    std::size_t max_output = 16u << 20;
    std::size_t max_queued = 4096;  ///< calls waiting for a worker; more are refused
};

/// A listening socket; a Unix path socket is removed on destruction.
class listener {
public:
    /// Binds and listens. A stale Unix socket (nobody accepting) is replaced;
    /// a live one or another file is an error (73).
    listener(const parse::endpoint& ep, mode_t mode);
    listener(listener&& other) noexcept;
    listener& operator=(listener&& other) noexcept;
    ~listener();
    int fd() const { return fd_.get(); }
    /// The endpoint as bound (the actual port for tcp port 0).
    const parse::endpoint& where() const { return bound_; }

private:
    unique_fd fd_;
    parse::endpoint bound_;
    std::optional<std::pair<dev_t, ino_t>> owned_;  ///< the socket file we made
};

class server {
public:
    server(listener l, server_options o);
    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    /// Serves until stop() is called (returns) or SIGINT/SIGTERM arrives
    /// (throws ipc::interrupted once every call in flight has ended).
    void run();
    /// Makes run() return; callable from any thread.
    void stop();
    /// What rpc.describe answers.
    json describe() const;
    const parse::endpoint& where() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace ipc::rpc
