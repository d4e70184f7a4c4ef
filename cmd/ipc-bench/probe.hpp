// SPDX-License-Identifier: MIT
// The mechanisms ipc-bench measures, and how one measurement runs: two
// processes (fork), each on its own CPU unless told otherwise, messages of a
// fixed size between them.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ipc/fd.hpp"
#include "ipc/stats.hpp"

namespace bench {

/// What one recv() found.
enum class got { message, end, timeout };

/// One process's end of a mechanism: sends and receives whole messages.
class conn {
public:
    virtual ~conn() = default;
    /// Sends one message (all of it, blocking while the mechanism is full).
    virtual void send(std::string_view m) = 0;
    /// Receives one message into buf; `size` is what the peer sends. `end`
    /// when the peer said it has finished (end of stream, or an end marker).
    virtual got recv(std::string& buf, std::size_t size, const ipc::deadline& until) = 0;
    /// Tells the peer no more messages come (closes a stream, or sends the
    /// mechanism's end marker).
    virtual void finish() = 0;
    /// Says that no message that follows is answered (a throughput run): a
    /// mechanism of requests and replies sends them without waiting.
    virtual void one_way() {}
};

/// A mechanism set up before the fork; each process then takes its side.
class link {
public:
    virtual ~link() = default;
    virtual std::unique_ptr<conn> side(bool child) = 0;
};

/// The toolkit's own code path for a mechanism, or the bare system calls.
enum class impl { toolkit, raw };

struct mechanism {
    std::string name;
    std::string what;             ///< one line for --help and the man page
    bool has_toolkit = false;     ///< a toolkit path distinct from the raw one
    bool carries_data = true;     ///< false: a bare signal (eventfd, futex)
    bool streams = true;          ///< false: no throughput figure (futex)
    bool lossy = false;           ///< may lose or duplicate (UDP)
    std::uint64_t max_size = 0;   ///< largest message; 0: no limit of its own
    /// Why it cannot run here (nullopt: it can).
    std::function<std::optional<std::string>()> unusable;
    std::function<std::unique_ptr<link>(std::size_t size, impl)> make;
    /// Another project's library (nng, ZeroMQ): measured only with --peers
    /// or when named, and in a subprocess, since it starts threads.
    bool peer = false;
};

/// Every mechanism, in the order results are shown.
const std::vector<mechanism>& mechanisms();
const mechanism* find(std::string_view name);

/// Where the two processes run.
struct placement {
    enum class how { two_cpus, same_cpu, none } kind = how::two_cpus;
    int parent_cpu = 0, child_cpu = 1;
    /// "CPUs 0,1", "CPU 0 (both)", "unpinned": what was actually obtained.
    std::string describe() const;
};
placement parse_placement(const std::string& text);

struct settings {
    std::uint64_t iterations = 10000;           ///< round trips per latency run
    std::uint64_t warmup = 1000;                ///< round trips before measuring
    std::chrono::nanoseconds duration{std::chrono::milliseconds(500)};  ///< per throughput run (and latency cap)
    bool verify = false;
    placement where;
};

/// Counts of what --verify found (all 0 when nothing went wrong).
struct faults {
    std::uint64_t lost = 0, duplicated = 0, reordered = 0, corrupted = 0;
    faults& operator+=(const faults& o) {
        lost += o.lost, duplicated += o.duplicated, reordered += o.reordered, corrupted += o.corrupted;
        return *this;
    }
};

struct latency {
    std::vector<std::int64_t> samples_ns;  ///< one per round trip
    faults f;
    std::string placement;
};

struct throughput {
    std::uint64_t sent = 0, received = 0;
    std::int64_t elapsed_ns = 0;  ///< first send to last message received
    faults f;
    std::string placement;
};

/// One round-trip run: `iterations` messages of `size` bytes echoed back.
latency measure_latency(const mechanism& m, impl which, std::size_t size, const settings& s);
/// One one-way run: messages of `size` bytes for `duration`.
throughput measure_throughput(const mechanism& m, impl which, std::size_t size, const settings& s);

/// Bytes at the start of a message that --verify uses (sequence number and
/// checksum); smaller messages are not verified.
inline constexpr std::size_t verify_header = 16;

} // namespace bench
