// SPDX-License-Identifier: MIT
#include "redis_server.hpp"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace testing {

namespace {

std::string find_program(const std::string& name) {
    const char* path = std::getenv("PATH");
    std::string p = path ? path : "/usr/local/bin:/usr/bin:/bin";
    std::stringstream in(p);
    std::string dir;
    while (std::getline(in, dir, ':')) {
        if (dir.empty()) continue;
        std::string full = dir + "/" + name;
        if (::access(full.c_str(), X_OK) == 0) return full;
    }
    for (const char* d : {"/usr/bin/", "/usr/local/bin/", "/usr/sbin/"}) {
        std::string full = std::string(d) + name;
        if (::access(full.c_str(), X_OK) == 0) return full;
    }
    return {};
}

void pause_ms(long ms) {
    timespec ts{ms / 1000, (ms % 1000) * 1'000'000};
    while (::nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

// One PING on a fresh connection: true on "+PONG".
bool ping(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = false;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && ::write(fd, "PING\r\n", 6) == 6) {
        pollfd p{fd, POLLIN, 0};
        char buf[64] = {};
        if (::poll(&p, 1, 2000) == 1 && ::read(fd, buf, sizeof buf - 1) > 0) ok = std::strncmp(buf, "+PONG", 5) == 0;
    }
    ::close(fd);
    return ok;
}

std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

} // namespace

int free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error("socket failed");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = 0;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) < 0) {
        ::close(fd);
        throw std::runtime_error("bind to a free port failed");
    }
    int port = ntohs(a.sin_port);
    ::close(fd);
    return port;
}

redis_server::redis_server() {
    std::string log;
    for (int attempt = 0; attempt < 8; ++attempt) {
        if (start(log)) return;
        if (pid_ == -2) return;  // not installed
    }
    why_ = "redis-server did not start: " + log;
    pid_ = -1;
}

bool redis_server::start(std::string& log) {
    std::string prog = find_program("redis-server");
    if (prog.empty()) {
        why_ = "redis-server is not installed (apt-get install redis-server)";
        pid_ = -2;
        return false;
    }
    char tmpl[] = "/tmp/ipc-redis-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    do port_ = free_port();
    while (port_ == 6379);
    std::string logfile = (dir_ / "redis.log").string();
    std::vector<std::string> argv = {prog, "--port", std::to_string(port_), "--bind", "127.0.0.1",
                                     "--save", "", "--appendonly", "no", "--dir", dir_.string(),
                                     "--dbfilename", "test.rdb", "--logfile", logfile, "--loglevel", "warning",
                                     "--daemonize", "no", "--protected-mode", "yes"};
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
        int null = ::open("/dev/null", O_RDWR);
        if (null >= 0) {
            ::dup2(null, 0);
            ::dup2(null, 1);
            ::dup2(null, 2);
        }
        ::setpgid(0, 0);  // a Ctrl-C on the test run is the harness's business, not the server's
        ::execv(prog.c_str(), cargv.data());
        ::_exit(127);
    }
    pid_ = pid;
    // Ready when it answers PING; a server that exits (port taken in the
    // meantime) is started again on another port.
    for (int i = 0; i < 400; ++i) {
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            log = read_file(logfile);
            pid_ = -1;
            std::filesystem::remove_all(dir_);
            dir_.clear();
            return false;
        }
        if (ping(port_)) return true;
        pause_ms(25);
    }
    log = "no answer to PING within 10 s: " + read_file(logfile);
    stop();
    return false;
}

void redis_server::stop() {
    if (pid_ > 0) {
        ::kill(pid_, SIGTERM);
        int status = 0;
        bool gone = false;
        for (int i = 0; i < 400 && !gone; ++i) {
            if (::waitpid(pid_, &status, WNOHANG) == pid_) gone = true;
            else pause_ms(25);
        }
        if (!gone) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, &status, 0);
        }
    }
    pid_ = -1;
    if (!dir_.empty()) {
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
        dir_.clear();
    }
}

redis_server::~redis_server() { stop(); }

outcome redis_server::cli(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {find_program("redis-cli"), "-p", std::to_string(port_)};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
}

} // namespace testing
