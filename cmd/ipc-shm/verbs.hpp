// SPDX-License-Identifier: MIT
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ipc/cli.hpp"

namespace ipc_shm {

struct options {
    std::vector<std::string> names;
    std::string name;  // verbs that take one object
    bool name_given = false;
    std::string key, id;
    bool sysv = false;
    bool semaphore = false;
    bool consistent = false;
    bool channel = false;
    std::string size, max_bytes, max_msg_size;
    std::string mode = "0600";
    bool exclusive = false;
    std::optional<unsigned> value;
    std::string kind;
    bool any_kind = false;
    // rm selectors
    std::string match, older_than, owner;
    bool stale = false;
    bool dry_run = false;
    // read / write
    std::string offset = "0", length;
    bool hex = false, base64 = false;
    std::optional<std::string> data;
    // watch
    std::string interval = "200ms";
    std::uint64_t changes = 0;
    // channel
    std::vector<std::string> messages;
    ipc::cli::wait_options wait;
    ipc::cli::print_options print;
    ipc::cli::input_options input;
    std::string wait_mode = "adaptive";
    std::uint64_t count = 1;
    bool count_set = false;
    bool follow = false;
    // semaphores
    bool exists = false;
    std::vector<std::string> command;
};

int do_create(const options& o);
int do_stat(const options& o);
int do_ls(const options& o);
int do_rm(const options& o);
int do_resize(const options& o);
int do_read(const options& o);
int do_write(const options& o);
int do_watch(const options& o);
int do_send(options o);
int do_recv(const options& o);
int do_post(const options& o);
int do_wait(const options& o);
int do_run(options o);

} // namespace ipc_shm
