// SPDX-License-Identifier: MIT
#pragma once

#include <cstdint>
#include <span>
#include <vector>

/// Statistics of measured samples, as ipc-bench reports them.
///
/// Percentiles use the nearest-rank method on the sorted samples: the p-th
/// percentile of n samples is the sample of rank ceil(p/100 * n) (1-based),
/// so every reported figure is a value that was measured, never an
/// interpolation between two. No sample is discarded as an outlier: max is
/// the slowest one seen.
namespace ipc::stats {

struct summary {
    std::size_t count = 0;
    std::int64_t min = 0, max = 0;
    double mean = 0;
    std::int64_t p50 = 0, p90 = 0, p99 = 0, p999 = 0;
};

/// The nearest-rank percentile p (0 < p <= 100) of sorted samples; 0 for none.
std::int64_t percentile(std::span<const std::int64_t> sorted, double p);

/// Sorts samples in place and summarises them.
summary summarize(std::vector<std::int64_t>& samples);

/// The median of values (the mean of the middle two for an even count); 0 for none.
double median(std::vector<double> values);

/// Events per second: count over elapsed nanoseconds; 0 when no time passed.
double rate(std::uint64_t count, std::int64_t elapsed_ns);

} // namespace ipc::stats
