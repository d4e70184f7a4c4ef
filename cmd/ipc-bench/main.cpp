// SPDX-License-Identifier: MIT
// ipc-bench: every mechanism side by side (latency percentiles, throughput,
// size sweeps, with raw system-call baselines), and a host check for CI.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include <fmt/format.h>

#include "host.hpp"
#include "ipc/cli.hpp"
#include "ipc/error.hpp"
#include "ipc/parse.hpp"
#include "ipc/stats.hpp"
#include "probe.hpp"
#include "report.hpp"
#include "units.hpp"
#include "peers.hpp"

namespace {

using namespace ipc;
using bench::impl;

struct options {
    std::string mechanisms, sizes, iterations, warmup, duration, cpus = "0,1";
    std::uint64_t rounds = 3;
    bool rounds_set = false;
    bool verify = false, quick = false, peers = false;
    std::string only;  // latency | throughput
    std::string require;
    std::vector<std::string> files;
    std::string svg_out, markdown_out;
    bool compare = false;
    std::optional<double> fail_over;
};

std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> v;
    std::size_t start = 0;
    while (start <= s.size()) {
        auto comma = s.find(',', start);
        if (comma == std::string::npos) comma = s.size();
        if (comma > start) v.push_back(s.substr(start, comma - start));
        start = comma + 1;
    }
    return v;
}

using bench::ns_text;
using bench::rate_text;

// Shows what is running on a terminal's stderr, one line rewritten in place.
class progress {
public:
    progress() : on_(::isatty(STDERR_FILENO) && !cli::quiet()) {}
    ~progress() { clear(); }
    void show(const std::string& what) {
        if (!on_) return;
        std::string line = what.substr(0, 78);
        std::fprintf(stderr, "\r%-78s", line.c_str());
        std::fflush(stderr);
        shown_ = true;
    }
    void clear() {
        if (on_ && shown_) std::fprintf(stderr, "\r%78s\r", "");
        shown_ = false;
    }

private:
    bool on_;
    bool shown_ = false;
};

struct figures {
    std::vector<std::int64_t> samples;
    std::vector<double> rates;  // messages per second, one per round
    std::uint64_t messages = 0;
    bench::faults f;
    std::string placement;
    bool ran = false;
};

void add_latency(out::record& r, const std::string& prefix, figures& fg, bool text) {
    auto s = stats::summarize(fg.samples);
    auto num = [&](const std::string& key, double v) {
        if (!fg.ran || s.count == 0) r.add(prefix + key, nullptr);
        else if (text) r.add(prefix + key, v, ns_text(v));
        else r.add(prefix + key, v);
    };
    if (!text) r.add(prefix + "samples", fg.ran ? out::json(s.count) : out::json(nullptr));
    num("p50_ns", static_cast<double>(s.p50));
    if (!text) num("p90_ns", static_cast<double>(s.p90));
    num("p99_ns", static_cast<double>(s.p99));
    if (!text) {
        num("p999_ns", static_cast<double>(s.p999));
        num("min_ns", static_cast<double>(s.min));
        num("max_ns", static_cast<double>(s.max));
        num("mean_ns", s.mean);
    }
}

void add_throughput(out::record& r, const std::string& prefix, const figures& fg, std::size_t size, bool text,
                    bool streams) {
    if (!streams || fg.rates.empty()) {
        r.add(prefix + "msgs_per_s", nullptr);
        r.add(prefix + "bytes_per_s", nullptr);
        return;
    }
    double m = stats::median(fg.rates);
    if (text) {
        r.add(prefix + "msgs_per_s", m, rate_text(m) + "/s");
        r.add(prefix + "bytes_per_s", m * static_cast<double>(size), rate_text(m * static_cast<double>(size)) + "B/s");
    } else {
        r.add(prefix + "msgs_per_s", m);
        r.add(prefix + "bytes_per_s", m * static_cast<double>(size));
    }
}

int do_run(const options& o) {
    bench::settings s;
    std::string sizes = o.sizes.empty() ? (o.quick ? "64,64K" : "64,4K,64K") : o.sizes;
    s.iterations = o.iterations.empty() ? (o.quick ? 1000 : 10000) : parse::unsigned_number(o.iterations, "--iterations");
    // At least 1000: a ring or buffer touched for the first time costs page
    // faults that are no part of the steady state.
    s.warmup = o.warmup.empty() ? std::max<std::uint64_t>(1000, s.iterations / 10)
                                : parse::unsigned_number(o.warmup, "--warmup");
    auto d = parse::duration(o.duration.empty() ? (o.quick ? "100ms" : "500ms") : o.duration);
    if (!d || d->count() <= 0) throw usage_error("--duration must be a finite time above 0");
    s.duration = *d;
    s.verify = o.verify;
    std::uint64_t rounds = o.rounds_set ? o.rounds : (o.quick ? 1 : 3);
    if (rounds == 0) throw usage_error("--rounds must be at least 1");
    if (s.iterations == 0) throw usage_error("--iterations must be at least 1");
    std::string cpus = o.cpus;
    if (cpus == "0,1" && ::sysconf(_SC_NPROCESSORS_ONLN) < 2) cpus = "same";
    s.where = bench::parse_placement(cpus);
    bool lat_on = o.only.empty() || o.only == "latency";
    bool thr_on = o.only.empty() || o.only == "throughput";
    if (!lat_on && !thr_on) throw usage_error("--only takes latency or throughput, not '" + o.only + "'");

    std::vector<std::uint64_t> size_list;
    for (const auto& w : split(sizes)) {
        auto v = parse::size(w);
        if (v == 0) throw usage_error("a message size must be at least 1 byte");
        if (v > (64u << 20)) throw usage_error(fmt::format("message size {} is over the 64 MiB this benchmark allows", w));
        size_list.push_back(v);
    }
    if (size_list.empty()) throw usage_error("--sizes needs at least one size");
    std::vector<const bench::mechanism*> chosen;
    if (o.mechanisms.empty() || o.mechanisms == "all") {
        for (const auto& m : bench::mechanisms())
            if (!m.peer || o.peers) chosen.push_back(&m);
        if (o.peers)
            for (const auto& missing : bench::peers_missing()) cli::warn("no peer " + missing);
    } else {
        for (const auto& w : split(o.mechanisms)) {
            const auto* m = bench::find(w);
            if (!m) {
                std::string names;
                for (const auto& x : bench::mechanisms()) names += (names.empty() ? "" : ", ") + x.name;
                throw usage_error(fmt::format("no mechanism '{}' (there are: {})", w, names));
            }
            chosen.push_back(m);
        }
    }

    bool text = cli::format() == out::format::text;
    auto h = bench::host();
    auto host_j = bench::host_json();
    std::vector<out::record> records;
    bool failed = false;
    progress bar;
    std::size_t step = 0, steps = chosen.size() * size_list.size();
    for (const auto* m : chosen) {
        auto unusable = m->unusable();
        bool signal_done = false;
        for (auto size : size_list) {
            ++step;
            // A signal carries no data: one row (8 bytes), whatever the sizes.
            if (!m->carries_data) {
                if (signal_done) continue;
                signal_done = true;
            }
            std::size_t wire = m->carries_data ? size : 8;
            out::record r;
            r.add("mechanism", m->name).add("size_bytes", wire);
            std::string skip;
            if (unusable) skip = *unusable;
            else if (m->max_size && wire > m->max_size)
                skip = fmt::format("over its largest message ({} bytes here)", m->max_size);
            figures tk, raw;
            std::string error_text;
            if (skip.empty()) {
                try {
                    bool has_raw = m->has_toolkit && m->name != "shm-block" && !m->name.starts_with("mbox");
                    impl main_impl = m->has_toolkit ? impl::toolkit : impl::raw;
                    for (std::uint64_t round = 0; round < rounds; ++round) {
                        // Alternating, so that a change in the machine's load
                        // hits both alike.
                        for (impl which : {impl::raw, impl::toolkit}) {
                            if (which == impl::raw && !has_raw && main_impl != impl::raw) continue;
                            if (which == impl::toolkit && !m->has_toolkit) continue;
                            figures& fg = which == main_impl ? tk : raw;
                            const char* label = which == impl::toolkit ? "toolkit" : "raw";
                            if (lat_on) {
                                bar.show(fmt::format("[{}/{}] {} {} B: round trips ({}), round {}", step, steps, m->name,
                                                     wire, label, round + 1));
                                auto l = bench::measure_latency(*m, which, wire, s);
                                fg.samples.insert(fg.samples.end(), l.samples_ns.begin(), l.samples_ns.end());
                                fg.f += l.f;
                                fg.placement = l.placement;
                                fg.ran = true;
                            }
                            if (thr_on && m->streams) {
                                bar.show(fmt::format("[{}/{}] {} {} B: stream ({}), round {}", step, steps, m->name,
                                                     wire, label, round + 1));
                                auto t = bench::measure_throughput(*m, which, wire, s);
                                fg.rates.push_back(stats::rate(t.received, t.elapsed_ns));
                                fg.messages += t.received;
                                fg.f += t.f;
                                fg.placement = t.placement;
                                fg.ran = true;
                            }
                        }
                    }
                } catch (const std::exception& e) {
                    error_text = e.what();
                    failed = true;
                }
            }
            bool measured = skip.empty() && error_text.empty();
            bool has_raw_col = measured && !raw.samples.empty() + !raw.rates.empty();
            r.add("impl", !measured ? out::json(nullptr) : out::json(m->has_toolkit ? "toolkit" : "raw"));
            if (!text) r.add("rounds", measured ? out::json(rounds) : out::json(nullptr));
            add_latency(r, "", tk, text);
            add_throughput(r, "", tk, wire, text, m->streams && measured);
            if (!has_raw_col) raw.ran = false;
            if (text) {
                // The text table keeps to what fits a terminal: the raw
                // baseline's median and rate beside the toolkit's.
                auto rs = stats::summarize(raw.samples);
                auto rp = static_cast<double>(rs.p50);
                bool have_p = raw.ran && rs.count;
                r.add("raw_p50_ns", have_p ? out::json(rp) : out::json(nullptr), have_p ? ns_text(rp) : "-");
                double rr = raw.rates.empty() ? 0 : stats::median(raw.rates);
                bool have_r = raw.ran && !raw.rates.empty();
                r.add("raw_msgs_per_s", have_r ? out::json(rr) : out::json(nullptr), have_r ? rate_text(rr) + "/s" : "-");
            } else {
                add_latency(r, "raw_", raw, text);
                add_throughput(r, "raw_", raw, wire, text, m->streams && has_raw_col);
            }
            bool checked = s.verify && m->carries_data && wire >= bench::verify_header && measured;
            bench::faults f = tk.f;
            f += raw.f;
            if (!text || s.verify) {
                auto cnt = [&](std::uint64_t v) { return checked ? out::json(v) : out::json(nullptr); };
                r.add("lost", cnt(f.lost)).add("duplicated", cnt(f.duplicated));
                r.add("reordered", cnt(f.reordered)).add("corrupted", cnt(f.corrupted));
            }
            if (checked && !m->lossy && (f.lost || f.duplicated || f.reordered || f.corrupted))
                cli::warn(fmt::format("{} at {} bytes: {} lost, {} duplicated, {} reordered, {} corrupted", m->name,
                                      wire, f.lost, f.duplicated, f.reordered, f.corrupted));
            r.add("placement", measured ? out::json(tk.placement) : out::json(nullptr));
            r.add("status", !skip.empty() ? "skipped" : !error_text.empty() ? "failed" : "ok");
            r.add("note", !skip.empty() ? out::json(skip) : !error_text.empty() ? out::json(error_text) : out::json(nullptr));
            if (!text) {
                r.add("host_kernel", h.kernel).add("host_cpu_model", h.cpu_model).add("host_cpus", h.cpus);
            }
            if (!error_text.empty()) cli::warn(fmt::format("{} at {} bytes failed: {}", m->name, wire, error_text));
            records.push_back(std::move(r));
        }
    }
    bar.clear();
    if (cli::format() == out::format::json && !cli::quiet()) {
        // The one document: results and the host they were measured on.
        out::json doc;
        doc["results"] = out::json::array();
        for (const auto& r : records) doc["results"].push_back(r.to_json());
        doc["host"] = host_j;
        out::stdout_stream().write(doc.dump(2, ' ', false, out::json::error_handler_t::replace) + "\n");
    } else {
        if (text && !cli::quiet())
            out::stdout_stream().write(fmt::format("# {} · {} · {} CPUs · placement {}{}\n", h.kernel, h.cpu_model,
                                                   h.cpus, s.where.describe(),
                                                   s.verify ? " · verified" : ""));
        cli::emit("results", records);
    }
    return failed ? 1 : 0;
}

int do_check(const options& o) {
    std::vector<std::pair<std::string, std::string>> wanted;  // check name, the word that asked for it
    for (const auto& w : split(o.require)) {
        auto names = bench::required_names(w);
        if (!names) throw usage_error(fmt::format("--require: no check or mechanism '{}'", w));
        for (auto& n : *names) wanted.emplace_back(n, w);
    }
    auto results = bench::run_checks();
    std::vector<out::record> records;
    for (const auto& c : results) {
        out::record r;
        bool required = std::any_of(wanted.begin(), wanted.end(), [&](auto& p) { return p.first == c.name; });
        r.add("check", c.name).add("ok", c.ok, c.ok ? "yes" : "NO").add("required", required, required ? "yes" : "");
        r.add("value", c.value).add("detail", c.detail);
        records.push_back(std::move(r));
    }
    cli::emit("checks", records);
    int status = 0;
    for (const auto& [name, word] : wanted) {
        auto it = std::find_if(results.begin(), results.end(), [&](auto& c) { return c.name == name; });
        if (it != results.end() && !it->ok) {
            cli::warn(fmt::format("required {} is unusable: {}", name, it->detail));
            status = 1;
        }
    }
    return status;
}

// Writes a whole file, or nothing: a temporary beside it, renamed over it.
void write_file(const std::string& path, const std::string& content) {
    std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out) throw system_error(errno, "create", "file", tmp);
        out << content;
        out.flush();
        if (!out) throw system_error(errno ? errno : EIO, "write", "file", tmp);
    }
    if (std::rename(tmp.c_str(), path.c_str()) < 0) {
        int e = errno;
        std::remove(tmp.c_str());
        throw system_error(e, "write", "file", path);
    }
}

out::json num_or_null(std::optional<double> v) { return v ? out::json(*v) : out::json(nullptr); }

int do_report(const options& o) {
    if (o.files.empty()) throw usage_error("report needs at least one results FILE");
    if (o.fail_over && !o.compare) throw usage_error("--fail-over goes with --compare OLD NEW");
    if (o.fail_over && *o.fail_over < 0) throw usage_error("--fail-over takes a percentage of 0 or more");
    if (o.compare && o.files.size() != 2) throw usage_error("--compare takes two files: OLD NEW");
    std::vector<bench::saved_run> runs;
    for (const auto& f : o.files) runs.push_back(bench::load_run(f));
    if (o.compare) {
        if (!o.svg_out.empty() || !o.markdown_out.empty())
            throw usage_error("--compare prints ratios; --svg and --markdown go without it");
        std::vector<std::string> unmatched;
        auto cmp = bench::compare(runs[0], runs[1], unmatched);
        bool text = cli::format() == out::format::text;
        std::vector<out::record> records;
        std::vector<std::string> worse;
        for (const auto& c : cmp) {
            out::record r;
            r.add("mechanism", c.mechanism).add("size_bytes", c.size);
            auto pct = [&](const char* key, std::optional<double> v) {
                if (text) r.add(key, num_or_null(v), v ? fmt::format("{:+.1f}%", *v) : "-");
                else r.add(key, num_or_null(v));
            };
            auto ns = [&](const char* key, std::optional<double> v) {
                if (text) r.add(key, num_or_null(v), v ? ns_text(*v) : "-");
                else r.add(key, num_or_null(v));
            };
            ns("old_p50_ns", c.old_p50);
            ns("new_p50_ns", c.new_p50);
            pct("p50_worse_pct", c.p50_worse_pct);
            ns("old_p99_ns", c.old_p99);
            ns("new_p99_ns", c.new_p99);
            pct("p99_worse_pct", c.p99_worse_pct);
            if (text) {
                r.add("old_msgs_per_s", num_or_null(c.old_rate), c.old_rate ? rate_text(*c.old_rate) + "/s" : "-");
                r.add("new_msgs_per_s", num_or_null(c.new_rate), c.new_rate ? rate_text(*c.new_rate) + "/s" : "-");
            } else {
                r.add("old_msgs_per_s", num_or_null(c.old_rate)).add("new_msgs_per_s", num_or_null(c.new_rate));
            }
            pct("msgs_worse_pct", c.rate_worse_pct);
            bool regressed = o.fail_over && c.worst_pct() > *o.fail_over;
            r.add("regressed", regressed, regressed ? "YES" : "");
            if (regressed)
                worse.push_back(fmt::format("{} at {} bytes got worse by {:.1f}%", c.mechanism, c.size, c.worst_pct()));
            records.push_back(std::move(r));
        }
        cli::emit("comparisons", records);
        for (const auto& u : unmatched) cli::warn(u);
        for (const auto& w : worse) cli::warn(fmt::format("{} (over --fail-over {}%)", w, *o.fail_over));
        if (cmp.empty()) throw data_error("the two runs have no mechanism and size in common");
        return worse.empty() ? 0 : 1;
    }
    if (!o.svg_out.empty()) write_file(o.svg_out, bench::svg(runs));
    if (!o.markdown_out.empty()) write_file(o.markdown_out, bench::markdown(runs));
    if (o.svg_out.empty() && o.markdown_out.empty() && !cli::quiet()) {
        if (cli::format() == out::format::text) {
            out::stdout_stream().write(bench::markdown(runs));
        } else {
            // The runs' records, merged, in the chosen format.
            out::json all = out::json::array();
            for (const auto& run : runs)
                for (const auto& r : run.results) all.push_back(r);
            if (cli::format() == out::format::json) {
                out::json doc;
                doc["results"] = all;
                out::stdout_stream().write(doc.dump(2) + "\n");
            } else if (cli::format() == out::format::jsonl) {
                for (const auto& r : all) out::stdout_stream().write(r.dump() + "\n");
            } else {
                throw usage_error("report writes Markdown (text), json or jsonl; CSV comes from run -o csv");
            }
        }
    }
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    cli::app app("ipc-bench", "Measure every IPC mechanism side by side, and check a host for CI.");
    options o;

    auto* run = app.verb("run", "Measure latency and throughput of each mechanism", [&] { return do_run(o); });
    run->add_option("-M,--mechanisms", o.mechanisms, "Comma-separated mechanisms (default: all)")->type_name("LIST");
    run->add_option("-s,--sizes", o.sizes, "Comma-separated message sizes (default 64,4K,64K)")->type_name("LIST");
    run->add_option("-i,--iterations", o.iterations, "Round trips per latency run (default 10000)")->type_name("N");
    run->add_option("--warmup", o.warmup, "Round trips before measuring (default: a tenth of --iterations, at least 1000)")
        ->type_name("N");
    run->add_option("-d,--duration", o.duration, "Length of a stream run, and cap of a latency run (default 500ms)")
        ->type_name("DUR");
    run->add_option("-r,--rounds", o.rounds, "Alternating toolkit/raw rounds per figure (default 3)")
        ->type_name("N")
        ->each([&](const std::string&) { o.rounds_set = true; });
    run->add_option("--cpus", o.cpus, "Where the two processes run: A,B (default 0,1), same, or none")
        ->type_name("PLACEMENT");
    run->add_option("--only", o.only, "Measure only latency or throughput")->type_name("WHAT");
    run->add_flag("--verify", o.verify, "Sequence number and checksum in every message; count faults");
    run->add_flag("--quick", o.quick, "Every mechanism briefly (sizes 64,64K; under 30 s)");
    run->add_flag("--peers", o.peers, "Also measure nng and ZeroMQ over ipc://, when built with them");

    auto* check = app.verb("check", "Check that each mechanism can be used here", [&] { return do_check(o); });
    check->add_option("--require", o.require, "Exit 1 unless these are usable (e.g. mq,shm,tcp)")->type_name("LIST");

    auto* report = app.verb("report", "Render saved results as Markdown or an SVG plot, or compare two runs",
                            [&] { return do_report(o); });
    report->add_option("files", o.files, "Results of run --json or -o jsonl (- for stdin)")->type_name("FILE");
    report->add_option("--svg", o.svg_out, "Write latency and throughput against size as an SVG plot (gnuplot)")
        ->type_name("FILE");
    report->add_option("--markdown", o.markdown_out, "Write the Markdown table to FILE")->type_name("FILE");
    report->add_flag("--compare", o.compare, "Ratios between two runs: FILE OLD, FILE NEW");
    report->add_option("--fail-over", o.fail_over, "With --compare: exit 1 when a figure got worse by more than PCT%")
        ->type_name("PCT");

    return app.run(argc, argv);
}
