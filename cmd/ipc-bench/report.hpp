// SPDX-License-Identifier: MIT
// ipc-bench report: saved results as a Markdown table, an SVG plot (through
// gnuplot), or the ratios between two runs.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ipc/output.hpp"

namespace bench {

/// One saved result file: its records (from `run --json` or `-o jsonl`) and
/// the host, when the file has it.
struct saved_run {
    std::string label;  ///< the file's name, for legends
    std::vector<ipc::out::json> results;
    ipc::out::json host;
};

/// Reads a file written by `run --json` or `run -o jsonl` ("-": stdin); a
/// data error (65) naming the file and line when it is neither.
saved_run load_run(const std::string& path);

/// The Markdown table of the runs' results.
std::string markdown(const std::vector<saved_run>& runs);

/// Renders latency and throughput against message size as an SVG document,
/// through gnuplot; unavailable (69) when gnuplot is not installed.
std::string svg(const std::vector<saved_run>& runs);

/// One line of `report --compare`.
struct comparison {
    std::string mechanism;
    std::uint64_t size = 0;
    std::optional<double> old_p50, new_p50, old_p99, new_p99, old_rate, new_rate;
    /// Percent changes; positive means worse (slower round trips, fewer messages).
    std::optional<double> p50_worse_pct, p99_worse_pct, rate_worse_pct;
    double worst_pct() const;
};

/// Pairs the results of two runs by mechanism and size; what is in only one
/// of them is listed in `unmatched`.
std::vector<comparison> compare(const saved_run& old_run, const saved_run& new_run,
                                std::vector<std::string>& unmatched);

} // namespace bench
