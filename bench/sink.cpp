// SPDX-License-Identifier: MIT
// Consumes stdin (a pipe) at almost no cost: splice(2) into /dev/null. Prints
// the byte count, so a run that lost data is caught.
#include <cerrno>
#include <cstdio>
#include <cstring>

#include <fcntl.h>
#include <unistd.h>

int main() {
    int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    unsigned long long total = 0;
    ::fcntl(STDIN_FILENO, F_SETPIPE_SZ, 1 << 20);
    char buf[1 << 16];
    bool use_splice = true;
    for (;;) {
        ssize_t n = use_splice ? ::splice(STDIN_FILENO, nullptr, null, nullptr, 1 << 20, SPLICE_F_MOVE)
                               : ::read(STDIN_FILENO, buf, sizeof buf);
        if (n < 0 && errno == EINVAL && use_splice) {
            use_splice = false;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            std::fprintf(stderr, "bench_sink: %s\n", std::strerror(errno));
            return 74;
        }
        if (n == 0) break;
        total += static_cast<unsigned long long>(n);
    }
    std::printf("%llu\n", total);
    return 0;
}
