// SPDX-License-Identifier: MIT
// The Redis Streams mailbox backend, through the library API, against a
// private redis-server per test case (skipped with a warning when
// redis-server is not installed). Concurrency is real processes (fork).
#include <catch2/catch.hpp>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <fcntl.h>
#include <fnmatch.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ipc/error.hpp"
#include "ipc/fd.hpp"
#include "ipc/mbox.hpp"
#include "process.hpp"
#include "redis_server.hpp"

namespace ipc::mbox::redis {
std::string glob_to_lua_pattern(std::string_view glob);  // mbox_redis.cpp, not in the header
}

using namespace ipc;
using namespace std::chrono_literals;

namespace {

mbox::location make_box(const testing::redis_server& srv, const std::string& stem, mbox::create_options opt = {}) {
    mbox::location loc;
    loc.name = "/" + testing::unique_name(stem);
    loc.backend = srv.url();
    REQUIRE(mbox::redis::create(loc, opt));
    return loc;
}

// The Redis key of a mailbox's stream, as redis-cli would name it.
std::string stream_key(const mbox::location& loc) { return "ipc-mbox:{" + loc.name.substr(1) + "}"; }

std::vector<mbox::outgoing> bodies(std::initializer_list<std::string> list, std::string topic = "", std::string to = "") {
    std::vector<mbox::outgoing> out;
    for (auto& b : list) out.push_back({b, topic, to});
    return out;
}

std::vector<mbox::message> take(mbox::mailbox& m, mbox::recv_options o) {
    std::vector<mbox::message> out;
    m.recv(o, [&](mbox::message& x) { out.push_back(x); });
    return out;
}

mbox::recv_options opts(std::string group = "", std::size_t batch = 1, std::chrono::milliseconds wait = 10s) {
    mbox::recv_options o;
    o.group.name = std::move(group);
    o.max_batch = batch;
    o.until = deadline::after(wait);
    return o;
}

// Drains every message of a group (until one wait of `quiet` finds none).
std::vector<mbox::message> drain(mbox::mailbox& m, mbox::recv_options o, std::chrono::milliseconds quiet = 300ms) {
    std::vector<mbox::message> all;
    o.max_batch = std::max<std::size_t>(o.max_batch, 64);
    for (;;) {
        o.until = deadline::after(quiet);
        auto got = take(m, o);
        if (got.empty()) return all;
        all.insert(all.end(), got.begin(), got.end());
    }
}

int code_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const ipc::error& e) {
        return static_cast<int>(e.code());
    }
    return 0;
}

std::string message_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return {};
}

// A forked child running fn; exit status 0 when fn returned, 1 when it threw.
class forked {
public:
    explicit forked(const std::function<void()>& fn) {
        pid_ = ::fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            int rc = 0;
            try {
                fn();
            } catch (const std::exception& e) {
                std::fprintf(stderr, "child %d: %s\n", ::getpid(), e.what());
                rc = 1;
            } catch (...) {
                rc = 1;
            }
            ::_exit(rc);
        }
    }
    ~forked() {
        if (pid_ > 0 && !reaped_) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }
    forked(const forked&) = delete;
    forked& operator=(const forked&) = delete;
    pid_t pid() const { return pid_; }
    void kill(int sig) { ::kill(pid_, sig); }
    /// Exit status (128+signal when killed); -1 when still running after limit.
    int wait(std::chrono::milliseconds limit = 60s) {
        auto end = std::chrono::steady_clock::now() + limit;
        for (;;) {
            int st = 0;
            pid_t r = ::waitpid(pid_, &st, WNOHANG);
            if (r == pid_) {
                reaped_ = true;
                return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            }
            if (std::chrono::steady_clock::now() > end) return -1;
            timespec ts{0, 5'000'000};
            ::nanosleep(&ts, nullptr);
        }
    }

private:
    pid_t pid_ = -1;
    bool reaped_ = false;
};

// A pipe from children to the test: one line per record.
class line_pipe {
public:
    line_pipe() { REQUIRE(::pipe2(fd_, O_CLOEXEC) == 0); }
    ~line_pipe() {
        for (int f : fd_)
            if (f >= 0) ::close(f);
    }
    void write_line(const std::string& s) const {
        std::string l = s + "\n";  // < PIPE_BUF: atomic among writers
        [[maybe_unused]] auto n = ::write(fd_[1], l.data(), l.size());
    }
    void close_write() {
        ::close(fd_[1]);
        fd_[1] = -1;
    }
    /// Reads lines until pred(lines) holds or limit passes.
    std::vector<std::string> read_until(const std::function<bool(const std::vector<std::string>&)>& pred,
                                        std::chrono::milliseconds limit = 60s) {
        auto end = std::chrono::steady_clock::now() + limit;
        while (!pred(lines_) && std::chrono::steady_clock::now() < end) {
            pollfd p{fd_[0], POLLIN, 0};
            if (::poll(&p, 1, 100) <= 0) continue;
            char buf[4096];
            ssize_t n = ::read(fd_[0], buf, sizeof buf);
            if (n <= 0) break;
            partial_.append(buf, static_cast<std::size_t>(n));
            std::size_t nl;
            while ((nl = partial_.find('\n')) != std::string::npos) {
                lines_.push_back(partial_.substr(0, nl));
                partial_.erase(0, nl + 1);
            }
        }
        return lines_;
    }

private:
    int fd_[2] = {-1, -1};
    std::string partial_;
    std::vector<std::string> lines_;
};

// Seqs delivered plus those the skipped ranges account for.
std::set<std::uint64_t> accounted(const std::vector<mbox::message>& got, std::map<std::string, std::uint64_t>* reasons = nullptr) {
    std::set<std::uint64_t> all;
    for (auto& m : got) {
        all.insert(m.seq);
        for (auto& r : m.skipped)
            for (auto s = r.first; s <= r.last; ++s) {
                all.insert(s);
                if (reasons) ++(*reasons)[r.reason];
            }
    }
    return all;
}

std::set<std::uint64_t> range_set(std::uint64_t a, std::uint64_t b) {
    std::set<std::uint64_t> s;
    for (auto i = a; i <= b; ++i) s.insert(i);
    return s;
}

const mbox::group_stat* group_of(const mbox::mailbox_stat& st, const std::string& name) {
    for (auto& g : st.groups)
        if (g.name == name) return &g;
    return nullptr;
}

} // namespace

TEST_CASE("redis mailbox: create, open, list, remove and their statuses", "[mbox][redis]") {
    testing::redis_server srv;
    REDIS_OR_SKIP(srv);
    mbox::create_options opt;
    opt.lim.max_msgs = 10;
    opt.lim.max_bytes = 10000;
    opt.lim.max_msg_size = 100;
    opt.overflow = mbox::overflow_policy::drop_oldest;
    auto loc = make_box(srv, "life", opt);
    CHECK_FALSE(mbox::redis::create(loc, opt));  // exists: left as it is
    opt.exclusive = true;
    CHECK(code_of([&] { mbox::redis::create(loc, opt); }) == 73);

    auto m = mbox::redis::open(loc);
    auto st = m->stat();
    CHECK(st.name == loc.name);
    CHECK(st.backend == srv.url());
    CHECK(st.path.empty());
    CHECK(st.lim.max_msgs == 10);
    CHECK(st.lim.max_bytes == 10000);
    CHECK(st.lim.max_msg_size == 100);
    CHECK(st.overflow == mbox::overflow_policy::drop_oldest);
    CHECK(st.next_seq == 1);
    CHECK(st.msgs == 0);
    CHECK(st.created_unix > 0);

    auto all = mbox::redis::list(loc);
    CHECK(std::any_of(all.begin(), all.end(), [&](auto& s) { return s.name == loc.name; }));

    mbox::redis::remove(loc);
    CHECK(code_of([&] { mbox::redis::open(loc); }) == 66);
    CHECK(code_of([&] { mbox::redis::remove(loc); }) == 66);
    CHECK(code_of([&] { m->send(bodies({"x"}), {}); }) == 66);
    all = mbox::redis::list(loc);
    CHECK_FALSE(std::any_of(all.begin(), all.end(), [&](auto& s) { return s.name == loc.name; }));
}

TEST_CASE("redis mailbox: what Redis cannot do is refused with 69", "[mbox][redis]") {
    testing::redis_server srv;
    REDIS_OR_SKIP(srv);
    mbox::location loc{"/" + testing::unique_name("refused"), srv.url(), ""};
    mbox::create_options rendezvous;
    rendezvous.lim.max_msgs = 0;
    CHECK(code_of([&] { mbox::redis::create(loc, rendezvous); }) == 69);
    CHECK_THAT(message_of([&] { mbox::redis::create(loc, rendezvous); }),
               Catch::Contains("the redis backend cannot") && Catch::Contains("rendezvous"));
    mbox::create_options always;
    always.sync = mbox::sync_policy::always;
    CHECK(code_of([&] { mbox::redis::create(loc, always); }) == 69);
    auto with_dir = loc;
    with_dir.dir = "/tmp";
    CHECK(code_of([&] { mbox::redis::create(with_dir, {}); }) == 69);
    CHECK(code_of([&] { mbox::redis::open(loc); }) == 66);  // nothing was created
    mbox::create_options bad;
    bad.lim.max_bytes = 10;
    bad.lim.max_msg_size = 100;
    CHECK(code_of([&] { mbox::redis::create(loc, bad); }) == 64);
}

TEST_CASE("redis mailbox: an unreachable server is 69 with a message naming the URL", "[mbox][redis]") {
    int port = testing::free_port();  // nobody listens there
    mbox::location loc{"/nobody", "redis://127.0.0.1:" + std::to_string(port), ""};
    CHECK(code_of([&] { mbox::redis::open(loc); }) == 69);
    auto msg = message_of([&] { mbox::redis::create(loc, {}); });
    CHECK_THAT(msg, Catch::Contains("redis://127.0.0.1:" + std::to_string(port)) && Catch::Contains("refused"));
    CHECK(msg.find('\n') == std::string::npos);
    CHECK(code_of([&] { mbox::redis::list(loc); }) == 69);
    // A malformed URL is a usage error.
    mbox::location bad{"/x", "redis://127.0.0.1:notaport", ""};
    CHECK(code_of([&] { mbox::redis::open(bad); }) == 64);
}

TEST_CASE("redis mailbox: send and recv - XRANGE shows what send sent", "[mbox][redis]") {
    testing::redis_server srv;
    REDIS_OR_SKIP(srv);
    auto loc = make_box(srv, "basic");
    auto m = mbox::redis::open(loc);
    mbox::send_options so;
    so.as = "alice";
    std::string binary("a\0b\r\n\xff", 6);
    std::vector<mbox::outgoing> out = {{"hello", "greet", ""}, {binary, "", ""}};
    auto res = m->send(out, so);
    REQUIRE(res.seqs == std::vector<std::uint64_t>{1, 2});
    CHECK_FALSE(res.timed_out);

    auto got = take(*m, opts("", 10));
    REQUIRE(got.size() == 2);
    CHECK(got[0].seq == 1);
    CHECK(got[0].data == "hello");
    CHECK(got[0].topic == "greet");
    CHECK(got[0].sender.name == "alice");
    CHECK(got[0].sender.pid == ::getpid());
    CHECK(got[0].sender.uid == ::getuid());
    CHECK(got[0].deliveries == 1);
    CHECK(got[0].skipped.empty());
    auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    CHECK(got[0].timestamp_ns > static_cast<std::uint64_t>(now - 60'000'000'000LL));
    CHECK(got[0].timestamp_ns <= static_cast<std::uint64_t>(now));
    CHECK(got[1].seq == 2);
    CHECK(got[1].data == binary);

    // Taken by its only group: freed.
    auto st = m->stat();
    CHECK(st.msgs == 0);
    CHECK(st.sent == 2);
    CHECK(st.next_seq == 3);
    auto g = group_of(st, "default");
    REQUIRE(g);
    CHECK(g->delivered == 2);
    CHECK(g->lag == 0);
    CHECK(g->position == 3);

    // Retained entries (a second group that has not read yet) show in XRANGE.
    auto other = opts("later", 1, 0ms);
    CHECK(take(*m, other).empty());  // creates the group
    m->send(bodies({"third"}, "news", "bob"), so);
    auto xr = srv.cli({"XRANGE", stream_key(loc), "-", "+"});
    REQUIRE(xr.status == 0);
    std::vector<std::string> lines;
    std::stringstream in(xr.out);
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    auto has = [&](const std::string& k, const std::string& v) {
        for (std::size_t i = 0; i + 1 < lines.size(); ++i)
            if (lines[i] == k && lines[i + 1] == v) return true;
        return false;
    };
    CHECK(has("seq", "3"));
    CHECK(has("from", "alice"));
    CHECK(has("topic", "news"));
    CHECK(has("to", "bob"));
    CHECK(has("body", "third"));
    CHECK(has("pid", std::to_string(::getpid())));
    CHECK(has("uid", std::to_string(::getuid())));
    CHECK(std::find(lines.begin(), lines.end(), "ts") != lines.end());
}

TEST_CASE("redis mailbox: an entry added by hand with redis-cli XADD is received", "[mbox][redis]") {
    testing::redis_server srv;
    REDIS_OR_SKIP(srv);
    auto loc = make_box(srv, "byhand");
    auto m = mbox::redis::open(loc);
    m->send(bodies({"first"}), {});
    auto r = srv.cli({"XADD", stream_key(loc), "*", "from", "bob", "topic", "t", "body", "hi there"});
    REQUIRE(r.status == 0);
    m->send(bodies({"third"}), {});
    auto got = take(*m, opts("", 10));
    REQUIRE(got.size() == 3);
    CHECK(got[0].seq == 1);
    CHECK(got[1].seq == 0);  // unsequenced
    CHECK(got[1].data == "hi there");
    CHECK(got[1].sender.name == "bob");
    CHECK(got[1].topic == "t");
    CHECK(got[1].timestamp_ns > 0);
    CHECK(got[2].seq == 2);  // the numbering stays gap-free
    CHECK(got[2].skipped.empty());
}

TEST_CASE("redis mailbox: gap-free seqs and per-sender order with concurrent sender processes", "[mbox][redis]") {
    testing::redis_server srv;
    REDIS_OR_SKIP(srv);
    mbox::create_options opt;
    opt.lim.max_msgs = 100000;
    opt.lim.max_bytes = 64u << 20;
    auto loc = make_box(srv, "gapfree", opt);
    constexpr int senders = 4, per = 300;
    {
        auto m = mbox::redis::open(loc);
        CHECK(take(*m, opts("", 1, 0ms)).empty());  // the group exists before the first send
    }
    std::vector<std::unique_ptr<forked>> kids;
    for (int s = 0; s < senders; ++s)
        kids.push_back(std::make_unique<forked>([&, s] {
            auto m = mbox::redis::open(loc);
            mbox::send_options so;
            so.as = "s" + std::to_string(s);
            int k = 0;
            while (k < per) {
                int n = std::min(per - k, 1 + (k % 7));  // batches of 1..7
                std::vector<mbox::outgoing> batch;
                for (int j = 0; j < n; ++j) batch.push_back({std::to_string(k + j), "", ""});
                auto r = m->send(batch, so);
                if (r.seqs.size() != static_cast<std::size_t>(n)) throw std::runtime_error("short send");
                k += n;
            }
        }));
    for (auto& k : kids) REQUIRE(k->wait() == 0);
    auto m = mbox::redis::open(loc);
    auto got = drain(*m, opts());
    REQUIRE(got.size() == senders * per);
    std::map<std::string, int> last;
    for (std::size_t i = 0; i < got.size(); ++i) {
        CHECK(got[i].seq == i + 1);
        int v = std::stoi(got[i].data);
        auto it = last.find(got[i].sender.name);
        if (it != last.end()) CHECK(v == it->second + 1);
        else CHECK(v == 0);
        last[got[i].sender.name] = v;
    }
    CHECK(last.size() == senders);
    CHECK(m->stat().sent == senders * per);
}

TEST_CASE("redis mailbox: one receiver per message in a group, a copy per group", "[mbox][redis]") {
    testing::redis_server srv;
    REDIS_OR_SKIP(srv);
    auto loc = make_box(srv, "groups");
    constexpr int total = 300, per_group = 3;
    const std::vector<std::string> groups = {"g1", "g2"};
    {
        auto m = mbox::redis::open(loc);
        for (auto& g : groups) CHECK(take(*m, opts(g, 1, 0ms)).empty());
    }
    line_pipe lines;
    std::vector<std::unique_ptr<forked>> kids;
    for (auto& g : groups)
        for (int r = 0; r < per_group; ++r)
            kids.push_back(std::make_unique<forked>([&, g] {
                auto m = mbox::redis::open(loc);
                for (;;) {
                    auto o = opts(g, 4, 200ms);
                    m->recv(o, [&](mbox::message& x) { lines.write_line(g + " " + std::to_string(x.seq)); });
                }
            }));
    {
        auto m = mbox::redis::open(loc);
        for (int i = 0; i < total; i += 10) {
            std::vector<mbox::outgoing> batch;
            for (int j = 0; j < 10; ++j) batch.push_back({std::to_string(i + j), "", ""});
            REQUIRE(m->send(batch, {}).seqs.size() == 10);
        }
    }
    auto got = lines.read_until([&](const std::vector<std::string>& l) { return l.size() >= total * groups.size(); });
    for (auto& k : kids) k->kill(SIGKILL);
    REQUIRE(got.size() == total * groups.size());
    std::map<std::string, std::multiset<std::uint64_t>> per;
    for (auto& l : got) {
        auto sp = l.find(' ');
        per[l.substr(0, sp)].insert(std::stoull(l.substr(sp + 1)));
    }
    for (auto& g : groups) {
        auto& s = per[g];
        CHECK(s.size() == total);
        CHECK(std::set<std::uint64_t>(s.begin(), s.end()) == range_set(1, total));  // each exactly once
    }
    // Nothing is left behind once every group took everything.
    auto m = mbox::redis::open(loc);
    CHECK(testing::eventually([&] { return m->stat().msgs == 0; }));
}

TEST_CASE("redis mailbox: every group sees the same order", "[mbox][redis]") {
    testing::redis_server srv;
    REDIS_OR_SKIP(srv);
    auto loc = make_box(srv, "order");
    auto m = mbox::redis::open(loc);
    CHECK(take(*m, opts("a", 1, 0ms)).empty());  // both groups exist before the sends
    CHECK(take(*m, opts("b", 1, 0ms)).empty());
    std::vector<std::unique_ptr<forked>> kids;
    for (int s = 0; s < 3; ++s)
        kids.push_back(std::make_unique<forked>([&, s] {
            auto mm = mbox::redis::open(loc);
            mbox::send_options so;
            so.as = "s" + std::to_string(s);
            for (int k = 0; k < 100; ++k) mm->send(bodies({std::to_string(k)}), so);
        }));
    for (auto& k : kids) REQUIRE(k->wait() == 0);
    auto a = drain(*m, opts("a"));
    auto b = drain(*m, opts("b"));
    REQUIRE(a.size() == 300);
    REQUIRE(b.size() == 300);
    for (std::size_t i = 0; i < a.size(); ++i) {
        CHECK(a[i].seq == b[i].seq);
        CHECK(a[i].data == b[i].data);
        CHECK(a[i].sender.name == b[i].sender.name);
    }
}

TEST_CASE("redis mailbox: topic and from subscriptions, with filtered ranges", "[mbox][redis]") {
    testing::redis_server srv;
    REDIS_OR_SKIP(srv);
    auto loc = make_box(srv, "filter");
    auto m = mbox::redis::open(loc);
    auto topic_o = opts("", 1, 0ms);
    topic_o.group.topic = "orders.*";
    auto from_o = opts("", 1, 0ms);
    from_o.group.from = "bob";
    CHECK(take(*m, topic_o).empty());
    CHECK(take(*m, from_o).empty());
    mbox::send_options alice, bob;
    alice.as = "alice";
    bob.as = "bob";
    m->send(bodies({"1", "2"}, "orders.new"), alice);  // 1 2
    m->send(bodies({"3", "4", "5"}, "stock"), bob);    // 3 4 5
    m->send(bodies({"6"}, "orders.paid"), bob);        // 6
    m->send(bodies({"7"}, "stock"), alice);            // 7

    auto t = drain(*m, topic_o);
    REQUIRE(t.size() == 3);
    CHECK(t[0].seq == 1);
    CHECK(t[1].seq == 2);
    CHECK(t[2].seq == 6);
    REQUIRE(t[2].skipped.size() == 1);
    CHECK(t[2].skipped[0].first == 3);
    CHECK(t[2].skipped[0].last == 5);
    CHECK(t[2].skipped[0].reason == "filtered");
    // 7 was passed too: reported with the next delivery.
    m->send(bodies({"8"}, "orders.x"), alice);
    auto again = topic_o;
    again.until = deadline::after(5s);
    auto t2 = take(*m, again);
    REQUIRE(t2.size() == 1);
    CHECK(t2[0].seq == 8);
    REQUIRE(t2[0].skipped.size() == 1);
    CHECK(t2[0].skipped[0].first == 7);
    CHECK(t2[0].skipped[0].last == 7);

    auto f = drain(*m, from_o);
    std::vector<std::uint64_t> seqs;
    for (auto& x : f) seqs.push_back(x.seq);
    CHECK(seqs == std::vector<std::uint64_t>{3, 4, 5, 6});
    std::map<std::string, std::uint64_t> reasons;
    auto acc = accounted(f, &reasons);
    CHECK(acc == range_set(1, 6));
    CHECK(reasons["filtered"] == 2);

    auto st = m->stat();
    auto g = group_of(st, "topic=orders.*");
    REQUIRE(g);
    CHECK(g->topic == "orders.*");
    CHECK(g->filtered == 4);
    CHECK(g->delivered == 4);

    // A different subscription under an existing group's name is a usage error.
    auto clash = opts("topic=orders.*", 1, 0ms);
    clash.group.topic = "stock";
    CHECK(code_of([&] { take(*m, clash); }) == 64);
    CHECK_THAT(message_of([&] { take(*m, clash); }),
               Catch::Contains("group 'topic=orders.*' subscribes to topic 'orders.*'"));
}

TEST_CASE("redis mailbox: topic patterns behave as fnmatch", "[mbox][redis]") {
    testing::redis_server srv;
    REDIS_OR_SKIP(srv);
    const std::vector<std::string> patterns = {"a*", "*.b", "a?c", "[ab]x", "[!ab]x", "[a-c]*", "x[]]y", "a.b",
                                               "100%", "(x)", "a+b", "[[:digit:]]*", "\\*", "*", "a[", "^x$", "a-b"};
    const std::vector<std::string> topics = {"a", "abc", "x.b", "ax", "cx", "bx", "dx", "x]y", "a.b", "axb", "100%",
                                             "(x)", "a+b", "aab", "7up", "*", "", "a[", "^x$", "a-b", "ab"};
    for (auto& p : patterns) {
        auto lua = mbox::redis::glob_to_lua_pattern(p);
        for (auto& t : topics) {
            auto r = srv.cli({"EVAL", "if string.find(ARGV[1], ARGV[2]) then return 1 else return 0 end", "0", t, lua});
            REQUIRE(r.status == 0);
            bool want = ::fnmatch(p.c_str(), t.c_str(), 0) == 0;
            INFO("pattern '" << p << "' as '" << lua << "' on '" << t << "'");
            CHECK((r.out == "1\n") == want);
        }
    }
}

TEST_CASE("redis mailbox: addressed messages go to the named receiver only", "[mbox][redis]") {
    testing::redis_server srv;
    REDIS_OR_SKIP(srv);
    auto loc = make_box(srv, "addressed");
    auto alice = mbox::redis::open(loc);
    auto bob = mbox::redis::open(loc);
    auto oa = opts("", 10, 0ms);
    oa.as = "alice";
    auto ob = opts("", 10, 0ms);
    ob.as = "bob";
    CHECK(take(*alice, oa).empty());
    alice->send(bodies({"for bob"}, "", "bob"), {});  // 1
    alice->send(bodies({"for all"}), {});             // 2
    auto a = take(*alice, oa);
    REQUIRE(a.size() == 1);
    CHECK(a[0].seq == 2);
    REQUIRE(a[0].skipped.size() == 1);
    CHECK(a[0].skipped[0].first == 1);
    CHECK(a[0].skipped[0].reason == "addressed");
    auto st = alice->stat();
    auto g = group_of(st, "default");
    REQUIRE(g);
    CHECK(g->held == 1);
    CHECK(g->pending == 0);
    CHECK(st.msgs == 2);  // 1 is kept for bob; a stream frees from its head, so 2 waits behind it

    ob.until = deadline::after(10s);
    auto b = take(*bob, ob);
    REQUIRE(b.size() == 1);
    CHECK(b[0].seq == 1);
    CHECK(b[0].data == "for bob");
    CHECK(b[0].to == "bob");
    st = alice->stat();
    CHECK(group_of(st, "default")->held == 0);
    CHECK(st.msgs == 0);

    // A waiting addressee gets its message: it reads it itself, or it is
    // woken when another receiver of the group passes it over.
    line_pipe lines;
    forked waiter([&] {
        auto m = mbox::redis::open(loc);
        auto o = opts("", 1, 30s);
        o.as = "carol";
        for (auto& x : take(*m, o)) lines.write_line(x.data);
    });
    CHECK(testing::eventually([&] { return alice->stat().receivers_waiting == 1; }, 20s));
    alice->send(bodies({"for carol"}, "", "carol"), {});
    CHECK(take(*alice, oa).empty());  // alice passes it to carol
    auto got = lines.read_until([](auto& l) { return !l.empty(); }, 30s);
    REQUIRE(got.size() == 1);
    CHECK(got[0] == "for carol");
    CHECK(waiter.wait() == 0);
}

TEST_CASE("redis mailbox: overflow block times out, nonblock returns at once", "[mbox][redis]") {
    testing::redis_server srv;
    REDIS_OR_SKIP(srv);
    mbox::create_options opt;
    opt.lim.max_msgs = 3;
    auto loc = make_box(srv, "block", opt);
    auto m = mbox::redis::open(loc);
    mbox::send_options so;
    so.until = deadline::after(300ms);
    auto r = m->send(bodies({"1", "2", "3", "4", "5"}), so);
    CHECK(r.timed_out);
    CHECK(r.seqs == std::vector<std::uint64_t>{1, 2, 3});
    so.until = deadline::after(0ms);
    r = m->send(bodies({"6"}), so);
    CHECK(r.timed_out);
    CHECK(r.seqs.empty());
    CHECK(m->stat().msgs == 3);
    CHECK(m->stat().next_seq == 4);  // nothing numbered for what was not sent

    // max_bytes is a limit too.
    mbox::create_options small;
    small.lim.max_msgs = 100;
    small.lim.max_bytes = 250;
    small.lim.max_msg_size = 100;
    auto loc2 = make_box(srv, "bytes", small);
    auto m2 = mbox::redis::open(loc2);
    r = m2->send(std::vector<mbox::outgoing>(5, {std::string(100, 'x'), "", ""}), so);
    CHECK(r.timed_out);
    CHECK(r.seqs.size() == 1);  // a 100-byte body plus its fields (about 140 bytes): two do not fit in 250
    CHECK(code_of([&] { m2->send(bodies({std::string(101, 'x')}), so); }) == 65);

    // A blocked sender (another process) goes on when a receiver takes.
    forked sender([&] {
        auto mm = mbox::redis::open(loc);
        mbox::send_options forever;
        auto rr = mm->send(bodies({"late"}), forever);
        if (rr.seqs.size() != 1) throw std::runtime_error("not sent");
    });
    CHECK(testing::eventually([&] { return m->stat().senders_waiting == 1; }, 20s));
    CHECK(take(*m, opts()).size() == 1);
    CHECK(sender.wait() == 0);
    auto rest = drain(*m, opts());
    REQUIRE(rest.size() == 3);
    CHECK(rest.back().data == "late");
    CHECK(rest.back().seq == 4);
}

TEST_CASE("redis mailbox: drop-oldest evicts and tells the groups", "[mbox][redis]") {
    testing::redis_server srv;
    REDIS_OR_SKIP(srv);
    mbox::create_options opt;
    opt.lim.max_msgs = 5;
    opt.overflow = mbox::overflow_policy::drop_oldest;
    auto loc = make_box(srv, "drop", opt);
    auto m = mbox::redis::open(loc);
    CHECK(take(*m, opts("", 1, 0ms)).empty());
    std::vector<mbox::outgoing> msgs;
    for (int i = 1; i <= 12; ++i) msgs.push_back({std::to_string(i), "", ""});
    auto r = m->send(msgs, {});
    CHECK(r.seqs.size() == 12);
    CHECK_FALSE(r.timed_out);
    auto st = m->stat();
    CHECK(st.msgs == 5);
    CHECK(st.dropped == 7);
    CHECK(st.first_seq == 8);
    auto g = group_of(st, "default");
    REQUIRE(g);
    CHECK(g->dropped == 7);
    CHECK(g->lag == 5);  // computed from seqs, right after trimming
    CHECK(g->position == 8);
    auto got = drain(*m, opts());
    REQUIRE(got.size() == 5);
    CHECK(got[0].seq == 8);
    REQUIRE(got[0].skipped.size() == 1);
    CHECK(got[0].skipped[0].first == 1);
    CHECK(got[0].skipped[0].last == 7);
    CHECK(got[0].skipped[0].reason == "dropped");
    CHECK(accounted(got) == range_set(1, 12));

    // A per-send policy overrides the mailbox's.
    mbox::create_options blocking;
    blocking.lim.max_msgs = 2;
    auto loc2 = make_box(srv, "drop2", blocking);
    auto m2 = mbox::redis::open(loc2);
    mbox::send_options so;
    so.overflow = mbox::overflow_policy::drop_oldest;
    so.until = deadline::after(0ms);
    r = m2->send(bodies({"a", "b", "c"}), so);
    CHECK(r.seqs.size() == 3);
    CHECK(m2->stat().dropped == 1);
}

TEST_CASE("redis mailbox: ack, and redelivery after the receiver is killed", "[mbox][redis]") {
    testing::redis_server srv;
    REDIS_OR_SKIP(srv);
    auto loc = make_box(srv, "ack");
    auto m = mbox::redis::open(loc);
    m->send(bodies({"job"}), {});
    line_pipe lines;
    forked victim([&] {
        auto mm = mbox::redis::open(loc);
        auto o = opts("", 1, 30s);
        o.ack = true;
        o.lease = 500ms;
        for (auto& x : take(*mm, o)) lines.write_line(std::to_string(x.seq));
        ::pause();
    });
    auto l = lines.read_until([](auto& v) { return !v.empty(); });
    REQUIRE(l.size() == 1);
    CHECK(l[0] == "1");
    victim.kill(SIGKILL);
    victim.wait();
    CHECK(group_of(m->stat(), "default")->pending == 1);
    CHECK(m->stat().msgs == 1);  // kept until acknowledged

    auto o = opts("", 1, 30s);
    o.ack = true;
    o.lease = 500ms;
    auto got = take(*m, o);
    REQUIRE(got.size() == 1);
    CHECK(got[0].seq == 1);
    CHECK(got[0].deliveries == 2);
    std::vector<std::uint64_t> seqs{1};
    CHECK(m->ack("default", seqs) == 1);
    CHECK(m->ack("default", seqs) == 0);
    auto st = m->stat();
    auto g = group_of(st, "default");
    CHECK(g->pending == 0);
    CHECK(g->acked == 1);
    CHECK(g->redelivered == 1);
    CHECK(st.msgs == 0);

    // An ack from another process (no hint) finds the seq among the pending.
    m->send(bodies({"two"}), {});
    o.lease = 30s;
    REQUIRE(take(*m, o).size() == 1);
    auto other = mbox::redis::open(loc);
    std::vector<std::uint64_t> two{2};
    CHECK(other->ack("default", two) == 1);
    CHECK(m->stat().msgs == 0);
}

TEST_CASE("redis mailbox: release gives a message back, renew keeps it", "[mbox][redis]") {
    testing::redis_server srv;
    REDIS_OR_SKIP(srv);
    auto loc = make_box(srv, "release");
    auto m = mbox::redis::open(loc);
    m->send(bodies({"x"}), {});
    auto o = opts("", 1, 10s);
    o.ack = true;
    o.lease = 60s;
    auto got = take(*m, o);
    REQUIRE(got.size() == 1);
    auto other = mbox::redis::open(loc);
    o.until = deadline::after(0ms);
    CHECK(take(*other, o).empty());  // leased
    m->release("default", 1);
    o.until = deadline::after(10s);
    got = take(*other, o);
    REQUIRE(got.size() == 1);
    CHECK(got[0].seq == 1);
    CHECK(got[0].deliveries == 2);
    other->renew("default", 1, 60s);
    o.until = deadline::after(0ms);
    CHECK(take(*m, o).empty());
    std::vector<std::uint64_t> one{1};
    CHECK(other->ack("default", one) == 1);
}

TEST_CASE("redis mailbox: max deliveries sends a message to the dead-letter mailbox", "[mbox][redis]") {
    testing::redis_server srv;
    REDIS_OR_SKIP(srv);
    auto loc = make_box(srv, "dlq");
    auto m = mbox::redis::open(loc);
    mbox::send_options so;
    so.as = "producer";
    m->send(bodies({"poison"}, "t"), so);
    auto o = opts("", 1, 20s);
    o.ack = true;
    o.lease = 200ms;
    o.max_deliveries = 2;
    auto a = take(*m, o);
    REQUIRE(a.size() == 1);
    CHECK(a[0].deliveries == 1);
    auto b = take(*m, o);  // after the lease ran out
    REQUIRE(b.size() == 1);
    CHECK(b[0].deliveries == 2);
    o.until = deadline::after(3s);
    CHECK(take(*m, o).empty());  // expired a second time: dead-lettered, not delivered
    auto st = m->stat();
    auto g = group_of(st, "default");
    CHECK(g->dead_lettered == 1);
    CHECK(g->pending == 0);
    CHECK(st.msgs == 0);

    mbox::location dead{loc.name + ".dead", srv.url(), ""};
    auto d = mbox::redis::open(dead);
    auto got = take(*d, opts());
    REQUIRE(got.size() == 1);
    CHECK(got[0].seq == 1);
    CHECK(got[0].origin_seq == 1);
    CHECK(got[0].data == "poison");
    CHECK(got[0].topic == "t");
    CHECK(got[0].sender.name == "producer");
}

TEST_CASE("redis mailbox: stat, remove_group, change_count", "[mbox][redis]") {
    testing::redis_server srv;
    REDIS_OR_SKIP(srv);
    auto loc = make_box(srv, "stat");
    auto m = mbox::redis::open(loc);
    CHECK(take(*m, opts("a", 1, 0ms)).empty());
    CHECK(take(*m, opts("b", 1, 0ms)).empty());
    auto c0 = m->change_count();
    m->send(bodies({"1", "2", "3", "4"}), {});
    CHECK(m->change_count() != c0);
    CHECK(take(*m, opts("a", 3)).size() == 3);
    auto st = m->stat();
    CHECK(st.msgs == 4);  // b has not taken any
    CHECK(group_of(st, "a")->lag == 1);
    CHECK(group_of(st, "a")->position == 4);
    CHECK(group_of(st, "b")->lag == 4);
    CHECK(st.bytes > 0);
    auto c1 = m->change_count();
    CHECK_FALSE(m->wait_change(c1, deadline::after(50ms)));
    CHECK(m->remove_group("b"));
    CHECK_FALSE(m->remove_group("b"));
    st = m->stat();
    CHECK(st.groups.size() == 1);
    CHECK(st.msgs == 1);  // freed: only a is left, at seq 4
    CHECK(m->wait_change(c1, deadline::after(5s)));

    // A waiting change is seen from another process's send.
    auto c2 = m->change_count();
    forked sender([&] {
        auto mm = mbox::redis::open(loc);
        mm->send(bodies({"5"}), {});
    });
    CHECK(m->wait_change(c2, deadline::after(20s)));
    CHECK(sender.wait() == 0);
}

TEST_CASE("redis mailbox: SIGINT ends a waiting recv with interrupted", "[mbox][redis]") {
    testing::redis_server srv;
    REDIS_OR_SKIP(srv);
    auto loc = make_box(srv, "sigint");
    auto m = mbox::redis::open(loc);
    CHECK(take(*m, opts("", 1, 0ms)).empty());
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        int rc = 0;
        try {
            ipc::install_signal_handlers();
            auto mm = mbox::redis::open(loc);
            auto o = opts("", 1, 0ms);
            o.until = deadline::never();
            take(*mm, o);
            rc = 1;
        } catch (const ipc::interrupted&) {
            rc = 42;
        } catch (...) {
            rc = 2;
        }
        ::_exit(rc);
    }
    bool waiting = testing::eventually([&] { return m->stat().receivers_waiting == 1; }, 20s);
    CHECK(waiting);
    ::kill(child, SIGINT);
    int st = 0;
    bool done = testing::eventually([&] { return ::waitpid(child, &st, WNOHANG) == child; }, 20s);
    if (!done) {
        ::kill(child, SIGKILL);
        ::waitpid(child, &st, 0);
    }
    REQUIRE(done);
    CHECK(WIFEXITED(st));
    CHECK(WEXITSTATUS(st) == 42);
}

// Take mode without a subscription reads through the fast path (XREADGROUP
// in a transaction, no Lua per message); these check that it keeps the
// guarantees of the recv script it stands in for.
bool fast_path_used(const testing::redis_server& srv) {
    auto r = srv.cli({"INFO", "commandstats"});
    return r.out.find("cmdstat_xgroup|setid:") != std::string::npos;
}

TEST_CASE("redis mailbox: fast path: addressed messages, trailing ranges, an addressed entry added by hand", "[mbox][redis]") {
    testing::redis_server srv;
    REDIS_OR_SKIP(srv);
    auto loc = make_box(srv, "fastaddr");
    std::string stream = stream_key(loc);
    auto alice = mbox::redis::open(loc);
    auto bob = mbox::redis::open(loc);
    auto oa = opts("", 10, 0ms);
    oa.as = "alice";
    CHECK(take(*alice, oa).empty());  // creates the group; alice's next calls take the fast path
    alice->send(bodies({"1"}), {});
    alice->send(bodies({"2 for bob"}, "", "bob"), {});
    alice->send(bodies({"3"}), {});
    alice->send(bodies({"4 for bob"}, "", "bob"), {});
    auto a = take(*alice, oa);
    REQUIRE(a.size() == 2);
    CHECK(a[0].seq == 1);
    CHECK(a[0].skipped.empty());
    CHECK(a[1].seq == 3);
    REQUIRE(a[1].skipped.size() == 1);
    CHECK(a[1].skipped[0].first == 2);
    CHECK(a[1].skipped[0].last == 2);
    CHECK(a[1].skipped[0].reason == "addressed");
    CHECK(fast_path_used(srv));

    // 4 was passed after alice's last message: its range comes with her next
    // one, merged with 5; the entry added by hand (no seq) is held for bob too.
    REQUIRE(srv.cli({"XADD", stream, "*", "to", "bob", "body", "by hand for bob"}).status == 0);
    alice->send(bodies({"5 for bob"}, "", "bob"), {});
    alice->send(bodies({"6"}), {});
    a = take(*alice, oa);
    REQUIRE(a.size() == 1);
    CHECK(a[0].seq == 6);
    REQUIRE(a[0].skipped.size() == 1);
    CHECK(a[0].skipped[0].first == 4);
    CHECK(a[0].skipped[0].last == 5);
    CHECK(a[0].skipped[0].reason == "addressed");
    auto ast = alice->stat();
    auto g = group_of(ast, "default");
    REQUIRE(g);
    CHECK(g->held == 4);
    CHECK(g->delivered == 3);
    CHECK(g->position == 7);

    auto ob = opts("", 10, 10s);
    ob.as = "bob";
    auto b = take(*bob, ob);
    REQUIRE(b.size() == 4);
    CHECK(b[0].seq == 2);
    CHECK(b[1].seq == 4);
    CHECK(b[2].seq == 0);
    CHECK(b[2].data == "by hand for bob");
    CHECK(b[3].seq == 5);
    auto st = alice->stat();
    CHECK(group_of(st, "default")->held == 0);
    CHECK(st.msgs == 0);

    // Nothing for alice in a read: she gets nothing, and the range waits.
    alice->send(bodies({"7 for bob"}, "", "bob"), {});
    CHECK(take(*alice, oa).empty());
    alice->send(bodies({"8"}), {});
    a = take(*alice, oa);
    REQUIRE(a.size() == 1);
    CHECK(a[0].seq == 8);
    REQUIRE(a[0].skipped.size() == 1);
    CHECK(a[0].skipped[0].first == 7);
    CHECK(a[0].skipped[0].last == 7);
    CHECK(a[0].skipped[0].reason == "addressed");
    // Bob has something held now: his next call goes through the recv script first.
    b = take(*bob, ob);
    REQUIRE(b.size() == 1);
    CHECK(b[0].seq == 7);
    // An addressee reading through the fast path gets what is addressed to it.
    alice->send(bodies({"9 for bob", "10 for bob"}, "", "bob"), {});
    b = take(*bob, ob);
    REQUIRE(b.size() == 2);
    CHECK(b[0].seq == 9);
    CHECK(b[1].seq == 10);
    CHECK(b[0].skipped.empty());
    a = take(*alice, oa);
    CHECK(a.empty());
    CHECK(alice->stat().msgs == 0);
}

TEST_CASE("redis mailbox: fast path and recv script mixed in one group", "[mbox][redis]") {
    testing::redis_server srv;
    REDIS_OR_SKIP(srv);
    auto loc = make_box(srv, "mixed");
    auto t = mbox::redis::open(loc);  // take mode: the fast path
    auto k = mbox::redis::open(loc);  // --ack: the recv script
    auto ot = opts("g", 3, 0ms);
    auto ok = opts("g", 2, 0ms);
    ok.ack = true;
    CHECK(take(*t, ot).empty());
    std::vector<mbox::outgoing> msgs;
    for (int i = 1; i <= 20; ++i) msgs.push_back({std::to_string(i), "", ""});
    REQUIRE(t->send(msgs, {}).seqs.size() == 20);
    std::vector<std::uint64_t> by_t, by_k, all;
    for (int round = 0; round < 20; ++round) {
        auto x = take(*t, ot);
        for (auto& m : x) {
            CHECK(m.skipped.empty());
            by_t.push_back(m.seq);
            all.push_back(m.seq);
        }
        auto y = take(*k, ok);
        std::vector<std::uint64_t> acks;
        for (auto& m : y) {
            CHECK(m.skipped.empty());
            by_k.push_back(m.seq);
            all.push_back(m.seq);
            acks.push_back(m.seq);
        }
        if (!acks.empty()) CHECK(k->ack("g", acks) == acks.size());
        if (x.empty() && y.empty()) break;
    }
    CHECK(fast_path_used(srv));
    CHECK(std::is_sorted(by_t.begin(), by_t.end()));
    CHECK(std::is_sorted(by_k.begin(), by_k.end()));
    CHECK_FALSE(by_t.empty());
    CHECK_FALSE(by_k.empty());
    std::sort(all.begin(), all.end());
    std::vector<std::uint64_t> want;
    for (std::uint64_t i = 1; i <= 20; ++i) want.push_back(i);
    CHECK(all == want);
    auto st = t->stat();
    auto g = group_of(st, "g");
    REQUIRE(g);
    CHECK(g->delivered == 20);
    CHECK(g->pending == 0);
    CHECK(g->position == 21);
    CHECK(st.msgs == 0);

    // A lease that expires is delivered again to a take-mode receiver, before
    // what is new (the fast path gives way to the recv script).
    auto ol = opts("g", 1, 0ms);
    ol.ack = true;
    ol.lease = 100ms;
    t->send(bodies({"x"}), {});
    auto kx = take(*k, ol);
    REQUIRE(kx.size() == 1);
    CHECK(kx[0].seq == 21);
    t->send(bodies({"y"}), {});
    ::usleep(300000);
    auto ot2 = opts("g", 5, 0ms);
    ot2.lease = 100ms;  // the lease a receiver gives is also what it waits for before taking over
    auto tx = take(*t, ot2);
    REQUIRE(tx.size() == 2);
    CHECK(tx[0].seq == 21);
    CHECK(tx[0].deliveries == 2);
    CHECK(tx[1].seq == 22);
    CHECK(tx[1].deliveries == 1);
    CHECK(take(*t, opts("g", 5, 0ms)).empty());
    st = t->stat();
    CHECK(st.msgs == 0);
    CHECK(group_of(st, "g")->pending == 0);

    // SCRIPT FLUSH between two reads: the fast path's transaction takes
    // nothing without its scripts, loads them again, and loses nothing.
    t->send(bodies({"z1", "z2"}), {});
    REQUIRE(srv.cli({"SCRIPT", "FLUSH"}).status == 0);
    auto tz = take(*t, opts("g", 5, 0ms));
    REQUIRE(tz.size() == 2);
    CHECK(tz[0].seq == 23);
    CHECK(tz[1].seq == 24);
    CHECK(tz[0].skipped.empty());
    st = t->stat();
    CHECK(st.groups.size() == 1);  // no reader left behind
    CHECK(group_of(st, "g")->delivered == 24 + 1);  // 21 was delivered twice
}

TEST_CASE("redis mailbox: fast path after the group was moved by hand", "[mbox][redis]") {
    // The fast path keeps the group's position in the group hash (fast_last)
    // instead of asking XINFO GROUPS; a group moved by other means must not
    // make it deliver from the recorded, stale, position.
    testing::redis_server srv;
    REDIS_OR_SKIP(srv);
    auto loc = make_box(srv, "byhand");
    std::string stream = stream_key(loc);
    auto t = mbox::redis::open(loc);
    CHECK(take(*t, opts("g", 4, 0ms)).empty());
    std::vector<mbox::outgoing> msgs;
    for (int i = 1; i <= 12; ++i) msgs.push_back({std::to_string(i), "", ""});
    REQUIRE(t->send(msgs, {}).seqs.size() == 12);
    auto a = take(*t, opts("g", 4, 0ms));  // 1..4, through the fast path: fast_last recorded
    REQUIRE(a.size() == 4);
    CHECK(a[3].seq == 4);
    CHECK(fast_path_used(srv));
    auto hash = srv.cli({"HGET", stream + ":g:g", "fast_last"});
    CHECK(hash.out.find('-') != std::string::npos);

    // Someone else takes 5 and 6 with a plain XREADGROUP: the group is at 6.
    auto xr = srv.cli({"XREADGROUP", "GROUP", "g", "someone", "COUNT", "2", "NOACK", "STREAMS", stream, ">"});
    REQUIRE(xr.status == 0);
    CHECK(xr.out.find("body") != std::string::npos);
    auto b = take(*t, opts("g", 3, 0ms));
    REQUIRE(b.size() == 3);
    CHECK(b[0].seq == 7);  // not 5 again
    CHECK(b[2].seq == 9);

    auto c = take(*t, opts("g", 10, 0ms));  // the recv script took 7..9: the fast path again, from 9
    REQUIRE(c.size() == 3);
    CHECK(c[0].seq == 10);
    CHECK(c[2].seq == 12);
    CHECK(take(*t, opts("g", 10, 0ms)).empty());
    auto st = t->stat();
    CHECK(st.groups.size() == 1);  // no reader left behind
}
