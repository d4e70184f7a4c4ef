// SPDX-License-Identifier: MIT
#include "host.hpp"

#include <fstream>

#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <fmt/format.h>

#include "ipc/mq.hpp"
#include "probe.hpp"

namespace bench {

using ipc::out::json;

namespace {

json proc_number(const std::string& path) {
    std::ifstream in(path);
    long long v;
    if (in >> v) return v;
    return nullptr;
}

json proc_numbers(const std::string& path) {
    std::ifstream in(path);
    json a = json::array();
    long long v;
    while (in >> v) a.push_back(v);
    return a;
}

json long_or_null(long v) { return v < 0 ? json(nullptr) : json(v); }

} // namespace

host_info host() {
    host_info h;
    utsname u{};
    if (::uname(&u) == 0) h.kernel = fmt::format("{} {}", u.sysname, u.release);
    std::ifstream in("/proc/cpuinfo");
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos) {
            h.cpu_model = line.substr(line.find(':') + 2);
            break;
        }
    }
    h.cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
    return h;
}

json host_json() {
    auto h = host();
    auto pl = ipc::mq::read_posix_limits();
    auto sl = ipc::mq::read_sysv_limits();
    json j;
    j["kernel"] = h.kernel;
    j["cpu_model"] = h.cpu_model;
    j["cpus"] = h.cpus;
    j["pipe_max_size_bytes"] = proc_number("/proc/sys/fs/pipe-max-size");
    j["mq_msg_max"] = long_or_null(pl.msg_max);
    j["mq_msgsize_max_bytes"] = long_or_null(pl.msgsize_max);
    j["mq_queues_max"] = long_or_null(pl.queues_max);
    j["rlimit_msgqueue_bytes"] = pl.rlimit_msgqueue;
    j["mqueue_mount"] = ipc::mq::mqueue_mount() ? json(*ipc::mq::mqueue_mount()) : json(nullptr);
    j["sysv_msgmax_bytes"] = long_or_null(sl.msgmax);
    j["sysv_msgmnb_bytes"] = long_or_null(sl.msgmnb);
    j["sysv_msgmni"] = long_or_null(sl.msgmni);
    j["sysv_shmmax_bytes"] = proc_number("/proc/sys/kernel/shmmax");
    j["sysv_sem"] = proc_numbers("/proc/sys/kernel/sem");
    struct statvfs sv{};
    if (::statvfs("/dev/shm", &sv) == 0) {
        j["dev_shm_size_bytes"] = static_cast<std::uint64_t>(sv.f_blocks) * sv.f_frsize;
        j["dev_shm_free_bytes"] = static_cast<std::uint64_t>(sv.f_bavail) * sv.f_frsize;
    } else {
        j["dev_shm_size_bytes"] = nullptr;
        j["dev_shm_free_bytes"] = nullptr;
    }
    return j;
}

std::vector<check_result> run_checks() {
    std::vector<check_result> out;
    auto h = host_json();
    auto mount = ipc::mq::mqueue_mount();
    out.push_back({"mqueue-mount", mount.has_value(), mount ? json(*mount) : json(nullptr),
                   mount ? "POSIX queues can be listed" :
                           "not mounted: POSIX queues work, but cannot be listed (as root: mount -t mqueue none /dev/mqueue)"});
    bool shm = !h["dev_shm_size_bytes"].is_null();
    out.push_back({"dev-shm", shm && h["dev_shm_free_bytes"].get<std::uint64_t>() > 0, h["dev_shm_size_bytes"],
                   shm ? fmt::format("/dev/shm: {} bytes, {} free", h["dev_shm_size_bytes"].get<std::uint64_t>(),
                                     h["dev_shm_free_bytes"].get<std::uint64_t>())
                       : "/dev/shm is missing: no POSIX shared memory or semaphores"});
    auto limit = [&](const char* name, const char* key, const char* what) {
        out.push_back({name, !h[key].is_null(), h[key], what});
    };
    limit("pipe-max-size", "pipe_max_size_bytes", "largest pipe capacity without privilege (/proc/sys/fs/pipe-max-size)");
    limit("mq-msg-max", "mq_msg_max", "most messages per POSIX queue (/proc/sys/fs/mqueue/msg_max)");
    limit("mq-msgsize-max", "mq_msgsize_max_bytes", "largest POSIX queue message (/proc/sys/fs/mqueue/msgsize_max)");
    limit("mq-queues-max", "mq_queues_max", "most POSIX queues (/proc/sys/fs/mqueue/queues_max)");
    out.push_back({"rlimit-msgqueue", h["rlimit_msgqueue_bytes"].get<std::uint64_t>() > 0, h["rlimit_msgqueue_bytes"],
                   "bytes of POSIX queues per user (RLIMIT_MSGQUEUE)"});
    limit("sysv-msgmax", "sysv_msgmax_bytes", "largest System V message (/proc/sys/kernel/msgmax)");
    limit("sysv-msgmni", "sysv_msgmni", "most System V queues (/proc/sys/kernel/msgmni)");
    limit("sysv-shmmax", "sysv_shmmax_bytes", "largest System V segment (/proc/sys/kernel/shmmax)");

    // Each mechanism, for real: a few round trips and a short stream.
    settings s;
    s.iterations = 3;
    s.warmup = 0;
    s.duration = std::chrono::milliseconds(10);
    s.verify = true;
    s.where = parse_placement("none");
    for (const auto& m : mechanisms()) {
        if (m.peer) continue;  // other projects' libraries: not the host's
        check_result r{m.name, false, nullptr, ""};
        if (auto why = m.unusable()) {
            r.detail = *why;
            out.push_back(std::move(r));
            continue;
        }
        try {
            impl which = m.has_toolkit ? impl::toolkit : impl::raw;
            auto lat = measure_latency(m, which, 64, s);
            if (lat.samples_ns.empty()) throw std::runtime_error("no round trip completed");
            std::string detail = fmt::format("round trip {:.1f} us", static_cast<double>(lat.samples_ns[0]) / 1000);
            if (m.streams) {
                auto thr = measure_throughput(m, which, 64, s);
                if (thr.received == 0) throw std::runtime_error("no message arrived");
                if (!m.lossy && (thr.f.lost || thr.f.corrupted || thr.f.duplicated))
                    throw std::runtime_error(fmt::format("{} lost, {} corrupted, {} duplicated of {}", thr.f.lost,
                                                         thr.f.corrupted, thr.f.duplicated, thr.sent));
                detail += fmt::format(", {} messages streamed", thr.received);
            }
            r.ok = true;
            r.value = lat.samples_ns[0];
            r.detail = detail;
        } catch (const std::exception& e) {
            r.detail = e.what();
        }
        out.push_back(std::move(r));
    }
    return out;
}

std::optional<std::vector<std::string>> required_names(const std::string& word) {
    if (word == "mq") return std::vector<std::string>{"posix-mq", "sysv-mq"};
    if (word == "shm") return std::vector<std::string>{"dev-shm", "shm-spin", "shm-adaptive", "shm-block"};
    if (word == "unix") return std::vector<std::string>{"unix-stream", "unix-dgram", "unix-seqpacket"};
    if (word == "loopback") return std::vector<std::string>{"tcp", "udp"};
    for (const char* fact : {"mqueue-mount", "dev-shm", "pipe-max-size", "mq-msg-max", "mq-msgsize-max", "mq-queues-max",
                             "rlimit-msgqueue", "sysv-msgmax", "sysv-msgmni", "sysv-shmmax"})
        if (word == fact) return std::vector<std::string>{word};
    if (find(word)) return std::vector<std::string>{word};
    return std::nullopt;
}

} // namespace bench
