// SPDX-License-Identifier: MIT
// The statistics ipc-bench reports, on inputs whose answers are known.
#include <catch2/catch.hpp>

#include <algorithm>
#include <numeric>
#include <random>

#include "ipc/stats.hpp"

using namespace ipc;

TEST_CASE("stats: nearest-rank percentiles of 1..100", "[stats]") {
    std::vector<std::int64_t> v(100);
    std::iota(v.begin(), v.end(), 1);
    CHECK(stats::percentile(v, 50) == 50);
    CHECK(stats::percentile(v, 90) == 90);
    CHECK(stats::percentile(v, 99) == 99);
    CHECK(stats::percentile(v, 99.9) == 100);  // rank ceil(99.9) = 100
    CHECK(stats::percentile(v, 100) == 100);
    CHECK(stats::percentile(v, 0.5) == 1);
    CHECK(stats::percentile(v, 1) == 1);
    CHECK(stats::percentile(v, 1.5) == 2);
}

TEST_CASE("stats: percentiles are measured values, never interpolated", "[stats]") {
    std::vector<std::int64_t> v{10, 20};
    CHECK(stats::percentile(v, 50) == 10);  // rank 1
    CHECK(stats::percentile(v, 51) == 20);  // rank ceil(1.02) = 2
    std::vector<std::int64_t> thousand(1000);
    std::iota(thousand.begin(), thousand.end(), 1);
    // 99.9% of 1000 is exactly rank 999: no floating-point hair may make it 1000.
    CHECK(stats::percentile(thousand, 99.9) == 999);
    CHECK(stats::percentile(thousand, 99) == 990);
    std::vector<std::int64_t> none;
    CHECK(stats::percentile(none, 50) == 0);
}

TEST_CASE("stats: summary of shuffled samples", "[stats]") {
    std::vector<std::int64_t> v(1000);
    std::iota(v.begin(), v.end(), 1);
    std::shuffle(v.begin(), v.end(), std::mt19937(3));
    auto s = stats::summarize(v);
    CHECK(s.count == 1000);
    CHECK(s.min == 1);
    CHECK(s.max == 1000);
    CHECK(s.mean == Approx(500.5));
    CHECK(s.p50 == 500);
    CHECK(s.p90 == 900);
    CHECK(s.p99 == 990);
    CHECK(s.p999 == 999);
    CHECK(std::is_sorted(v.begin(), v.end()));
    // One outlier moves max and mean, not the median.
    v.push_back(1'000'000);
    auto t = stats::summarize(v);
    CHECK(t.max == 1'000'000);
    CHECK(t.p50 == 501);
    CHECK(t.mean > 1000);
    std::vector<std::int64_t> empty;
    CHECK(stats::summarize(empty).count == 0);
}

TEST_CASE("stats: median and rate", "[stats]") {
    CHECK(stats::median({}) == 0);
    CHECK(stats::median({3}) == 3);
    CHECK(stats::median({5, 1, 3}) == 3);
    CHECK(stats::median({4, 1, 3, 2}) == 2.5);
    CHECK(stats::rate(1000, 1'000'000'000) == Approx(1000));
    CHECK(stats::rate(1, 1000) == Approx(1e6));
    CHECK(stats::rate(5, 0) == 0);
    CHECK(stats::rate(5, -1) == 0);
}
