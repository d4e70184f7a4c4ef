// SPDX-License-Identifier: MIT
// Mailbox throughput: 64-byte messages between processes, through the
// mailbox API (any backend), and for Redis the same stream commands as a
// bare pipelined hiredis loop against the same server, as the baseline:
// XADD in pipelines of --batch, XREADGROUP COUNT 256 NOACK. Two such loops
// run: hiredis-raw, whose entries carry only the body, and raw-fields,
// whose XADD carries the fields every mailbox message has (seq, ts, pid,
// uid, body): the same commands on the same entries, minus the mailbox's
// scripts. Each row shows its ratio to both ("ratio", "fields").
//
//   fan-out: one sender, four groups of one receiver process each
//   fan-in:  four sender processes, one group of one receiver process
//
// Usage: bench_mbox [--backend local|redis://HOST:PORT[/DB]] [--start-redis]
//                   [--dir DIR] [--messages N] [--size B] [--batch K]
//                   [--runs R] [--max-msgs M] [--only fan-out|fan-in] [--no-raw | --raw-only]
// Prints a table, then one JSON object on the last line. Runs alternate
// mailbox and baseline; figures are medians over the runs.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <hiredis/hiredis.h>

#include "ipc/error.hpp"
#include "ipc/mbox.hpp"

using namespace ipc;
using clk = std::chrono::steady_clock;

namespace {

struct config {
    std::string backend = "local";
    std::string dir;
    bool start_redis = false;
    bool raw = true;
    bool mailbox = true;  // false: the bare loops only (--raw-only, to profile the server)
    std::string only;
    std::size_t messages = 100000;
    std::size_t size = 64;
    std::size_t batch = 64;
    std::size_t runs = 3;
    std::uint64_t max_msgs = 65536;
    bool compare = false;  // local, redis, hiredis-raw and nngcat in the same run
};

[[noreturn]] void die(const std::string& msg, int code = 64) {
    std::fprintf(stderr, "bench_mbox: %s\n", msg.c_str());
    std::exit(code);
}

// ---- a private redis-server -------------------------------------------------

int free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) < 0)
        die("cannot find a free port", 71);
    int port = ntohs(a.sin_port);
    ::close(fd);
    return port;
}

class redis_child {
public:
    redis_child() {
        for (int attempt = 0; attempt < 8; ++attempt) {
            char tmpl[] = "/tmp/ipc-bench-redis-XXXXXX";
            if (!::mkdtemp(tmpl)) die("mkdtemp failed", 71);
            dir_ = tmpl;
            do port_ = free_port();
            while (port_ == 6379);
            pid_ = ::fork();
            if (pid_ == 0) {
                int null = ::open("/dev/null", O_RDWR);
                ::dup2(null, 0);
                ::dup2(null, 1);
                ::dup2(null, 2);
                ::setpgid(0, 0);
                std::string port = std::to_string(port_), dir = dir_.string();
                ::execlp("redis-server", "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1", "--save", "",
                         "--appendonly", "no", "--dir", dir.c_str(), "--daemonize", "no", "--loglevel", "warning",
                         static_cast<char*>(nullptr));
                ::_exit(127);
            }
            for (int i = 0; i < 400; ++i) {
                int st = 0;
                if (::waitpid(pid_, &st, WNOHANG) == pid_) {
                    if (WIFEXITED(st) && WEXITSTATUS(st) == 127) die("redis-server is not installed", 69);
                    pid_ = -1;
                    break;
                }
                redisContext* c = redisConnect("127.0.0.1", port_);
                bool up = false;
                if (c && !c->err) {
                    auto* r = static_cast<redisReply*>(redisCommand(c, "PING"));
                    up = r && r->type == REDIS_REPLY_STATUS;
                    if (r) freeReplyObject(r);
                }
                if (c) redisFree(c);
                if (up) return;
                ::usleep(25000);
            }
            stop();
        }
        die("redis-server did not start", 69);
    }
    ~redis_child() { stop(); }
    std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

private:
    void stop() {
        if (pid_ > 0) {
            ::kill(pid_, SIGTERM);
            ::waitpid(pid_, nullptr, 0);
        }
        pid_ = -1;
        if (!dir_.empty()) std::filesystem::remove_all(dir_);
        dir_.clear();
    }
    pid_t pid_ = -1;
    int port_ = 0;
    std::filesystem::path dir_;
};

// ---- processes --------------------------------------------------------------

// Runs every body in its own process, all released at once; returns seconds
// from the release to the last exit.
double run_processes(const std::vector<std::function<void()>>& bodies) {
    int go[2];
    if (::pipe(go) < 0) die("pipe failed", 71);
    int ready[2];
    if (::pipe(ready) < 0) die("pipe failed", 71);
    std::vector<pid_t> pids;
    for (auto& body : bodies) {
        pid_t p = ::fork();
        if (p < 0) die("fork failed", 71);
        if (p == 0) {
            ::close(go[1]);
            ::close(ready[0]);
            int rc = 0;
            try {
                char c = 0;
                [[maybe_unused]] auto w = ::write(ready[1], "r", 1);
                [[maybe_unused]] auto n = ::read(go[0], &c, 1);  // EOF: go
                body();
            } catch (const std::exception& e) {
                std::fprintf(stderr, "bench_mbox: %s\n", e.what());
                rc = 1;
            }
            ::_exit(rc);
        }
        pids.push_back(p);
    }
    ::close(go[0]);
    ::close(ready[1]);
    for (std::size_t i = 0; i < bodies.size(); ++i) {
        char c;
        if (::read(ready[0], &c, 1) != 1) break;
    }
    ::close(ready[0]);
    auto t0 = clk::now();
    ::close(go[1]);
    bool ok = true;
    for (auto p : pids) {
        int st = 0;
        ::waitpid(p, &st, 0);
        ok = ok && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    double secs = std::chrono::duration<double>(clk::now() - t0).count();
    if (!ok) return -1;
    return secs;
}

// ---- the mailbox ------------------------------------------------------------

double run_mailbox(const config& cfg, const std::string& pattern, int run) {
    mbox::location loc;
    loc.name = fmt::format("/bench-{}-{}-{}", pattern, ::getpid(), run);
    loc.backend = cfg.backend;
    loc.dir = cfg.dir;
    mbox::create_options opt;
    opt.lim.max_msgs = cfg.max_msgs;
    opt.lim.max_bytes = std::max<std::uint64_t>(cfg.max_msgs * (cfg.size + 256), 4u << 20);
    opt.lim.max_msg_size = std::max<std::uint64_t>(cfg.size, 1024);
    mbox::create(loc, opt);
    const bool fan_out = pattern == "fan-out";
    const int senders = fan_out ? 1 : 4, groups = fan_out ? 4 : 1;
    {
        auto m = mbox::open(loc);
        for (int g = 0; g < groups; ++g) {
            mbox::recv_options o;
            o.group.name = "g" + std::to_string(g);
            o.until = deadline::after(std::chrono::nanoseconds(0));
            m->recv(o, [](mbox::message&) {});
        }
    }
    const std::size_t per_sender = cfg.messages / static_cast<std::size_t>(senders);
    const std::size_t total = per_sender * static_cast<std::size_t>(senders);
    std::vector<std::function<void()>> bodies;
    for (int s = 0; s < senders; ++s)
        bodies.push_back([&, s] {
            auto m = mbox::open(loc);
            mbox::send_options so;
            so.as = "s" + std::to_string(s);
            std::vector<mbox::outgoing> batch(cfg.batch, mbox::outgoing{std::string(cfg.size, 'x'), "", ""});
            std::size_t sent = 0;
            while (sent < per_sender) {
                std::size_t n = std::min(cfg.batch, per_sender - sent);
                auto r = m->send(std::span(batch.data(), n), so);
                sent += r.seqs.size();
            }
        });
    for (int g = 0; g < groups; ++g)
        bodies.push_back([&, g] {
            auto m = mbox::open(loc);
            mbox::recv_options o;
            o.group.name = "g" + std::to_string(g);
            o.max_batch = 256;
            std::size_t got = 0;
            while (got < total) {
                o.until = deadline::after(std::chrono::seconds(30));
                std::size_t n = m->recv(o, [](mbox::message&) {});
                if (n == 0) throw std::runtime_error("receiver starved for 30 s");
                got += n;
            }
        });
    double secs = run_processes(bodies);
    try {
        mbox::remove(loc);
    } catch (const std::exception&) {
    }
    return secs < 0 ? -1 : static_cast<double>(total) / secs;
}

// ---- the bare hiredis baseline -----------------------------------------------

struct raw_conn {
    redisContext* c;
    explicit raw_conn(const std::string& url) {
        std::string hp = url.substr(8);
        auto slash = hp.find('/');
        int db = 0;
        if (slash != std::string::npos) {
            db = std::atoi(hp.c_str() + slash + 1);
            hp = hp.substr(0, slash);
        }
        auto colon = hp.rfind(':');
        c = redisConnect(hp.substr(0, colon).c_str(), colon == std::string::npos ? 6379 : std::atoi(hp.c_str() + colon + 1));
        if (!c || c->err) throw std::runtime_error("cannot connect to " + url);
        if (db) freeReplyObject(redisCommand(c, "SELECT %d", db));
    }
    ~raw_conn() { redisFree(c); }
};

// fields: false, the entries carry only a body; true, the fields every
// mailbox message carries (seq, ts, pid, uid, body; the seq is the
// sender's own count here, so it is not gap-free across senders).
double run_raw(const config& cfg, const std::string& pattern, int run, bool fields) {
    std::string key = fmt::format("bench-raw:{{{}-{}-{}}}", pattern, ::getpid(), run);
    const bool fan_out = pattern == "fan-out";
    const int senders = fan_out ? 1 : 4, groups = fan_out ? 4 : 1;
    {
        raw_conn rc(cfg.backend);
        for (int g = 0; g < groups; ++g)
            freeReplyObject(redisCommand(rc.c, "XGROUP CREATE %s g%d $ MKSTREAM", key.c_str(), g));
    }
    const std::size_t per_sender = cfg.messages / static_cast<std::size_t>(senders);
    const std::size_t total = per_sender * static_cast<std::size_t>(senders);
    std::vector<std::function<void()>> bodies;
    for (int s = 0; s < senders; ++s)
        bodies.push_back([&] {
            raw_conn rc(cfg.backend);
            std::string body(cfg.size, 'x');
            std::size_t sent = 0;
            // As the mailbox's sender does: pid and uid once, a time stamp per batch.
            const std::string pid = std::to_string(::getpid()), uid = std::to_string(::getuid());
            while (sent < per_sender) {
                std::size_t n = std::min(cfg.batch, per_sender - sent);
                auto ts = std::chrono::system_clock::now().time_since_epoch();
                const std::string t = std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(ts).count());
                for (std::size_t i = 0; i < n; ++i) {
                    if (fields) {
                        std::string seq = std::to_string(sent + i + 1);
                        redisAppendCommand(rc.c, "XADD %s * seq %s ts %s pid %s uid %s body %b", key.c_str(), seq.c_str(),
                                           t.c_str(), pid.c_str(), uid.c_str(), body.data(), body.size());
                    } else {
                        redisAppendCommand(rc.c, "XADD %s * body %b", key.c_str(), body.data(), body.size());
                    }
                }
                for (std::size_t i = 0; i < n; ++i) {
                    void* r = nullptr;
                    if (redisGetReply(rc.c, &r) != REDIS_OK) throw std::runtime_error("XADD failed");
                    freeReplyObject(r);
                }
                sent += n;
            }
        });
    for (int g = 0; g < groups; ++g)
        bodies.push_back([&, g] {
            raw_conn rc(cfg.backend);
            std::size_t got = 0;
            while (got < total) {
                auto* r = static_cast<redisReply*>(redisCommand(
                    rc.c, "XREADGROUP GROUP g%d c COUNT 256 BLOCK 30000 NOACK STREAMS %s >", g, key.c_str()));
                if (!r) throw std::runtime_error("XREADGROUP failed");
                if (r->type == REDIS_REPLY_NIL) throw std::runtime_error("receiver starved for 30 s");
                if (r->type == REDIS_REPLY_ARRAY && r->elements > 0) got += r->element[0]->element[1]->elements;
                freeReplyObject(r);
            }
        });
    double secs = run_processes(bodies);
    raw_conn rc(cfg.backend);
    freeReplyObject(redisCommand(rc.c, "DEL %s", key.c_str()));
    return secs < 0 ? -1 : static_cast<double>(total) / secs;
}

// ---- nngcat, what a user would otherwise reach for ------------------------------

bool have_nngcat() { return ::access("/usr/bin/nngcat", X_OK) == 0; }

pid_t spawn_nngcat(const std::vector<std::string>& args, const std::string& out) {
    pid_t p = ::fork();
    if (p < 0) die("fork failed", 71);
    if (p == 0) {
        int fd = ::open(out.empty() ? "/dev/null" : out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ::dup2(fd, 1);
        int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
        ::dup2(null, 2);
        std::vector<char*> argv{const_cast<char*>("nngcat")};
        for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        ::execv("/usr/bin/nngcat", argv.data());
        ::_exit(127);
    }
    return p;
}

// fan-out: --pub0 to four --sub0 (pub/sub drops what a slow subscriber cannot
// take: the figure is what each subscriber got, per second of publishing);
// fan-in: four --push0 to one --pull0 (flow-controlled, nothing dropped).
// Messages per second delivered to each receiver; *lost_pct: what the
// receivers did not get.
double run_nngcat(const config& cfg, const std::string& pattern, int run, double* lost_pct) {
    char tmpl[] = "/tmp/ipc-mbox-bench-nng-XXXXXX";
    if (!::mkdtemp(tmpl)) die("mkdtemp failed", 71);
    std::filesystem::path dir(tmpl);
    const std::string data(cfg.size, 'x');
    const bool fan_out = pattern == "fan-out";
    const std::size_t n = cfg.messages;
    std::vector<pid_t> receivers;
    std::vector<std::string> outs;
    const int nrecv = fan_out ? 4 : 1;
    for (int i = 0; i < nrecv; ++i) {
        std::string url = fmt::format("ipc://{}/r{}-{}", dir.string(), i, run);
        outs.push_back((dir / fmt::format("out{}", i)).string());
        std::vector<std::string> a = fan_out ? std::vector<std::string>{"--sub0", "--listen", url, "--subscribe", ""}
                                             : std::vector<std::string>{"--pull0", "--listen", url};
        for (auto x : {"--raw", "--recv-timeout", "2", "--count"}) a.push_back(x);
        a.push_back(std::to_string(n));
        receivers.push_back(spawn_nngcat(a, outs.back()));
    }
    ::usleep(300000);  // the listeners are up
    std::vector<pid_t> senders;
    auto t0 = clk::now();
    const int nsend = fan_out ? 1 : 4;
    for (int s = 0; s < nsend; ++s) {
        std::vector<std::string> a{fan_out ? "--pub0" : "--push0"};
        for (int i = 0; i < nrecv; ++i) {
            a.push_back("--dial");
            a.push_back(fmt::format("ipc://{}/r{}-{}", dir.string(), i, run));
        }
        for (auto x : {"--data", data.c_str(), "--delay", "1", "--count"}) a.push_back(x);
        a.push_back(std::to_string(n / static_cast<std::size_t>(nsend)));
        senders.push_back(spawn_nngcat(a, ""));
    }
    for (auto p : senders) ::waitpid(p, nullptr, 0);
    auto t_sent = clk::now();
    for (auto p : receivers) ::waitpid(p, nullptr, 0);
    auto t_got = clk::now();
    std::uint64_t got = 0;
    for (auto& o : outs) got += std::filesystem::file_size(o) / cfg.size;
    std::filesystem::remove_all(dir);
    const double per_receiver = static_cast<double>(got) / nrecv;
    *lost_pct = 100.0 * (1.0 - per_receiver / static_cast<double>(n / static_cast<std::size_t>(nsend) * nsend));
    // The one-second --delay is not sending time. A receiver that got
    // everything ended at its last message; otherwise it waited out its
    // 2 s --recv-timeout after the publisher finished.
    double window = fan_out ? std::chrono::duration<double>(t_sent - t0).count() - 1.0
                            : std::chrono::duration<double>(t_got - t0).count() - 1.0;
    return window > 0 ? per_receiver / window : -1;
}

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

} // namespace

int main(int argc, char** argv) {
    config cfg;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) die("option " + a + " needs a value");
            return argv[++i];
        };
        if (a == "--backend") cfg.backend = value();
        else if (a == "--dir") cfg.dir = value();
        else if (a == "--start-redis") cfg.start_redis = true;
        else if (a == "--no-raw") cfg.raw = false;
        else if (a == "--raw-only") cfg.mailbox = false;
        else if (a == "--compare") cfg.compare = true;
        else if (a == "--only") cfg.only = value();
        else if (a == "--messages") cfg.messages = std::stoull(value());
        else if (a == "--size") cfg.size = std::stoull(value());
        else if (a == "--batch") cfg.batch = std::max<std::size_t>(1, std::stoull(value()));
        else if (a == "--runs") cfg.runs = std::max<std::size_t>(1, std::stoull(value()));
        else if (a == "--max-msgs") cfg.max_msgs = std::stoull(value());
        else if (a == "-h" || a == "--help") {
            std::puts("usage: bench_mbox [--backend local|redis://HOST:PORT[/DB]] [--start-redis] [--dir DIR]\n"
                      "                  [--messages N] [--size B] [--batch K] [--runs R] [--max-msgs M]\n"
                      "                  [--only fan-out|fan-in] [--no-raw | --raw-only]\n"
                      "       bench_mbox --compare [...]   local and redis mailboxes, bare hiredis, nngcat");
            return 0;
        } else die("unknown option " + a);
    }
    std::signal(SIGPIPE, SIG_IGN);
    std::unique_ptr<redis_child> server;
    if (cfg.compare && !cfg.backend.starts_with("redis://")) cfg.start_redis = true;
    if (cfg.start_redis) {
        server = std::make_unique<redis_child>();
        cfg.backend = server->url();
    }
    const bool redis = cfg.backend.starts_with("redis://");
    std::vector<std::string> patterns;
    for (auto p : {"fan-out", "fan-in"})
        if (cfg.only.empty() || cfg.only == p) patterns.push_back(p);

    struct row {
        std::string pattern, what;
        double mps;
    };
    std::vector<row> rows;
    std::string shown = server ? std::string("redis (private server)") : cfg.backend;
    std::printf("mailbox throughput, %zu messages of %zu B, send batches of %zu, %zu runs (medians), backend %s\n",
                cfg.messages, cfg.size, cfg.batch, cfg.runs, shown.c_str());
    for (auto& p : patterns) {
        std::vector<double> box, local, raw, rawf, nng, nng_lost;
        for (std::size_t r = 0; r < cfg.runs; ++r) {
            try {
                if (cfg.mailbox) box.push_back(run_mailbox(cfg, p, static_cast<int>(r)));
                if (cfg.compare) {
                    config lc = cfg;
                    lc.backend = "local";
                    local.push_back(run_mailbox(lc, p, static_cast<int>(r)));
                }
            } catch (const ipc::error& e) {
                die(std::string("mailbox: ") + e.what(), static_cast<int>(e.code()));
            }
            if (redis && cfg.raw) {
                raw.push_back(run_raw(cfg, p, static_cast<int>(r), false));
                rawf.push_back(run_raw(cfg, p, static_cast<int>(r), true));
            }
            if (cfg.compare && have_nngcat()) {
                double lost = 0;
                nng.push_back(run_nngcat(cfg, p, static_cast<int>(r), &lost));
                nng_lost.push_back(lost);
            }
            if ((!box.empty() && box.back() < 0) || (!raw.empty() && (raw.back() < 0 || rawf.back() < 0)) || (!local.empty() && local.back() < 0))
                die("a run failed (see above)", 70);
        }
        if (!local.empty()) rows.push_back({p, "local", median(local)});
        if (!box.empty()) rows.push_back({p, cfg.compare ? "redis" : "mailbox", median(box)});
        if (!raw.empty()) {
            rows.push_back({p, "hiredis-raw", median(raw)});
            rows.push_back({p, "raw-fields", median(rawf)});
        }
        if (!nng.empty()) {
            rows.push_back({p, "nngcat", median(nng)});
            std::printf("nngcat %s: receivers got %.1f%% fewer messages than were sent (median)\n", p.c_str(),
                        median(nng_lost));
        }
    }
    // ratio: against the bare loop whose entries carry only a body; fields:
    // against the bare loop whose entries carry the mailbox's fields.
    std::printf("%-8s %-12s %14s %16s %8s %8s\n", "pattern", "what", "msgs/s", "deliveries/s", "ratio", "fields");
    for (auto& r : rows) {
        int deliveries_per = r.pattern == "fan-out" ? 4 : 1;
        double base = 0, base_fields = 0;
        for (auto& o : rows) {
            if (o.pattern == r.pattern && o.what == "hiredis-raw") base = o.mps;
            if (o.pattern == r.pattern && o.what == "raw-fields") base_fields = o.mps;
        }
        std::string ratio = base > 0 ? fmt::format("{:.2f}", r.mps / base) : "-";
        std::string ratio_fields = base_fields > 0 ? fmt::format("{:.2f}", r.mps / base_fields) : "-";
        std::printf("%-8s %-12s %14.0f %16.0f %8s %8s\n", r.pattern.c_str(), r.what.c_str(), r.mps,
                    r.mps * deliveries_per, ratio.c_str(), ratio_fields.c_str());
    }
    std::string json = fmt::format("{{\"mbox_bench\":{{\"backend\":\"{}\",\"messages\":{},\"size\":{},\"batch\":{},\"runs\":{},\"results\":[",
                                   redis ? "redis" : cfg.backend, cfg.messages, cfg.size, cfg.batch, cfg.runs);
    for (std::size_t i = 0; i < rows.size(); ++i)
        json += fmt::format("{}{{\"pattern\":\"{}\",\"what\":\"{}\",\"msgs_per_s\":{:.0f}}}", i ? "," : "", rows[i].pattern,
                            rows[i].what, rows[i].mps);
    json += "]}}";
    std::puts(json.c_str());
    return 0;
}
