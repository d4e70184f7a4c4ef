// SPDX-License-Identifier: MIT
#pragma once

#include <chrono>
#include <functional>
#include <map>
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
/// A durable record says the call started before the server stopped and its
/// reply was never recorded: it may or may not have taken effect, and it is
/// not run again.
inline constexpr int outcome_unknown = -32006;
/// exactly-once was asked of a server that keeps no durable record (--state).
inline constexpr int no_durable_store = -32007;
/// The server's reply store is full of calls still running.
inline constexpr int store_full = -32008;
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

/// The toolkit's extension member of a request, "ipc": {"client": ID,
/// "durable": true, "lease_ms": N}. A server that knows it deduplicates by
/// (client, id), keeps the reply durably when asked, and cancels the call when
/// the client neither renews nor stays connected for lease_ms. Other
/// JSON-RPC servers never see it: the toolkit sends it only when asked for a
/// delivery guarantee.
struct extension {
    std::string client;                         ///< empty: none
    bool durable = false;                       ///< exactly-once: a durable record
    std::optional<std::chrono::milliseconds> lease;
};
/// The extension of a validated request (a default one when it has none).
extension extension_of(const json& request_object);
/// Longest client id, and longest request id (as JSON text) that may be recorded.
inline constexpr std::size_t max_client_id = 64;
inline constexpr std::size_t max_record_id = 64;

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
    std::string rest() {
        scanned_ = 0;
        return std::exchange(buf_, {});
    }
    std::size_t buffered() const { return buf_.size(); }

private:
    std::size_t max_;
    std::string buf_;
    std::size_t scanned_ = 0;  ///< bytes of buf_ known to hold no newline
};

// ---- encodings --------------------------------------------------------------

/// How a stream connection carries messages. The first byte the client sends
/// chooses: 0x01 CBOR, 0x02 MessagePack, anything else JSON text lines. A
/// binary message is a frame: a 4-byte length in network byte order, then
/// that many bytes of CBOR or MessagePack. The server answers in the same
/// encoding (without the selector byte). Over UDP a datagram is one message:
/// JSON text, or the selector byte and the binary payload (no length).
enum class encoding { json, cbor, msgpack };
inline constexpr unsigned char cbor_marker = 0x01;
inline constexpr unsigned char msgpack_marker = 0x02;
std::string_view name_of(encoding e) noexcept;
/// "json", "cbor", "msgpack" (64 otherwise).
encoding encoding_named(std::string_view name);
/// One message as it goes on a stream: a JSON line with its newline, or a
/// length-prefixed frame.
std::string frame(const json& v, encoding e);
/// A payload as a value (JSON text for encoding::json); nullopt when
/// malformed or nesting deeper than max_depth. Numbers that would be rounded
/// are for the caller to check (numbers_exact).
std::optional<json> decode_binary(std::string_view payload, encoding e);
/// The payload of one datagram: JSON text, or the marker and binary payload.
std::string datagram(const json& v, encoding e);
/// Reads a datagram; also tells its encoding. nullopt when malformed.
std::optional<json> from_datagram(std::string_view d, encoding& e);

/// Splits a stream into messages: decides the encoding from the first byte,
/// then yields JSON lines or binary frame payloads of at most max bytes.
class frame_reader {
public:
    explicit frame_reader(std::size_t max) : max_(max), lines_(max) {}
    void feed(const char* data, std::size_t n);
    std::optional<encoding> enc() const { return enc_; }
    /// Fixes the encoding instead of reading a selector byte (a client
    /// reading replies).
    void expect(encoding e) { enc_ = e; }
    enum class status { message, need_more, too_long };
    /// The next message's bytes (a JSON line, or a frame's payload).
    status next(std::string& payload);
    /// Bytes of an unfinished message (a half-sent frame or a last line
    /// without its newline).
    std::string rest();

private:
    std::size_t max_;
    std::optional<encoding> enc_;
    line_reader lines_;
    std::string bin_;
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
/// Sends bytes whole (a line or a frame), with the same errors.
void send_bytes(int fd, std::string_view bytes, const deadline& until);

/// Reads one line from a socket and parses it; what follows the line stays
/// unread. 75 on timeout, 76 when the peer closes first, sends more than max
/// bytes, no JSON, or numbers that would be rounded.
json receive(int fd, std::size_t max, const deadline& until);

/// Largest reply the client accepts.
inline constexpr std::size_t max_reply = 64u << 20;

/// How often a call may run when something fails between sending a request
/// and reading its reply (see ipc-rpc(1), FAILURE SEMANTICS).
enum class semantics {
    at_most_once,   ///< never resent: a lost reply is "outcome unknown" (79)
    at_least_once,  ///< resent until a reply: only for idempotent methods
    exactly_once,   ///< resent; the server's durable record answers a resend
};
std::string_view name_of(semantics s) noexcept;
semantics semantics_named(std::string_view name);  // 64 otherwise

/// An error answer from the server: the JSON-RPC error object.
class remote_error : public std::runtime_error {
public:
    explicit remote_error(json error_object);
    int code() const noexcept { return code_; }
    const json& object() const noexcept { return obj_; }

private:
    int code_;
    json obj_;
};

struct client_options {
    std::optional<std::chrono::nanoseconds> timeout = std::chrono::seconds(30);  ///< per attempt; nullopt: none
    encoding enc = encoding::json;
    semantics sem = semantics::at_most_once;
    /// Attempts after the first. Connecting is retried under every semantics
    /// (nothing was sent); resending a request only under at-least-once and
    /// exactly-once.
    unsigned retries = 0;
    std::string client_id;  ///< exactly-once and UDP: generated when empty
    /// Asks the server to cancel the call when this client is silent for
    /// this long; the client renews at a third of it while it waits.
    std::optional<std::chrono::milliseconds> lease;
    std::size_t max_reply = rpc::max_reply;
    /// call() passes a string param of at least this many bytes by reference
    /// (a shared-memory segment) to a server on a Unix socket; 0: never. A
    /// C++ handler receives the same string; a command receives a path to
    /// read (see ipc-rpc(1), PARAMETER PASSING), so turn it on for servers
    /// whose methods expect that.
    std::size_t by_reference_from = 0;
    /// Procedures on this side that the server may call back over the same
    /// connection while a call is in flight (parameters by name: a param
    /// {"$callback": NAME} tells the server it may). A callback returns its
    /// result or throws remote_error.
    std::map<std::string, std::function<json(const json& params)>> callbacks;
};

class call;
/// In a server: a param naming a procedure of the caller, callable while the
/// call runs (what generated skeletons hand a method for a "callback" param).
class callback_ref {
public:
    callback_ref(const call* c, std::string name) : call_(c), name_(std::move(name)) {}
    json operator()(const json& params = nullptr) const;
    const std::string& name() const { return name_; }

private:
    const call* call_;
    std::string name_;
};

/// {"$callback": NAME}: a param naming a procedure of the caller.
json callback_param(const std::string& name);
/// The callback a param names, when it is one.
std::optional<std::string> callback_of(const json& v);

/// A client of one endpoint (unix:, tcp: or udp:), keeping its connection
/// between calls and opening a new one after a failure.
class client {
public:
    explicit client(parse::endpoint ep, client_options o = {});
    ~client();
    client(client&&) noexcept;
    client& operator=(client&&) noexcept;

    /// Calls method and returns its result. An error answer is remote_error;
    /// transport failures are ipc::error: 69 unreachable, 75 timed out,
    /// 76 malformed reply, 79 outcome unknown.
    json call(const std::string& method, const json& params = nullptr);
    /// Sends a notification (no reply; at most once).
    void notify(const std::string& method, const json& params = nullptr);
    /// Sends one request object or batch array under the client's semantics
    /// and returns the reply (nullopt when none is expected). The request's
    /// id is kept; an "ipc" member is added when the semantics need one.
    std::optional<json> exchange(json request, bool expect_reply);
    /// rpc.describe's result.
    json describe();
    /// Checks that the server offers interface `name` at a version
    /// compatible with `version` (version_satisfies); 76 otherwise.
    void check_interface(const std::string& name, const std::string& version);
    const std::string& client_id() const;
    /// The next request id this client would use.
    std::int64_t next_id();
    /// Adds (or replaces) a procedure the server may call back.
    void on_callback(const std::string& name, std::function<json(const json&)> fn);

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

/// Whether a server's interface version `have` satisfies `want`: the same
/// major number and not older, component by component ("1.2" accepts 1.2,
/// 1.2.7 and 1.3, not 2.0 nor 1.1); "=1.2.0" asks for exactly that version.
bool version_satisfies(std::string_view have, std::string_view want);

// ---- server -----------------------------------------------------------------

class call;
/// A method implemented in C++: returns the result, or throws remote_error
/// (an error answer) or any std::exception (-32603 with its message).
using handler = std::function<json(call&)>;

/// A method the server offers: a command run per call (argv), or a handler.
/// The rest comes from an interface file and shows in rpc.describe.
struct method {
    std::string name;
    std::vector<std::string> argv;
    handler fn;
    json params = nullptr;          ///< [{"name":..,"type":..}], null: anything
    json result = nullptr;          ///< a type name, null: anything
    std::string doc;
    bool idempotent = false;
    bool run_to_completion = false; ///< not cancelled when the caller is gone
    /// A handler that never blocks and returns at once may run on the
    /// thread that reads its connection (each connection has one), as soon
    /// as its request is read, instead of a worker's: no thread is woken for
    /// it, which saves a good part of a small call's round trip. Quick calls
    /// of different connections run at once, like workers' calls. While it
    /// runs the server reads nothing else from that connection, and nothing
    /// can cancel it: a handler that waits (on cancel_fd(), a lock, I/O,
    /// call_back()) must not be quick. A call whose params name callbacks
    /// goes to a worker all the same. Ignored for commands.
    bool quick = false;
};

/// One call being served, handed to a handler.
class call {
public:
    const request& req() const { return *req_; }
    /// The caller's client id (its "ipc" extension), empty when none.
    const std::string& client_id() const { return client_; }
    /// True once the caller is gone (disconnected, or its lease ran out) and
    /// the method does not run to completion; cancel_fd() becomes readable
    /// at the same moment. (A stopping server kills the commands it runs; a
    /// C++ handler is not told, and the server waits for it to return.)
    bool cancelled() const;
    int cancel_fd() const;
    /// The peer's credentials on a Unix socket (pid 0 when unknown).
    pid_t peer_pid() const { return pid_; }
    uid_t peer_uid() const { return uid_; }
    /// Where the caller is: "unix", "tcp" or "udp".
    std::string_view transport() const { return transport_; }
    /// An opaque number that identifies the caller's connection (stream
    /// sockets) for as long as it is open; 0 over UDP.
    std::uint64_t connection() const { return conn_; }
    /// Calls procedure `name` of the caller, over the caller's connection,
    /// and returns its result (remote_error for an error answer). Only the
    /// names the call's params declared ({"$callback": NAME}) may be called;
    /// 64 otherwise, 69 over UDP, 75 after `timeout`, 79 when the caller is
    /// gone.
    json call_back(const std::string& name, const json& params,
                   std::chrono::nanoseconds timeout = std::chrono::seconds(60)) const;

private:
    friend struct server_access;
    const request* req_ = nullptr;
    std::string client_;
    std::shared_ptr<void> state_;
    pid_t pid_ = 0;
    uid_t uid_ = static_cast<uid_t>(-1);
    std::string_view transport_;
    std::uint64_t conn_ = 0;
    std::shared_ptr<void> link_;
    std::vector<std::string> callbacks_;
};

/// Parses an interface file's JSON (see ipc-rpc(1), INTERFACE FILES): its
/// name, version and methods (commands from "command", the rest metadata).
/// 65 when malformed.
struct interface {
    std::string name;
    std::string version = "0";
    std::vector<method> methods;
};
interface parse_interface(const json& v);
interface load_interface(const std::string& path);
/// Whether v is a value of type t ("int", "uint", "float", "bool",
/// "string", "json", "[T]", "{T}" for an object of T, "T?" for T or null).
bool type_matches(const json& v, std::string_view t);
/// Whether t is a well-formed type name.
bool valid_type(std::string_view t);

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
    std::string interface_name;    ///< rpc.describe's "interface"
    std::size_t max_output = 16u << 20;
    std::size_t max_queued = 4096;  ///< calls waiting for a worker; more are refused
    /// Where replies are recorded durably (exactly-once); empty: none, and
    /// the reply cache lives in memory only.
    std::string state_dir;
    std::size_t reply_cache = 4096;  ///< records kept (memory and disk)
    /// A connection silent this long with no call in flight is closed.
    std::optional<std::chrono::nanoseconds> idle_timeout = std::chrono::minutes(5);
    /// Called when a stream connection closes (with call::connection()'s number).
    std::function<void(std::uint64_t)> on_disconnect;
};

/// A listening socket; a Unix path socket is removed on destruction.
class listener {
public:
    /// Binds and listens (udp: binds a datagram socket). A stale Unix socket
    /// (nobody accepting) is replaced; a live one or another file is an error (73).
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

// ---- parameters by reference ---------------------------------------------------

/// A large value passed by reference between processes of one machine: a
/// POSIX shared-memory segment the caller made, named in the params as
/// {"$shm": "/ipc-rpc.ref.…", "size": N, "inout": bool} instead of the value.
/// The server opens it only for a peer on a Unix socket whose uid owns it.
struct shared_ref {
    std::string name;
    std::uint64_t size = 0;
    bool inout = false;
};
/// The reference v names, when v is one (exactly those members, a name
/// under /ipc-rpc.ref.).
std::optional<shared_ref> ref_of(const json& v);
json ref_json(const shared_ref& r);

/// The caller's side: a segment holding a file's bytes (or given bytes),
/// removed when the object goes.
class outgoing_ref {
public:
    static outgoing_ref from_file(const std::string& path, bool inout);
    static outgoing_ref from_bytes(std::string_view bytes, bool inout);
    outgoing_ref(outgoing_ref&&) noexcept;
    outgoing_ref& operator=(outgoing_ref&&) = delete;
    ~outgoing_ref();
    json value() const { return ref_json(ref_); }
    /// The segment's bytes now (after an inout call: the server's changes).
    std::string contents() const;
    /// Writes contents() to path whole or not at all (temporary + rename).
    void write_back(const std::string& path) const;

private:
    outgoing_ref() = default;
    shared_ref ref_;
    unique_fd fd_;
};

/// The server's side: opens a reference for a peer of uid `peer_uid`
/// (read-write when inout); 77 when the peer does not own it, 65 when it is
/// not what the reference says, 66 when it does not exist.
unique_fd open_ref(const shared_ref& r, uid_t peer_uid);
/// Reads a whole reference (for C++ handlers, which get its bytes).
std::string read_ref(int fd);

// ---- generated stubs ----------------------------------------------------------

/// What the stubs `ipc-rpc gen` writes rely on: typed conversions between
/// C++ values and JSON (std::optional for "T?" types).
namespace stub {
[[noreturn]] void throw_malformed_result(const char* method, const char* type);
template <class T> struct is_optional : std::false_type {};
template <class T> struct is_optional<std::optional<T>> : std::true_type {};

template <class T> T value_of(const json& v) {
    if constexpr (is_optional<T>::value) {
        if (v.is_null()) return std::nullopt;
        return value_of<typename T::value_type>(v);
    } else return v.get<T>();
}
template <class T> json json_of(const T& v) {
    if constexpr (is_optional<T>::value) return v ? json_of(*v) : json();
    else return json(v);
}
/// Param `name` (or element `index` of positional params), typed; params
/// were checked against the interface before the handler runs.
template <class T> T param(const json& params, std::size_t index, const char* name) {
    if (params.is_array()) return index < params.size() ? value_of<T>(params[index]) : value_of<T>(json());
    if (params.is_object()) {
        auto it = params.find(name);
        return it == params.end() ? value_of<T>(json()) : value_of<T>(*it);
    }
    return value_of<T>(json());
}
/// A result of the given interface type, or 76 when the server sent another.
template <class T> T result(const json& v, const char* type, const char* method) {
    if (!type_matches(v, type))
        throw_malformed_result(method, type);
    return value_of<T>(v);
}
} // namespace stub

// ---- binding ----------------------------------------------------------------

/// The registry (the portmapper's role): a JSON-RPC server whose methods
/// registry.register / registry.lookup / registry.list bind service names
/// to endpoints. An entry lives as long as the connection that registered
/// it: a server that dies drops its entries with its socket (a registrant
/// over TCP whose host vanished goes after the registry's idle limit, 35 s).
namespace registry {
/// The well-known endpoint: $IPC_RPC_REGISTRY when set, else the abstract
/// Unix socket unix:@ipc-rpc.registry.UID (one per user, no file to go stale).
parse::endpoint default_endpoint();
/// Serves the registry on l until SIGINT/SIGTERM.
void serve(listener l, server_options base);

/// Registers `name` at `version` for `endpoint` while the object lives; a
/// thread keeps the registration (renewing it every 10 s, registering again
/// when the registry restarts). Throws when the first registration fails.
class registration {
public:
    registration(parse::endpoint registry, std::string name, std::string version, std::string endpoint);
    ~registration();
    registration(const registration&) = delete;
    registration& operator=(const registration&) = delete;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

/// "NAME" or "NAME@VERSION" split (version empty when absent); 64 when NAME
/// is not an identifier.
std::pair<std::string, std::string> split_service(std::string_view text);
/// Among entries [{"name","version","endpoint"}...], the one for name whose
/// version satisfies want (version_satisfies; empty: any), highest first.
std::optional<json> best_match(const json& entries, const std::string& name, const std::string& want);
/// The configured services file: $IPC_RPC_SERVICES, else
/// $XDG_CONFIG_HOME/ipc-rpc/services (~/.config/...). Lines: NAME[@VERSION] ENDPOINT.
std::string default_services_file();
/// Entries of a services file (empty when it does not exist; 65 when malformed).
json read_services(const std::string& path);
/// A target given to call/describe/wait: an endpoint (unix:, tcp:, udp:) as
/// it is, or a service name looked up in the services file, then in the
/// registry. 66 when no one offers it, 69 when the registry cannot be reached.
parse::endpoint resolve(std::string_view target, const std::string& services_file, const parse::endpoint& registry,
                        std::optional<std::chrono::nanoseconds> timeout);
} // namespace registry

} // namespace ipc::rpc
