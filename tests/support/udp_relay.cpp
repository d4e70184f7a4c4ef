// SPDX-License-Identifier: MIT
// A lossy UDP relay for the tests: listens on 127.0.0.1 (an ephemeral port it
// prints), forwards each client datagram to the server and each reply back,
// dropping and duplicating datagrams at random from a printed seed, so that
// a failing run can be repeated exactly.
//   udp_relay SERVER_PORT DROP_PERCENT DUP_PERCENT [SEED]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

int main(int argc, char** argv) {
    if (argc < 4) {
        std::fprintf(stderr, "usage: udp_relay SERVER_PORT DROP_PERCENT DUP_PERCENT [SEED]\n");
        return 64;
    }
    unsigned server_port = static_cast<unsigned>(std::atoi(argv[1]));
    int drop = std::atoi(argv[2]), dup = std::atoi(argv[3]);
    unsigned long seed = argc > 4 ? std::strtoul(argv[4], nullptr, 10) : std::random_device{}();
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int> pct(0, 99);

    int front = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);  // clients talk here
    int back = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);   // to the server
    sockaddr_in any{};
    any.sin_family = AF_INET;
    any.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(front, reinterpret_cast<sockaddr*>(&any), sizeof any) != 0) return 71;
    socklen_t len = sizeof any;
    ::getsockname(front, reinterpret_cast<sockaddr*>(&any), &len);
    sockaddr_in server{};
    server.sin_family = AF_INET;
    server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    server.sin_port = htons(static_cast<std::uint16_t>(server_port));
    std::printf("%u %lu\n", ntohs(any.sin_port), seed);
    std::fflush(stdout);
    std::fprintf(stderr, "udp_relay: seed %lu (drop %d%%, duplicate %d%%)\n", seed, drop, dup);

    sockaddr_in client{};
    socklen_t client_len = 0;
    char buf[65536];
    for (;;) {
        pollfd p[2] = {{front, POLLIN, 0}, {back, POLLIN, 0}};
        if (::poll(p, 2, -1) < 0) continue;
        for (int i = 0; i < 2; ++i) {
            if (!p[i].revents) continue;
            sockaddr_in from{};
            socklen_t fl = sizeof from;
            ssize_t n = ::recvfrom(p[i].fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &fl);
            if (n < 0) continue;
            if (i == 0) {
                client = from;
                client_len = fl;
            }
            if (pct(rng) < drop) continue;
            int copies = pct(rng) < dup ? 2 : 1;
            for (int c = 0; c < copies; ++c) {
                if (i == 0) ::sendto(back, buf, static_cast<std::size_t>(n), 0, reinterpret_cast<sockaddr*>(&server), sizeof server);
                else if (client_len) ::sendto(front, buf, static_cast<std::size_t>(n), 0, reinterpret_cast<sockaddr*>(&client), client_len);
            }
        }
    }
}
