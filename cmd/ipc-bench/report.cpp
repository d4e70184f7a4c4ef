// SPDX-License-Identifier: MIT
#include "report.hpp"
#include "units.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include "ipc/error.hpp"
#include "ipc/fd.hpp"
#include "ipc/parse.hpp"

extern char** environ;

namespace bench {

using ipc::out::json;

namespace {

std::optional<double> number(const json& r, const char* key) {
    auto it = r.find(key);
    if (it == r.end() || !it->is_number()) return std::nullopt;
    return it->get<double>();
}

bool usable(const json& r) {
    return r.is_object() && r.contains("mechanism") && r["mechanism"].is_string() && r.contains("size_bytes") &&
           r["size_bytes"].is_number_unsigned() && r.value("status", std::string()) == "ok";
}

// Markdown cells: "-" for a figure not measured.
std::string ns_cell(std::optional<double> ns) { return ns ? ns_text(*ns, unit_style::spaced) : "-"; }

std::string rate_cell(std::optional<double> r, const char* unit) {
    return r ? rate_text(*r, unit, unit_style::spaced) : "-";
}

// Runs gnuplot with script on stdin; returns its stdout.
std::string run_gnuplot(const std::string& script) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) < 0 || ::pipe2(out, O_CLOEXEC) < 0) throw ipc::system_error(errno, "make a pipe");
    ipc::unique_fd in_r(in[0]), in_w(in[1]), out_r(out[0]), out_w(out[1]);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in_r.get(), STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&fa, out_w.get(), STDOUT_FILENO);
    char arg0[] = "gnuplot";
    char* argv[] = {arg0, nullptr};
    pid_t pid;
    int rc = posix_spawnp(&pid, "gnuplot", &fa, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        if (rc == ENOENT)
            throw ipc::error(ipc::exit_code::unavailable,
                             "cannot plot: gnuplot is not installed (Debian package gnuplot-nox)", ENOENT);
        throw ipc::system_error(rc, "run gnuplot");
    }
    in_r.reset(), out_w.reset();
    // The script is small (well under a pipe's capacity for what gnuplot
    // reads before writing), but write and read in turn to be safe.
    std::string result;
    std::size_t done = 0;
    char buf[65536];
    while (done < script.size() || out_r) {
        pollfd fds[2] = {{in_w ? in_w.get() : -1, POLLOUT, 0}, {out_r ? out_r.get() : -1, POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            throw ipc::system_error(errno, "wait for gnuplot");
        }
        if (in_w && (fds[0].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w = ::write(in_w.get(), script.data() + done, script.size() - done);
            if (w > 0) done += static_cast<std::size_t>(w);
            if (w < 0 && errno != EINTR && errno != EAGAIN) done = script.size();
            if (done == script.size()) in_w.reset();
        }
        if (out_r && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t r = ::read(out_r.get(), buf, sizeof buf);
            if (r > 0) result.append(buf, static_cast<std::size_t>(r));
            else if (r == 0 || errno != EINTR) out_r.reset();
        }
        if (done == script.size() && in_w) in_w.reset();
    }
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || result.find("<svg") == std::string::npos)
        throw ipc::error(ipc::exit_code::internal, "gnuplot failed to draw the plot", EPROTO);
    return result;
}

std::string gp_quote(const std::string& s) {
    std::string q = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') q += '\\';
        q += c;
    }
    return q + "\"";
}

struct series_point {
    std::uint64_t size;
    std::optional<double> p50, rate_bytes;
};

} // namespace

saved_run load_run(const std::string& path) {
    saved_run run;
    run.label = path == "-" ? "stdin" : path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
    std::string text;
    if (path == "-") {
        std::ostringstream ss;
        ss << std::cin.rdbuf();
        text = ss.str();
    } else {
        std::ifstream in(path, std::ios::binary);
        if (!in) throw ipc::system_error(errno ? errno : ENOENT, "open", "results file", path);
        std::ostringstream ss;
        ss << in.rdbuf();
        text = ss.str();
    }
    auto bad = [&](const std::string& why) {
        return ipc::data_error(fmt::format("{}: {} (expected the output of ipc-bench run --json or -o jsonl)", path, why));
    };
    auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string::npos) throw bad("empty");
    if (json::accept(text)) {
        json doc = json::parse(text);
        if (doc.is_object() && doc.contains("results") && doc["results"].is_array()) {
            for (auto& r : doc["results"]) run.results.push_back(r);
            if (doc.contains("host")) run.host = doc["host"];
            return run;
        }
        if (doc.is_object() && doc.contains("mechanism")) {
            run.results.push_back(doc);
            return run;
        }
        throw bad("a JSON document without \"results\"");
    }
    std::istringstream lines(text);
    std::string line;
    std::size_t n = 0;
    while (std::getline(lines, line)) {
        ++n;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        if (!json::accept(line)) throw bad(fmt::format("line {} is not JSON", n));
        json r = json::parse(line);
        if (!r.is_object() || !r.contains("mechanism")) throw bad(fmt::format("line {} is not a result record", n));
        run.results.push_back(std::move(r));
    }
    return run;
}

std::string markdown(const std::vector<saved_run>& runs) {
    std::string md;
    for (const auto& run : runs) {
        md += fmt::format("## {}\n\n", run.label);
        const json* first = nullptr;
        for (const auto& r : run.results)
            if (r.contains("host_kernel")) {
                first = &r;
                break;
            }
        if (run.host.is_object())
            md += fmt::format("Host: {} · {} · {} CPUs\n\n", run.host.value("kernel", "?"), run.host.value("cpu_model", "?"),
                              run.host.value("cpus", 0));
        else if (first)
            md += fmt::format("Host: {} · {} · {} CPUs\n\n", first->value("host_kernel", "?"),
                              first->value("host_cpu_model", "?"), first->value("host_cpus", 0));
        md += "| mechanism | size | path | p50 | p99 | messages/s | bytes/s | raw p50 | raw messages/s | placement | note |\n";
        md += "|---|---:|---|---:|---:|---:|---:|---:|---:|---|---|\n";
        for (const auto& r : run.results) {
            if (!r.is_object() || !r.contains("mechanism")) continue;
            std::uint64_t size = r.value("size_bytes", std::uint64_t{0});
            auto str = [&](const char* k) {
                auto it = r.find(k);
                return it != r.end() && it->is_string() ? it->get<std::string>() : std::string("-");
            };
            md += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", str("mechanism"),
                              ipc::parse::human_size(size), str("impl"), ns_cell(number(r, "p50_ns")), ns_cell(number(r, "p99_ns")),
                              rate_cell(number(r, "msgs_per_s"), ""), rate_cell(number(r, "bytes_per_s"), "B"),
                              ns_cell(number(r, "raw_p50_ns")), rate_cell(number(r, "raw_msgs_per_s"), ""),
                              str("placement"), r.value("status", "") == "ok" ? "" : str("status") + ": " + str("note"));
        }
        md += "\n";
    }
    return md;
}

std::string svg(const std::vector<saved_run>& runs) {
    // One series per mechanism (per file, when several), in first-seen order.
    std::vector<std::string> order;
    std::map<std::string, std::vector<series_point>> series;
    for (const auto& run : runs)
        for (const auto& r : run.results) {
            if (!usable(r)) continue;
            std::string name = r["mechanism"].get<std::string>();
            if (runs.size() > 1) name += " (" + run.label + ")";
            if (!series.count(name)) order.push_back(name);
            series[name].push_back({r["size_bytes"].get<std::uint64_t>(), number(r, "p50_ns"), number(r, "bytes_per_s")});
        }
    if (order.empty()) throw ipc::data_error("nothing to plot: no result with status ok");
    std::string script =
        "set terminal svg size 1000,1100 dynamic noenhanced font 'sans,11' background rgb 'white'\n"
        "set multiplot layout 2,1\n"
        "set logscale xy\nset grid\nset key outside right top\n"
        "set xlabel 'message size (bytes)'\n";
    auto data = [&](bool latency) {
        std::string blocks;
        int i = 0;
        for (const auto& name : order) {
            auto pts = series[name];
            std::sort(pts.begin(), pts.end(), [](auto& a, auto& b) { return a.size < b.size; });
            blocks += fmt::format("$d{}{} << EOD\n", latency ? "l" : "t", i);
            std::size_t rows = 0;
            for (const auto& p : pts) {
                auto v = latency ? p.p50 : p.rate_bytes;
                if (!v || *v <= 0) continue;
                blocks += fmt::format("{} {}\n", p.size, *v);
                ++rows;
            }
            if (rows == 0) blocks += "1 NaN\n";
            blocks += "EOD\n";
            ++i;
        }
        return blocks;
    };
    auto plot = [&](bool latency) {
        std::string p = "plot ";
        for (std::size_t i = 0; i < order.size(); ++i)
            p += fmt::format("{}$d{}{} using 1:2 with linespoints title {}", i ? ", " : "", latency ? "l" : "t", i,
                             gp_quote(order[i]));
        return p + "\n";
    };
    script += data(true) + data(false);
    script += "set title 'round-trip latency, median'\nset ylabel 'p50 (ns)'\n" + plot(true);
    script += "set title 'one-way throughput'\nset ylabel 'bytes per second'\n" + plot(false);
    script += "unset multiplot\n";
    return run_gnuplot(script);
}

double comparison::worst_pct() const {
    double w = -1e300;
    for (auto v : {p50_worse_pct, p99_worse_pct, rate_worse_pct})
        if (v) w = std::max(w, *v);
    return w == -1e300 ? 0 : w;
}

std::vector<comparison> compare(const saved_run& old_run, const saved_run& new_run,
                                std::vector<std::string>& unmatched) {
    auto key = [](const json& r) {
        return std::pair{r["mechanism"].get<std::string>(), r["size_bytes"].get<std::uint64_t>()};
    };
    std::map<std::pair<std::string, std::uint64_t>, const json*> old_by;
    for (const auto& r : old_run.results)
        if (usable(r)) old_by[key(r)] = &r;
    std::set<std::pair<std::string, std::uint64_t>> matched;
    std::vector<comparison> out;
    auto pct = [](std::optional<double> o, std::optional<double> n, bool higher_is_better) -> std::optional<double> {
        if (!o || !n || *o <= 0) return std::nullopt;
        double change = (*n - *o) / *o * 100.0;
        return higher_is_better ? -change : change;
    };
    for (const auto& r : new_run.results) {
        if (!usable(r)) continue;
        auto k = key(r);
        auto it = old_by.find(k);
        if (it == old_by.end()) {
            unmatched.push_back(fmt::format("{} at {} bytes: only in {}", k.first, k.second, new_run.label));
            continue;
        }
        matched.insert(k);
        const json& o = *it->second;
        comparison c;
        c.mechanism = k.first;
        c.size = k.second;
        c.old_p50 = number(o, "p50_ns"), c.new_p50 = number(r, "p50_ns");
        c.old_p99 = number(o, "p99_ns"), c.new_p99 = number(r, "p99_ns");
        c.old_rate = number(o, "msgs_per_s"), c.new_rate = number(r, "msgs_per_s");
        c.p50_worse_pct = pct(c.old_p50, c.new_p50, false);
        c.p99_worse_pct = pct(c.old_p99, c.new_p99, false);
        c.rate_worse_pct = pct(c.old_rate, c.new_rate, true);
        out.push_back(c);
    }
    for (const auto& [k, r] : old_by)
        if (!matched.count(k))
            unmatched.push_back(fmt::format("{} at {} bytes: only in {}", k.first, k.second, old_run.label));
    return out;
}

} // namespace bench
