// SPDX-License-Identifier: MIT
// ipc-bench, run as a real binary on short runs. No timing is asserted: only
// that every verb and format reports what it measured, consistently.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "json_output.hpp"
#include "process.hpp"

using nlohmann::json;
using namespace std::chrono_literals;
using testing::outcome;

namespace {

const std::string bin = IPC_BENCH_BIN;

outcome bench(std::vector<std::string> args, std::chrono::milliseconds limit = 100s) {
    args.insert(args.begin(), bin);
    return testing::run(std::move(args), std::nullopt, limit);
}

using testing::parse_json;
using testing::parse_lines;

// Short runs: a few round trips, a short stream, one round.
std::vector<std::string> tiny(std::vector<std::string> more) {
    std::vector<std::string> a{"run", "-i", "40", "--warmup", "10", "-d", "20ms", "-r", "1"};
    if (std::find(more.begin(), more.end(), "--cpus") == more.end()) a.insert(a.end(), {"--cpus", "none"});
    a.insert(a.end(), more.begin(), more.end());
    return a;
}

const std::vector<std::string> all_mechanisms{"pipe",     "fifo",    "unix-stream", "unix-dgram", "unix-seqpacket",
                                              "tcp",      "udp",     "posix-mq",    "sysv-mq",    "eventfd",
                                              "futex",    "shm-spin", "shm-adaptive", "shm-block", "rpc",
                                              "rpc-cbor"};

} // namespace

TEST_CASE("bench run: every mechanism, JSON Lines, verified", "[bench]") {
    auto r = bench(tiny({"-s", "64,16K", "--verify", "-o", "jsonl"}));
    INFO(r.err);
    REQUIRE(r.status == 0);
    auto lines = parse_lines(r.out);
    std::set<std::string> seen;
    for (const auto& l : lines) {
        CAPTURE(l.dump());
        std::string name = l["mechanism"];
        seen.insert(name);
        REQUIRE(l["status"].is_string());
        if (l["status"] == "skipped") {
            CHECK(l["note"].is_string());
            continue;
        }
        REQUIRE(l["status"] == "ok");
        CHECK(l["host_cpus"].get<long>() >= 1);
        CHECK(l["placement"] == "unpinned");
        // Latency: ordered percentiles, all numbers, from real samples.
        REQUIRE(l["p50_ns"].is_number());
        CHECK(l["samples"].get<long>() >= 1);
        CHECK(l["min_ns"].get<double>() <= l["p50_ns"].get<double>());
        CHECK(l["p50_ns"].get<double>() <= l["p90_ns"].get<double>());
        CHECK(l["p90_ns"].get<double>() <= l["p99_ns"].get<double>());
        CHECK(l["p99_ns"].get<double>() <= l["p999_ns"].get<double>());
        CHECK(l["p999_ns"].get<double>() <= l["max_ns"].get<double>());
        CHECK(l["min_ns"].get<double>() > 0);
        if (name == "futex") {
            CHECK(l["msgs_per_s"].is_null());
        } else {
            REQUIRE(l["msgs_per_s"].is_number());
            CHECK(l["msgs_per_s"].get<double>() > 0);
            CHECK(l["bytes_per_s"].get<double>() ==
                  Approx(l["msgs_per_s"].get<double>() * l["size_bytes"].get<double>()));
        }
        // A toolkit path is measured beside its raw baseline.
        if (l["impl"] == "toolkit" && name != "shm-block" && !name.starts_with("mbox")) {
            CHECK(l["raw_p50_ns"].is_number());
            CHECK(l["raw_msgs_per_s"].is_number());
        } else {
            CHECK(l["raw_p50_ns"].is_null());
        }
        // --verify: nothing lost, duplicated, reordered or corrupted (UDP
        // may lose on a loaded machine; it is still counted, as a number).
        if (l["size_bytes"].get<int>() >= 16 && name != "eventfd" && name != "futex") {
            REQUIRE(l["lost"].is_number());
            if (name != "udp") {
                CHECK(l["lost"] == 0);
                CHECK(l["duplicated"] == 0);
                CHECK(l["reordered"] == 0);
            }
            CHECK(l["corrupted"] == 0);
        } else {
            CHECK(l["lost"].is_null());
        }
    }
    for (const auto& m : all_mechanisms) CHECK(seen.count(m) == 1);
    // Signals carry no data: one row each, at 8 bytes.
    std::size_t eventfd_rows = 0;
    for (const auto& l : lines)
        if (l["mechanism"] == "eventfd") {
            ++eventfd_rows;
            CHECK(l["size_bytes"] == 8);
        }
    CHECK(eventfd_rows == 1);
}

TEST_CASE("bench run: ipc-rpc echo calls beside the raw Unix stream, verified", "[bench][rpc]") {
    auto r = bench(tiny({"-M", "rpc,rpc-cbor", "-s", "64,4K", "--verify", "-o", "jsonl"}));
    INFO(r.err);
    REQUIRE(r.status == 0);
    auto lines = parse_lines(r.out);
    REQUIRE(lines.size() == 4);
    std::set<std::pair<std::string, int>> seen;
    for (const auto& l : lines) {
        CAPTURE(l.dump());
        seen.emplace(l["mechanism"].get<std::string>(), l["size_bytes"].get<int>());
        REQUIRE(l["status"] == "ok");
        CHECK(l["impl"] == "toolkit");
        CHECK(l["samples"].get<long>() >= 1);
        CHECK(l["min_ns"].get<double>() > 0);
        CHECK(l["p50_ns"].get<double>() <= l["p99_ns"].get<double>());
        CHECK(l["msgs_per_s"].get<double>() > 0);
        // The raw baseline: the bare Unix stream ping-pong.
        CHECK(l["raw_p50_ns"].get<double>() > 0);
        CHECK(l["raw_msgs_per_s"].get<double>() > 0);
        // Sequence numbers and checksums came back in the echoed payloads.
        CHECK(l["lost"] == 0);
        CHECK(l["duplicated"] == 0);
        CHECK(l["reordered"] == 0);
        CHECK(l["corrupted"] == 0);
    }
    CHECK(seen == std::set<std::pair<std::string, int>>{{"rpc", 64}, {"rpc", 4096}, {"rpc-cbor", 64}, {"rpc-cbor", 4096}});
}

TEST_CASE("bench run: sizes over a mechanism's limit are skipped with the reason", "[bench]") {
    auto r = bench(tiny({"-M", "posix-mq,pipe", "-s", "1M", "--only", "latency", "-o", "jsonl"}));
    REQUIRE(r.status == 0);
    auto lines = parse_lines(r.out);
    REQUIRE(lines.size() == 2);
    // In the order asked for.
    CHECK(lines[0]["mechanism"] == "posix-mq");
    CHECK(lines[0]["status"] == "skipped");
    CHECK(lines[0]["note"].get<std::string>().find("largest message") != std::string::npos);
    CHECK(lines[0]["p50_ns"].is_null());
    CHECK(lines[1]["mechanism"] == "pipe");
    CHECK(lines[1]["status"] == "ok");
    CHECK(lines[1]["msgs_per_s"].is_null());  // --only latency
}

TEST_CASE("bench run: JSON document, CSV and text agree on the rows", "[bench]") {
    auto args = tiny({"-M", "pipe,shm-block", "-s", "64,1K"});
    auto j = bench([&] { auto a = args; a.push_back("--json"); return a; }());
    REQUIRE(j.status == 0);
    auto doc = parse_json(j.out);
    REQUIRE(doc["results"].size() == 4);
    CHECK(doc["host"]["cpus"].get<long>() >= 1);
    CHECK(doc["host"]["kernel"].get<std::string>().rfind("Linux", 0) == 0);
    CHECK(doc["host"].contains("pipe_max_size_bytes"));
    CHECK(doc["host"].contains("mq_msgsize_max_bytes"));
    CHECK(doc["results"][0]["mechanism"] == "pipe");
    CHECK(doc["results"][0]["size_bytes"] == 64);
    CHECK(doc["results"][3]["mechanism"] == "shm-block");
    CHECK(doc["results"][3]["size_bytes"] == 1024);

    auto c = bench([&] { auto a = args; a.insert(a.end(), {"-o", "csv"}); return a; }());
    REQUIRE(c.status == 0);
    std::size_t rows = std::count(c.out.begin(), c.out.end(), '\n');
    CHECK(rows == 5);  // header and four rows
    CHECK(c.out.rfind("mechanism,size_bytes,impl,", 0) == 0);

    auto t = bench(args);
    REQUIRE(t.status == 0);
    CHECK(t.out.rfind("# Linux", 0) == 0);
    CHECK(t.out.find("MECHANISM") != std::string::npos);
    CHECK(t.out.find("shm-block") != std::string::npos);
    CHECK(bench([&] { auto a = args; a.push_back("-q"); return a; }()).out.empty());
}

TEST_CASE("bench run: both placements run, and what was obtained is reported", "[bench]") {
    auto same = bench(tiny({"-M", "pipe", "-s", "64", "--cpus", "same", "-o", "jsonl"}));
    REQUIRE(same.status == 0);
    CHECK(parse_lines(same.out)[0]["placement"] == "CPU 0 (both)");
    if (::sysconf(_SC_NPROCESSORS_ONLN) >= 2) {
        auto two = bench(tiny({"-M", "shm-adaptive", "-s", "64", "--cpus", "0,1", "-o", "jsonl"}));
        REQUIRE(two.status == 0);
        CHECK(parse_lines(two.out)[0]["placement"] == "CPUs 0,1");
    }
}

TEST_CASE("bench run: bad input is a usage error", "[bench]") {
    auto r = bench({"run", "-M", "carrier-pigeon"});
    CHECK(r.status == 64);
    CHECK(r.err.find("no mechanism 'carrier-pigeon'") != std::string::npos);
    CHECK(r.err.find("shm-spin") != std::string::npos);  // the list of what there is
    CHECK(bench({"run", "-s", "0"}).status == 64);
    CHECK(bench({"run", "-s", "lots"}).status == 64);
    CHECK(bench({"run", "--cpus", "0;1"}).status == 64);
    CHECK(bench({"run", "--only", "bandwidth"}).status == 64);
    CHECK(bench({"run", "-d", "inf"}).status == 64);
    CHECK(bench({"run", "-r", "0"}).status == 64);
    CHECK(bench({"frobnicate"}).status == 64);
}

TEST_CASE("bench check: facts and every mechanism tried for real", "[bench][check]") {
    auto r = bench({"check", "--json"});
    INFO(r.err);
    REQUIRE(r.status == 0);
    auto doc = parse_json(r.out);
    std::set<std::string> names;
    for (const auto& c : doc["checks"]) {
        names.insert(c["check"]);
        CHECK(c["ok"].is_boolean());
        CHECK(c["detail"].is_string());
    }
    for (const auto& m : all_mechanisms) CHECK(names.count(m) == 1);
    for (const char* fact : {"mqueue-mount", "dev-shm", "pipe-max-size", "rlimit-msgqueue", "sysv-msgmax"})
        CHECK(names.count(fact) == 1);
    for (const auto& c : doc["checks"])
        if (c["check"] == "pipe" || c["check"] == "shm-adaptive" || c["check"] == "sysv-mq") CHECK(c["ok"] == true);
    CHECK(bench({"check", "--require", "pipe,mq,shm,unix"}).status == 0);
    auto bad = bench({"check", "--require", "telepathy"});
    CHECK(bad.status == 64);
}

TEST_CASE("bench check: reports a missing mqueue mount as it is", "[bench][check]") {
    // In a private mount namespace: without the mount, then with it.
    auto without = testing::run({"unshare", "-m", "sh", "-c",
                                 "umount /dev/mqueue 2>/dev/null; '" + bin + "' check --require mqueue-mount --json"});
    CHECK(without.status == 1);
    CHECK(without.err.find("required mqueue-mount is unusable") != std::string::npos);
    CHECK(without.err.find("mount -t mqueue") != std::string::npos);
    auto doc = parse_json(without.out);
    bool found = false;
    for (const auto& c : doc["checks"])
        if (c["check"] == "mqueue-mount") {
            found = true;
            CHECK(c["ok"] == false);
            CHECK(c["required"] == true);
        }
    CHECK(found);
    auto with = testing::run({"unshare", "-m", "sh", "-c",
                              "mkdir -p /dev/mqueue && mount -t mqueue none /dev/mqueue && '" + bin +
                                  "' check --require mqueue-mount,posix-mq"});
    CHECK(with.status == 0);
}

namespace {

void write_text(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary);
    out << text;
    REQUIRE(out.good());
}

std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

} // namespace

TEST_CASE("bench report: Markdown and an SVG plot from saved runs", "[bench][report]") {
    testing::temp_dir dir;
    auto j = bench(tiny({"-M", "pipe,shm-adaptive", "-s", "64,4K", "--json"}));
    REQUIRE(j.status == 0);
    write_text(dir / "a.json", j.out);
    auto l = bench(tiny({"-M", "pipe,shm-adaptive", "-s", "64,4K", "-o", "jsonl"}));
    REQUIRE(l.status == 0);
    write_text(dir / "b.jsonl", l.out);

    auto md = bench({"report", dir / "a.json"});
    REQUIRE(md.status == 0);
    CHECK(md.out.find("| mechanism | size |") != std::string::npos);
    CHECK(md.out.find("| pipe | 64 B | toolkit |") != std::string::npos);
    CHECK(md.out.find("| shm-adaptive | 4 KiB | toolkit |") != std::string::npos);
    CHECK(md.out.find("Host: Linux") != std::string::npos);

    auto r = bench({"report", dir / "a.json", dir / "b.jsonl", "--svg", dir / "plot.svg", "--markdown", dir / "t.md"});
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK(r.out.empty());
    auto svg = read_text(dir / "plot.svg");
    CHECK(svg.find("<svg") != std::string::npos);
    // A well-formed XML document, with one legend entry per mechanism and file.
    auto parsed = testing::run({"/usr/bin/python3", "-c",
                                "import sys, xml.dom.minidom as m; d = m.parse(sys.argv[1]); "
                                "print(len(d.getElementsByTagName('svg')))",
                                dir / "plot.svg"});
    INFO(parsed.err);
    CHECK(parsed.status == 0);
    CHECK(parsed.out == "1\n");
    CHECK(svg.find("pipe (a.json)") != std::string::npos);
    CHECK(svg.find("shm-adaptive (b.jsonl)") != std::string::npos);
    CHECK(read_text(dir / "t.md").find("## b.jsonl") != std::string::npos);
}

TEST_CASE("bench report --compare: ratios, and --fail-over for CI", "[bench][report]") {
    testing::temp_dir dir;
    auto l = bench(tiny({"-M", "pipe,posix-mq", "-s", "64", "-o", "jsonl"}));
    REQUIRE(l.status == 0);
    write_text(dir / "old.jsonl", l.out);
    // The same run, with pipe's round trips twice as slow and its rate halved.
    std::string slower;
    for (auto line : parse_lines(l.out)) {
        if (line["mechanism"] == "pipe") {
            line["p50_ns"] = line["p50_ns"].get<double>() * 2;
            line["msgs_per_s"] = line["msgs_per_s"].get<double>() / 2;
        }
        slower += line.dump() + "\n";
    }
    write_text(dir / "new.jsonl", slower);

    auto same = bench({"report", "--compare", dir / "old.jsonl", dir / "old.jsonl", "--fail-over", "0", "-o", "jsonl"});
    CHECK(same.status == 0);
    for (const auto& c : parse_lines(same.out)) {
        CHECK(c["p50_worse_pct"] == 0.0);
        CHECK(c["regressed"] == false);
    }

    auto worse = bench({"report", "--compare", dir / "old.jsonl", dir / "new.jsonl", "--fail-over", "20", "-o", "jsonl"});
    CHECK(worse.status == 1);
    CHECK(worse.err.find("pipe at 64 bytes got worse by 100.0%") != std::string::npos);
    auto rows = parse_lines(worse.out);
    REQUIRE(rows.size() == 2);
    for (const auto& c : rows) {
        if (c["mechanism"] == "pipe") {
            CHECK(c["p50_worse_pct"].get<double>() == Approx(100.0));
            CHECK(c["msgs_worse_pct"].get<double>() == Approx(50.0));
            CHECK(c["regressed"] == true);
        } else {
            CHECK(c["regressed"] == false);
        }
    }
    // Without --fail-over it only reports.
    CHECK(bench({"report", "--compare", dir / "old.jsonl", dir / "new.jsonl"}).status == 0);
}

TEST_CASE("bench report: bad input", "[bench][report]") {
    testing::temp_dir dir;
    write_text(dir / "junk", "not json\n");
    auto junk = bench({"report", dir / "junk"});
    CHECK(junk.status == 65);
    CHECK(junk.err.find("line 1 is not JSON") != std::string::npos);
    CHECK(bench({"report", dir / "missing.json"}).status == 66);
    CHECK(bench({"report"}).status == 64);
    CHECK(bench({"report", dir / "junk", "--fail-over", "5"}).status == 64);
    CHECK(bench({"report", "--compare", dir / "junk"}).status == 64);
}

TEST_CASE("bench run --peers: nng and ZeroMQ beside the toolkit", "[bench][peers]") {
    if (testing::thread_sanitized()) {
        // Their threads synchronise in code TSan cannot see (the Debian
        // libraries are not instrumented): it reports races inside libzmq.
        WARN("skipped under TSan: libnng and libzmq are not instrumented");
        return;
    }
    // tools/deps.sh installs libnng-dev and libzmq3-dev, so this build has both.
    auto r = bench(tiny({"--peers", "-M", "nng-pair,zmq-pair,unix-stream", "-s", "64,4K", "--verify", "-o", "jsonl"}));
    INFO(r.err);
    REQUIRE(r.status == 0);
    auto lines = parse_lines(r.out);
    REQUIRE(lines.size() == 6);
    for (const auto& l : lines) {
        CAPTURE(l.dump());
        CHECK(l["status"] == "ok");
        CHECK(l["p50_ns"].get<double>() > 0);
        CHECK(l["msgs_per_s"].get<double>() > 0);
        CHECK(l["lost"] == 0);
        CHECK(l["corrupted"] == 0);
    }
    // Their socket directories are gone (no other test makes these).
    for (const auto& e : std::filesystem::directory_iterator("/tmp"))
        CHECK(e.path().filename().string().rfind("ipc-bench-peer-", 0) != 0);
    // Not measured unless asked for.
    auto plain = bench(tiny({"-M", "all", "--only", "latency", "-s", "64", "-o", "jsonl"}));
    REQUIRE(plain.status == 0);
    CHECK(plain.out.find("nng-pair") == std::string::npos);
    auto peers = bench(tiny({"--peers", "--only", "latency", "-s", "64", "-o", "jsonl"}));
    REQUIRE(peers.status == 0);
    CHECK(peers.out.find("\"zmq-pair\"") != std::string::npos);
}
