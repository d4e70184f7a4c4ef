// SPDX-License-Identifier: MIT
// Writes N bytes to stdout (a pipe) at almost no cost of its own: vmsplice(2)
// hands the same pages to the pipe again and again, so a benchmark measures
// what sits between source and sink, not the source.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: bench_source BYTES\n");
        return 64;
    }
    unsigned long long total = std::strtoull(argv[1], nullptr, 10);
    constexpr std::size_t chunk = 1 << 20;
    std::vector<char> buf(chunk);
    for (std::size_t i = 0; i < chunk; ++i) buf[i] = static_cast<char>('a' + i % 26);
    ::fcntl(STDOUT_FILENO, F_SETPIPE_SZ, chunk);
    unsigned long long sent = 0;
    bool use_vmsplice = true;
    while (sent < total) {
        std::size_t want = static_cast<std::size_t>(std::min<unsigned long long>(chunk, total - sent));
        std::size_t off = static_cast<std::size_t>(sent % chunk);
        if (off + want > chunk) want = chunk - off;
        ssize_t n;
        if (use_vmsplice) {
            iovec iov{buf.data() + off, want};
            n = ::vmsplice(STDOUT_FILENO, &iov, 1, 0);
            if (n < 0 && errno == EBADF) {  // stdout is not a pipe
                use_vmsplice = false;
                continue;
            }
        } else {
            n = ::write(STDOUT_FILENO, buf.data() + off, want);
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            std::fprintf(stderr, "bench_source: %s\n", std::strerror(errno));
            return 74;
        }
        sent += static_cast<unsigned long long>(n);
    }
    return 0;
}
