// SPDX-License-Identifier: MIT
// ipc-rpc round trips against a raw Unix-socket ping-pong of the same bytes.
//
//   raw:        a server process and this one exchange the exact JSON-RPC
//               request line and reply line of one echo call, with blocking
//               read(2)/write(2) on a SOCK_STREAM Unix socket
//   rpc:        an echo method (a C++ handler returning its params) served by
//               ipc::rpc::server in a server process, called through
//               ipc::rpc::client: 1 client, and 16 concurrent clients (threads
//               of this process, one connection each); JSON and CBOR
//   command:    the same echo served by a command per call (cat), 1 client
//   *-quick:    the echo handler marked quick (method::quick): it runs on the
//               thread reading its connection, with no worker woken
//
// Usage: bench_rpc [--iterations N] [--rounds R] [--size BYTES] [--clients C]
//                  [--quick] [--only raw,json-1,json-16,cbor-1,cbor-16,command,
//                                json-1-quick,cbor-1-quick,json-16-quick]
// Each round runs the raw baseline just before each measured mechanism, so
// that a change in the machine's load hits both alike; figures are medians
// over the rounds, and a ratio is the median of the per-round ratios to the
// baseline run beside it. Prints a table, one JSON object per row, then the
// ratios (the last line is a JSON object of them).
#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include "ipc/error.hpp"
#include "ipc/fd.hpp"
#include "ipc/parse.hpp"
#include "ipc/rpc.hpp"
#include "ipc/stats.hpp"

using namespace ipc;
using clk = std::chrono::steady_clock;
using json = rpc::json;

namespace {

struct config {
    std::uint64_t iterations = 20000;
    std::uint64_t rounds = 3;
    std::size_t size = 64;
    unsigned clients = 16;
    std::uint64_t command_iterations = 0;  // 0: iterations / 50, at least 50
    std::vector<std::string> only;
};

[[noreturn]] void die(const std::string& msg, int code = 64) {
    std::fprintf(stderr, "bench_rpc: %s\n", msg.c_str());
    std::exit(code);
}

// A failure once the servers run: thrown, so that they are stopped and their
// sockets removed on the way out.
struct failure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

std::int64_t ns_since(clk::time_point t0) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(clk::now() - t0).count();
}

// One run: calls made, its wall time, one latency sample per call.
struct run {
    std::uint64_t calls = 0;
    std::int64_t elapsed_ns = 0;
    std::vector<std::int64_t> samples;
    std::int64_t client_cpu_ns = 0, server_cpu_ns = 0;  // CPU time spent over the run, every thread
    double rate() const { return stats::rate(calls, elapsed_ns); }
};

// CPU time of every thread of a process so far (the first field of each
// thread's schedstat, in ns): a cost per call that the machine's other load
// changes much less than wall time.
std::int64_t process_cpu_ns(pid_t pid) {
    std::int64_t sum = 0;
    std::string dir = fmt::format("/proc/{}/task", pid);
    std::error_code ec;
    for (const auto& t : std::filesystem::directory_iterator(dir, ec)) {
        std::ifstream in(t.path() / "schedstat");
        std::int64_t v = 0;
        if (in >> v) sum += v;
    }
    return sum;
}

// This process's CPU time, threads that ended included.
std::int64_t self_cpu_ns() {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    auto ns = [](const timeval& t) { return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_usec * 1000; };
    return ns(ru.ru_utime) + ns(ru.ru_stime);
}

struct cpu_mark {
    std::int64_t client, server;
    explicit cpu_mark(pid_t server_pid) : client(self_cpu_ns()), server(process_cpu_ns(server_pid)) {}
    void since(const cpu_mark& before, run& r) const {
        r.client_cpu_ns = client - before.client;
        r.server_cpu_ns = server - before.server;
    }
};

std::string payload(std::size_t size) {
    std::string s(size, 'x');
    for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>('a' + (i * 7) % 26);
    return s;
}

// The bytes of one echo call as ipc::rpc::client sends them (an id of the
// same length as the client's clock-based ids) and the server's reply.
struct wire {
    std::string request, reply;
};
wire echo_wire(const json& params) {
    std::int64_t id = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count() << 12;
    return {rpc::frame(rpc::make_request("echo", params, json(id)), rpc::encoding::json),
            rpc::frame(rpc::result_response(json(id), params), rpc::encoding::json)};
}

// ---- processes ---------------------------------------------------------------

class tempdir {
public:
    tempdir() {
        char tmpl[] = "/tmp/ipc-bench-rpc-XXXXXX";
        if (!::mkdtemp(tmpl)) die("mkdtemp failed", 73);
        path_ = tmpl;
    }
    ~tempdir() { ::rmdir(path_.c_str()); }
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

// A server process; stopped with SIGTERM and reaped on destruction.
class child {
public:
    template <class F>
    explicit child(F body) {
        std::fflush(nullptr);
        pid_ = ::fork();
        if (pid_ < 0) die("fork failed", 71);
        if (pid_ == 0) {
            int st = 0;
            try {
                body();
            } catch (const ipc::interrupted&) {
            } catch (const std::exception& e) {
                std::fprintf(stderr, "bench_rpc: server: %s\n", e.what());
                st = 70;
            }
            ::_exit(st);
        }
    }
    ~child() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGTERM);
        int st;
        while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
        }
    }
    pid_t pid() const { return pid_; }

private:
    pid_t pid_ = -1;
};

unique_fd unix_listen(const std::string& path) {
    unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
    if (!fd || ::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0 || ::listen(fd.get(), 16) < 0)
        throw failure("cannot listen on " + path);
    return fd;
}

unique_fd unix_connect(const std::string& path) {
    unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
    if (!fd || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) throw failure("cannot connect to " + path);
    return fd;
}

bool read_exact(int fd, char* buf, std::size_t n) {
    std::size_t got = 0;
    while (got < n) {
        ssize_t r = ::read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        got += static_cast<std::size_t>(r);
    }
    return true;
}

bool write_exact(int fd, const std::string& s) {
    std::size_t done = 0;
    while (done < s.size()) {
        ssize_t w = ::write(fd, s.data() + done, s.size() - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        done += static_cast<std::size_t>(w);
    }
    return true;
}

// The raw server: one connection at a time; reads a request line's worth of
// bytes, writes the reply line, until the client closes.
void raw_server(unique_fd l, wire w) {
    std::string buf(w.request.size(), '\0');
    for (;;) {
        unique_fd c(::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!c) {
            if (errno == EINTR) return;
            continue;
        }
        while (read_exact(c.get(), buf.data(), buf.size()))
            if (!write_exact(c.get(), w.reply)) break;
    }
}

void rpc_server(rpc::listener l) {
    install_signal_handlers();
    rpc::server_options o;
    rpc::method echo;
    echo.name = "echo";
    echo.fn = [](rpc::call& c) { return c.req().params; };
    o.methods.push_back(echo);
    echo.name = "echo-quick";
    echo.quick = true;  // run on the connection's reader thread, no worker woken
    o.methods.push_back(echo);
    rpc::method cat;
    cat.name = "cat";
    cat.argv = {"cat"};
    o.methods.push_back(cat);
    o.max_connections = 256;
    rpc::server s(std::move(l), std::move(o));
    s.run();
}

// ---- measurements --------------------------------------------------------------

std::uint64_t warmup_of(std::uint64_t n) { return std::max<std::uint64_t>(20, n / 10); }

run measure_raw(const std::string& path, pid_t server, const wire& w, std::uint64_t n) {
    auto fd = unix_connect(path);
    std::string buf(w.reply.size(), '\0');
    auto one = [&] {
        if (!write_exact(fd.get(), w.request) || !read_exact(fd.get(), buf.data(), buf.size()))
            throw failure("the raw server went away");
        if (buf != w.reply) throw failure("the raw server answered something else");
    };
    for (std::uint64_t i = 0; i < warmup_of(n); ++i) one();
    run r;
    r.samples.reserve(n);
    cpu_mark cpu0(server);
    auto start = clk::now();
    for (std::uint64_t i = 0; i < n; ++i) {
        auto t0 = clk::now();
        one();
        r.samples.push_back(ns_since(t0));
    }
    r.elapsed_ns = ns_since(start);
    cpu_mark(server).since(cpu0, r);
    r.calls = n;
    return r;
}

run measure_rpc(const std::string& path, pid_t server, rpc::encoding enc, const std::string& method, const json& params,
                unsigned clients, std::uint64_t n) {
    auto ep = parse::socket_endpoint("unix:" + path);
    rpc::client_options co;
    co.enc = enc;
    std::vector<rpc::client> cs;
    for (unsigned i = 0; i < clients; ++i) cs.emplace_back(ep, co);
    std::uint64_t per = std::max<std::uint64_t>(1, n / clients);
    std::vector<std::vector<std::int64_t>> samples(clients);
    std::atomic<bool> bad{false};
    std::string why;
    std::mutex why_mu;
    clk::time_point start;
    std::optional<cpu_mark> cpu0;
    std::barrier sync(static_cast<std::ptrdiff_t>(clients), [&]() noexcept {
        cpu0.emplace(server);
        start = clk::now();
    });
    auto body = [&](unsigned k) {
        auto& c = cs[k];
        auto& out = samples[k];
        out.reserve(per);
        try {
            for (std::uint64_t i = 0; i < warmup_of(per); ++i)
                if (c.call(method, params) != params) throw std::runtime_error("the echo answered something else");
            sync.arrive_and_wait();
            for (std::uint64_t i = 0; i < per; ++i) {
                auto t0 = clk::now();
                json r = c.call(method, params);
                out.push_back(ns_since(t0));
                if (r != params) throw std::runtime_error("the echo answered something else");
            }
        } catch (const std::exception& e) {
            bad = true;
            std::lock_guard lock(why_mu);
            why = e.what();
        }
    };
    if (clients == 1) {
        body(0);
    } else {
        std::vector<std::thread> ts;
        for (unsigned k = 0; k < clients; ++k) ts.emplace_back(body, k);
        for (auto& t : ts) t.join();
    }
    if (bad) throw failure("rpc " + method + ": " + why);
    run r;
    r.elapsed_ns = ns_since(start);
    cpu_mark(server).since(*cpu0, r);
    for (auto& s : samples) r.samples.insert(r.samples.end(), s.begin(), s.end());
    r.calls = r.samples.size();
    return r;
}

struct row {
    std::string name, what;
    std::vector<double> rates;        // one per round
    std::vector<double> ratios;       // to the baseline run just before, per round
    std::vector<std::int64_t> samples;  // every round's
    std::vector<double> client_cpu, server_cpu;  // ns per call, one per round
    void add(const run& r) {
        rates.push_back(r.rate());
        samples.insert(samples.end(), r.samples.begin(), r.samples.end());
        client_cpu.push_back(r.calls ? static_cast<double>(r.client_cpu_ns) / static_cast<double>(r.calls) : 0);
        server_cpu.push_back(r.calls ? static_cast<double>(r.server_cpu_ns) / static_cast<double>(r.calls) : 0);
    }
};

} // namespace

int main(int argc, char** argv) {
    config cfg;
    bool quick = false, iterations_set = false, rounds_set = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) die("option " + a + " needs a value");
            return argv[++i];
        };
        auto number = [&](std::uint64_t min) {
            std::string v = value();
            std::uint64_t n = 0;
            try {
                n = parse::unsigned_number(v, a);
            } catch (const std::exception& e) {
                die(e.what());
            }
            if (n < min) die(fmt::format("{} must be at least {}", a, min));
            return n;
        };
        if (a == "--iterations" || a == "-i") cfg.iterations = number(1), iterations_set = true;
        else if (a == "--rounds" || a == "-r") cfg.rounds = number(1), rounds_set = true;
        else if (a == "--size" || a == "-s") cfg.size = number(0);
        else if (a == "--clients") cfg.clients = static_cast<unsigned>(std::min<std::uint64_t>(number(1), 200));
        else if (a == "--command-iterations") cfg.command_iterations = number(1);
        else if (a == "--quick") quick = true;
        else if (a == "--only") {
            std::string v = value();
            std::size_t start = 0;
            while (start <= v.size()) {
                auto comma = std::min(v.find(',', start), v.size());
                if (comma > start) cfg.only.push_back(v.substr(start, comma - start));
                start = comma + 1;
            }
        } else if (a == "-h" || a == "--help") {
            std::puts("usage: bench_rpc [--iterations N] [--rounds R] [--size BYTES] [--clients C]\n"
                      "                 [--command-iterations N] [--quick]\n"
                      "                 [--only raw,json-1,json-16,cbor-1,cbor-16,command,json-1-quick,\n"
                      "                         cbor-1-quick,json-16-quick]\n"
                      "  --iterations N   round trips per run (default 20000; the C clients share them)\n"
                      "  --rounds R       alternating baseline/mechanism rounds (default 3); medians\n"
                      "  --size BYTES     length of the echoed string (default 64)\n"
                      "  --clients C      concurrent clients of the -16 rows (default 16)\n"
                      "  --command-iterations N   calls per run of the command row (default N/50, >= 50)\n"
                      "  --quick          --iterations 2000 --rounds 1");
            return 0;
        } else die("unknown option " + a + " (see --help)");
    }
    if (quick) {
        if (!iterations_set) cfg.iterations = 2000;
        if (!rounds_set) cfg.rounds = 1;
    }
    std::uint64_t cmd_n = cfg.command_iterations ? cfg.command_iterations : std::max<std::uint64_t>(50, cfg.iterations / 50);
    std::signal(SIGPIPE, SIG_IGN);

    // An object: a command finds it on its standard input (an array's
    // elements would become the command's arguments).
    json params = {{"data", payload(cfg.size)}};
    wire w = echo_wire(params);
    tempdir dir;
    std::string raw_path = dir.path() + "/raw.sock", rpc_path = dir.path() + "/rpc.sock";

    std::string multi = fmt::format("-{}", cfg.clients);
    struct mech {
        std::string name, what;
        rpc::encoding enc;
        std::string method;
        unsigned clients;
        std::uint64_t n;
    };
    std::vector<mech> all = {
        {"json-1", "rpc echo handler, JSON lines, 1 client", rpc::encoding::json, "echo", 1, cfg.iterations},
        {"json" + multi, fmt::format("rpc echo handler, JSON lines, {} clients", cfg.clients), rpc::encoding::json, "echo",
         cfg.clients, cfg.iterations},
        {"cbor-1", "rpc echo handler, CBOR frames, 1 client", rpc::encoding::cbor, "echo", 1, cfg.iterations},
        {"cbor" + multi, fmt::format("rpc echo handler, CBOR frames, {} clients", cfg.clients), rpc::encoding::cbor, "echo",
         cfg.clients, cfg.iterations},
        {"command", "rpc echo by a command per call (cat), JSON lines, 1 client", rpc::encoding::json, "cat", 1, cmd_n},
        {"json-1-quick", "rpc echo handler marked quick (no worker), JSON lines, 1 client", rpc::encoding::json,
         "echo-quick", 1, cfg.iterations},
        {"cbor-1-quick", "rpc echo handler marked quick (no worker), CBOR frames, 1 client", rpc::encoding::cbor,
         "echo-quick", 1, cfg.iterations},
        {"json" + multi + "-quick", fmt::format("rpc echo handler marked quick, JSON lines, {} clients", cfg.clients),
         rpc::encoding::json, "echo-quick", cfg.clients, cfg.iterations},
    };
    auto wanted = [&](const std::string& n) {
        if (cfg.only.empty()) return true;
        for (auto& o : cfg.only)
            if (o == n || (o == "json-16" && n == "json" + multi) || (o == "cbor-16" && n == "cbor" + multi) ||
                (o == "json-16-quick" && n == "json" + multi + "-quick")) return true;
        return false;
    };

    std::map<std::string, row> rows;
    row raw;
    raw.name = "raw";
    raw.what = "raw Unix stream ping-pong of the same bytes (server process)";
    try {
        // The servers are separate processes, forked before any thread.
        auto raw_l = unix_listen(raw_path);
        child raw_server_proc([&] { raw_server(std::move(raw_l), w); });
        raw_l.reset();
        rpc::listener rpc_l(parse::socket_endpoint("unix:" + rpc_path), 0600);
        child rpc_server_proc([&] { rpc_server(std::move(rpc_l)); });

        std::printf("ipc-rpc echo: %zu-byte string, %llu round trips per run (command: %llu), %llu rounds; "
                    "servers in their own processes; raw: %zu B request, %zu B reply\n",
                    cfg.size, static_cast<unsigned long long>(cfg.iterations), static_cast<unsigned long long>(cmd_n),
                    static_cast<unsigned long long>(cfg.rounds), w.request.size(), w.reply.size());
        std::fflush(stdout);
        for (std::uint64_t round = 0; round < cfg.rounds; ++round) {
            for (const auto& m : all) {
                if (!wanted(m.name)) continue;
                auto b = measure_raw(raw_path, raw_server_proc.pid(), w, cfg.iterations);
                raw.add(b);
                auto r = measure_rpc(rpc_path, rpc_server_proc.pid(), m.enc, m.method, params, m.clients, m.n);
                auto& rw = rows[m.name];
                rw.name = m.name;
                rw.what = m.what;
                rw.add(r);
                rw.ratios.push_back(b.rate() > 0 ? r.rate() / b.rate() : 0);
                std::fprintf(stderr, "round %llu: raw %.0f/s, %s %.0f/s\n", static_cast<unsigned long long>(round + 1),
                             b.rate(), m.name.c_str(), r.rate());
            }
            if (cfg.only.size() == 1 && cfg.only[0] == "raw") {
                raw.add(measure_raw(raw_path, raw_server_proc.pid(), w, cfg.iterations));
            }
        }
        // rpc_server_proc, then raw_server_proc, are stopped here; the
        // listener then removes its socket file.
    } catch (const std::exception& e) {
        ::unlink(raw_path.c_str());
        ::unlink(rpc_path.c_str());
        std::fprintf(stderr, "bench_rpc: %s\n", e.what());
        return 70;
    }
    ::unlink(raw_path.c_str());

    std::vector<row*> order{&raw};
    for (const auto& m : all)
        if (rows.count(m.name)) order.push_back(&rows[m.name]);
    std::printf("%-13s %9s %9s %9s %7s %9s %9s  %s\n", "what", "calls/s", "p50", "p99", "ratio", "cli-cpu", "srv-cpu",
                "(cpu: time per call, all threads)");
    std::vector<std::string> lines;
    for (auto* r : order) {
        auto s = stats::summarize(r->samples);
        double rate = stats::median(r->rates);
        bool base = r == &raw;
        double ratio = base ? 1.0 : stats::median(r->ratios);
        double ccpu = stats::median(r->client_cpu), scpu = stats::median(r->server_cpu);
        std::printf("%-13s %9.0f %7.1fus %7.1fus %7.3f %7.1fus %7.1fus  %s\n", r->name.c_str(), rate, s.p50 / 1e3,
                    s.p99 / 1e3, ratio, ccpu / 1e3, scpu / 1e3, r->what.c_str());
        lines.push_back(json{{"bench", "rpc"}, {"what", r->name}, {"size", cfg.size}, {"runs", r->rates.size()},
                             {"calls_per_s", std::round(rate)}, {"p50_ns", s.p50}, {"p99_ns", s.p99},
                             {"client_cpu_ns_per_call", std::round(ccpu)}, {"server_cpu_ns_per_call", std::round(scpu)},
                             {"samples", s.count}, {"ratio_to_raw", base ? json(nullptr) : json(std::round(ratio * 1000) / 1000)}}
                            .dump());
    }
    for (auto& l : lines) std::puts(l.c_str());
    json ratios = json::object();
    auto ratio_of = [&](const std::string& n) -> json {
        auto it = rows.find(n);
        return it == rows.end() ? json(nullptr) : json(std::round(stats::median(it->second.ratios) * 1000) / 1000);
    };
    ratios["rpc_json_1_over_raw"] = ratio_of("json-1");
    ratios["rpc_json_" + std::to_string(cfg.clients) + "_over_raw"] = ratio_of("json" + multi);
    ratios["rpc_cbor_1_over_raw"] = ratio_of("cbor-1");
    ratios["rpc_cbor_" + std::to_string(cfg.clients) + "_over_raw"] = ratio_of("cbor" + multi);
    ratios["command_over_raw"] = ratio_of("command");
    ratios["rpc_json_1_quick_over_raw"] = ratio_of("json-1-quick");
    ratios["rpc_cbor_1_quick_over_raw"] = ratio_of("cbor-1-quick");
    ratios["rpc_json_" + std::to_string(cfg.clients) + "_quick_over_raw"] = ratio_of("json" + multi + "-quick");
    ratios["goal_1_client"] = 0.5;
    std::printf("ratios (median of per-round rate ratios to the raw run beside it):\n");
    for (auto it = ratios.begin(); it != ratios.end(); ++it)
        if (it.key() != "goal_1_client")
            std::printf("  %-28s %s\n", it.key().c_str(), it.value().is_null() ? "-" : fmt::format("{:.3f}", it.value().get<double>()).c_str());
    if (auto r = ratio_of("json-1"); !r.is_null())
        std::printf("  1-client JSON goal (>= 0.5): %s\n", r.get<double>() >= 0.5 ? "met" : "NOT met");
    std::puts(json{{"rpc_bench_ratios", ratios}}.dump().c_str());
    return 0;
}
