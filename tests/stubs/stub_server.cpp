// SPDX-License-Identifier: MIT
// A server made of the skeleton `ipc-rpc gen` wrote for calc.json, in C++
// (no commands): prints its endpoint once it accepts calls, serves until
// SIGTERM.
#include <fstream>
#include <iostream>

#include "calc_rpc.hpp"
#include "ipc/error.hpp"

namespace {

struct calculator : calc::server_skeleton {
    std::int64_t add(std::int64_t a, std::int64_t b) override { return a + b; }
    std::string greet(const std::string& name, const std::optional<std::string>& title) override {
        return "hello, " + (title ? *title + " " : std::string()) + name;
    }
    std::map<std::string, std::int64_t> stats(const std::vector<std::int64_t>& values) override {
        std::int64_t sum = 0, max = values.empty() ? 0 : values[0];
        for (auto v : values) {
            sum += v;
            max = std::max(max, v);
        }
        return {{"count", static_cast<std::int64_t>(values.size())}, {"sum", sum}, {"max", max}};
    }
    std::uint64_t big(std::uint64_t n) override { return n; }
    std::int64_t count_to(std::int64_t n, const ipc::rpc::callback_ref& tick) override {
        std::int64_t sum = 0;
        for (std::int64_t i = 1; i <= n; ++i) sum += tick(nlohmann::json{{"i", i}}).get<std::int64_t>();
        return sum;
    }
    std::int64_t bump(const std::string& file) override {
        if (file.empty()) throw ipc::rpc::remote_error(ipc::rpc::error_object(-32602, "an empty file name"));
        std::ofstream(file, std::ios::app) << "x\n";
        std::ifstream in(file);
        std::int64_t n = 0;
        for (std::string l; std::getline(in, l);) ++n;
        return n;
    }
};

} // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << "usage: stub_server ENDPOINT\n";
        return 64;
    }
    try {
        calculator impl;
        ipc::rpc::server s(ipc::rpc::listener(ipc::parse::socket_endpoint(argv[1]), 0600), impl.options());
        std::cout << s.where().str() << std::endl;
        s.run();
        return 0;
    } catch (const ipc::error& e) {
        std::cerr << "stub_server: " << e.what() << "\n";
        return static_cast<int>(e.code());
    }
}
