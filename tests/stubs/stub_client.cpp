// SPDX-License-Identifier: MIT
// A client made of the stubs `ipc-rpc gen` wrote for calc.json: calls every
// method with typed values and prints what came back, one line each, for
// the CLI tests to check. Exit status: 0, or the ipc::error's status.
#include <iostream>

#include "calc_rpc.hpp"
#include "ipc/error.hpp"

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << "usage: stub_client TARGET\n";
        return 64;
    }
    try {
        calc::client c(argv[1]);
        std::cout << "add " << c.add(40, 2) << "\n";
        std::cout << "add_negative " << c.add(-5, -7) << "\n";
        std::cout << "greet " << c.greet("Ann", std::nullopt) << "\n";
        std::cout << "greet_title " << c.greet("Ann", std::string("Dr")) << "\n";
        auto s = c.stats({3, 9, 4});
        std::cout << "stats " << s["count"] << " " << s["sum"] << " " << s["max"] << "\n";
        std::cout << "big " << c.big(18446744073709551615ULL) << "\n";
        std::cout << "count_to " << c.count_to(3, [](const nlohmann::json& p) { return p["i"].get<int>() * 10; }) << "\n";
        try {
            c.raw().call("add", nlohmann::json{{"a", "two"}, {"b", 1}});
            std::cout << "typed_check missing\n";
        } catch (const ipc::rpc::remote_error& e) {
            std::cout << "typed_check " << e.code() << "\n";
        }
        return 0;
    } catch (const ipc::rpc::remote_error& e) {
        std::cerr << "stub_client: error answer " << e.object().dump() << "\n";
        return 1;
    } catch (const ipc::error& e) {
        std::cerr << "stub_client: " << e.what() << "\n";
        return static_cast<int>(e.code());
    }
}
