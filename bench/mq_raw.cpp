// SPDX-License-Identifier: MIT
// The raw baseline for ipc-mq's throughput: the same messages through the same
// kind of queue with nothing but mq_send in one process and mq_receive in
// another. Prints messages per second.
// Usage: bench_mq_raw QUEUE FILE   (one message per line of FILE)
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <fcntl.h>
#include <mqueue.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: bench_mq_raw QUEUE FILE\n");
        return 64;
    }
    std::vector<std::string> lines;
    {
        std::ifstream in(argv[2]);
        for (std::string l; std::getline(in, l);) lines.push_back(l);
    }
    mqd_t q = mq_open(argv[1], O_RDWR);
    if (q == (mqd_t)-1) {
        std::perror("mq_open");
        return 66;
    }
    mq_attr a{};
    mq_getattr(q, &a);
    auto start = std::chrono::steady_clock::now();
    pid_t pid = fork();
    if (pid == 0) {
        std::vector<char> buf(static_cast<std::size_t>(a.mq_msgsize));
        unsigned prio;
        for (std::size_t i = 0; i < lines.size(); ++i)
            if (mq_receive(q, buf.data(), buf.size(), &prio) < 0) _exit(1);
        _exit(0);
    }
    for (const auto& l : lines)
        if (mq_send(q, l.data(), l.size(), 0) < 0) {
            std::perror("mq_send");
            return 74;
        }
    int st = 0;
    waitpid(pid, &st, 0);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("%.0f\n", static_cast<double>(lines.size()) / s);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}
