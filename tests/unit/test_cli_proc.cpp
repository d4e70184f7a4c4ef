// SPDX-License-Identifier: MIT
#include <catch2/catch.hpp>

#include <csignal>
#include <cstdio>
#include <string>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ipc/cli.hpp"
#include "ipc/error.hpp"
#include "ipc/proc.hpp"

using namespace ipc;

namespace {

// Runs app.run() with stdout and stderr captured in memory files.
struct captured {
    int status;
    std::string out, err;
};

std::string slurp(int fd) {
    std::string s;
    char buf[4096];
    off_t off = 0;
    for (ssize_t n; (n = ::pread(fd, buf, sizeof buf, off)) > 0; off += n) s.append(buf, static_cast<std::size_t>(n));
    return s;
}

captured run_app(cli::app& app, std::vector<std::string> args) {
    std::fflush(stdout);
    std::fflush(stderr);
    int out = ::memfd_create("out", 0), err = ::memfd_create("err", 0);
    int saved_out = ::dup(1), saved_err = ::dup(2);
    ::dup2(out, 1);
    ::dup2(err, 2);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int status = app.run(static_cast<int>(args.size()), argv.data());
    std::fflush(stdout);
    std::fflush(stderr);
    ::dup2(saved_out, 1);
    ::dup2(saved_err, 2);
    ::close(saved_out);
    ::close(saved_err);
    captured c{status, slurp(out), slurp(err)};
    ::close(out);
    ::close(err);
    // run() installs handlers; the rest of the test process wants defaults.
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
    return c;
}

} // namespace

TEST_CASE("cli: a verb's handler runs and its status is returned", "[cli]") {
    cli::app app("ipc-test", "test");
    int seen = 0;
    std::string name;
    auto* v = app.verb("go", "do it", [&] {
        ++seen;
        out::stdout_stream().write("done " + name + "\n");
        return 3;
    });
    v->add_option("name", name)->required();
    auto c = run_app(app, {"ipc-test", "go", "x"});
    CHECK(c.status == 3);
    CHECK(seen == 1);
    CHECK(c.out == "done x\n");
    CHECK(c.err.empty());
}

TEST_CASE("cli: help to stdout (0), usage errors to stderr (64) with a hint", "[cli]") {
    cli::app app("ipc-test", "test");
    app.verb("go", "do it", [] { return 0; });
    auto help = run_app(app, {"ipc-test", "--help"});
    CHECK(help.status == 0);
    CHECK(help.out.find("go") != std::string::npos);
    CHECK(help.err.empty());
    auto bad = run_app(app, {"ipc-test", "nope"});
    CHECK(bad.status == 64);
    CHECK(bad.out.empty());
    CHECK(bad.err == "ipc-test: unknown verb 'nope'\nTry 'ipc-test --help' for more information.\n");
}

TEST_CASE("cli: errors become one line, or one JSON object with --json", "[cli]") {
    cli::app app("ipc-test", "test");
    app.verb("fail", "fail", []() -> int { throw system_error(ENOENT, "open", "queue", "/jobs"); });
    auto text = run_app(app, {"ipc-test", "fail"});
    CHECK(text.status == 66);
    CHECK(text.err == "ipc-test: cannot open queue '/jobs': No such file or directory\n");
    auto js = run_app(app, {"ipc-test", "fail", "--json"});
    CHECK(js.status == 66);
    auto doc = nlohmann::json::parse(js.err);
    CHECK(doc["error"]["errno_name"] == "ENOENT");
    CHECK(doc["error"]["exit_status"] == 66);
}

TEST_CASE("cli: an unexpected exception is an internal error (70)", "[cli]") {
    cli::app app("ipc-test", "test");
    app.verb("bug", "bug", []() -> int { throw std::logic_error("broken invariant"); });
    auto c = run_app(app, {"ipc-test", "bug"});
    CHECK(c.status == 70);
    CHECK(c.err.find("internal error: broken invariant") != std::string::npos);
}

TEST_CASE("proc: the scan finds this process's own pipe ends, with their flags", "[proc]") {
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    unique_fd r(p[0]), w(p[1]);
    struct stat st {};
    REQUIRE(::fstat(r.get(), &st) == 0);
    auto want = "pipe:[" + std::to_string(st.st_ino) + "]";
    auto scan = proc::scan_fds([&](std::string_view t) { return t == want; }, ::getpid());
    REQUIRE(scan.fds.size() == 2);
    for (const auto& f : scan.fds) {
        CHECK(f.pid == ::getpid());
        CHECK(f.st.st_ino == st.st_ino);
        if (f.fd == r.get()) CHECK((f.flags & O_ACCMODE) == O_RDONLY);
        if (f.fd == w.get()) CHECK((f.flags & O_ACCMODE) == O_WRONLY);
    }
    CHECK(proc::command(::getpid()) == "unit_tests");
    CHECK(proc::alive(::getpid()));
    CHECK_FALSE(proc::alive(999999999));
}

TEST_CASE("proc: borrow_fd duplicates a descriptor of a process", "[proc]") {
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    unique_fd r(p[0]), w(p[1]);
    auto dup = proc::borrow_fd(::getpid(), w.get());
    REQUIRE(::write(dup.get(), "x", 1) == 1);
    char c = 0;
    REQUIRE(::read(r.get(), &c, 1) == 1);
    CHECK(c == 'x');
    CHECK_THROWS_AS(proc::borrow_fd(999999999, 0), error);
}
