// SPDX-License-Identifier: MIT
#include "ipc/stats.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace ipc::stats {

std::int64_t percentile(std::span<const std::int64_t> sorted, double p) {
    if (sorted.empty()) return 0;
    p = std::clamp(p, 0.0, 100.0);
    // Rank ceil(p/100 * n), at least 1. The product is rounded first so that
    // e.g. 99.9% of 1000 is rank 999, not 1000 through a floating-point hair.
    double exact = p / 100.0 * static_cast<double>(sorted.size());
    auto rank = static_cast<std::size_t>(std::ceil(std::round(exact * 1e9) / 1e9));
    rank = std::clamp<std::size_t>(rank, 1, sorted.size());
    return sorted[rank - 1];
}

summary summarize(std::vector<std::int64_t>& samples) {
    summary s;
    s.count = samples.size();
    if (samples.empty()) return s;
    std::sort(samples.begin(), samples.end());
    s.min = samples.front();
    s.max = samples.back();
    long double sum = std::accumulate(samples.begin(), samples.end(), 0.0L);
    s.mean = static_cast<double>(sum / static_cast<long double>(samples.size()));
    s.p50 = percentile(samples, 50);
    s.p90 = percentile(samples, 90);
    s.p99 = percentile(samples, 99);
    s.p999 = percentile(samples, 99.9);
    return s;
}

double median(std::vector<double> values) {
    if (values.empty()) return 0;
    std::sort(values.begin(), values.end());
    std::size_t n = values.size();
    return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

double rate(std::uint64_t count, std::int64_t elapsed_ns) {
    if (elapsed_ns <= 0) return 0;
    return static_cast<double>(count) * 1e9 / static_cast<double>(elapsed_ns);
}

} // namespace ipc::stats
