// SPDX-License-Identifier: MIT
// Start-up time of a command against a baseline command, alternating the two
// (A B A B ...): prints each median in microseconds and the ratio.
// Usage: bench_startup RUNS -- CMD... -- BASELINE...
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

static double run_once(std::vector<char*>& argv) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    auto start = std::chrono::steady_clock::now();
    pid_t pid;
    if (posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ) != 0) {
        std::perror("posix_spawn");
        std::exit(69);
    }
    int st;
    waitpid(pid, &st, 0);
    posix_spawn_file_actions_destroy(&fa);
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
}

static double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

int main(int argc, char** argv) {
    if (argc < 5 || std::strcmp(argv[2], "--") != 0) {
        std::fprintf(stderr, "usage: bench_startup RUNS -- CMD... -- BASELINE...\n");
        return 64;
    }
    int runs = std::atoi(argv[1]);
    std::vector<char*> a, b;
    int i = 3;
    for (; i < argc && std::strcmp(argv[i], "--") != 0; ++i) a.push_back(argv[i]);
    for (++i; i < argc; ++i) b.push_back(argv[i]);
    a.push_back(nullptr);
    b.push_back(nullptr);
    std::vector<double> ta, tb;
    for (int r = 0; r < 10; ++r) run_once(a), run_once(b);  // warm the page cache
    for (int r = 0; r < runs; ++r) {
        ta.push_back(run_once(a));
        tb.push_back(run_once(b));
    }
    double ma = median(ta), mb = median(tb);
    std::printf("%s: median %.0f us (min %.0f, max %.0f)\n", a[0], ma, *std::min_element(ta.begin(), ta.end()),
                *std::max_element(ta.begin(), ta.end()));
    std::printf("%s: median %.0f us (min %.0f, max %.0f)\n", b[0], mb, *std::min_element(tb.begin(), tb.end()),
                *std::max_element(tb.begin(), tb.end()));
    std::printf("ratio (medians): %.2fx\n", ma / mb);
    return 0;
}
