// SPDX-License-Identifier: MIT
#include <cstdio>
#include <vector>

#include <ipc/output.hpp>
#include <ipc/parse.hpp>

int main() {
    std::vector<ipc::out::record> rs(1);
    rs[0].add("size_bytes", ipc::parse::size("4K"));
    std::fputs(ipc::out::render(ipc::out::format::jsonl, "sizes", rs).c_str(), stdout);
    return 0;
}
