// SPDX-License-Identifier: MIT
// ipc-shm: shared memory segments, consistent updates, message channels and
// semaphores from the shell. The verbs live in verbs.cpp; this is the table
// of contents.
#include "verbs.hpp"

using namespace ipc_shm;

namespace {

void one_name(CLI::App* verb, options& o, const char* what) {
    verb->add_option("name", o.name, what)->type_name("NAME")->each([&](const std::string&) { o.name_given = true; });
}

void sysv_selector(CLI::App* verb, options& o, const char* what) {
    verb->add_option("-k,--key", o.key, std::string("System V ") + what + " by key (decimal or 0x hex)")->type_name("KEY");
    verb->add_option("-i,--id", o.id, std::string("System V ") + what + " by id")->type_name("ID");
}

} // namespace

int main(int argc, char** argv) {
    ipc::cli::app app("ipc-shm", "Shared memory: segments, consistent updates, message channels, semaphores.");
    options o;

    auto* create = app.verb("create", "Make a segment, a consistent segment, a channel or a semaphore",
                            [&] { return do_create(o); });
    create->add_option("name", o.names, "POSIX object NAME or /NAME")->type_name("NAME");
    create->add_option("-s,--size", o.size, "Size of a segment (of a consistent one: of its content)")->type_name("SIZE");
    create->add_flag("--consistent", o.consistent, "A double-buffered segment whose updates readers see whole");
    create->add_flag("--channel", o.channel, "A message channel (ring) of --max-bytes");
    create->add_option("--max-bytes", o.max_bytes, "Channel: ring capacity in bytes")->type_name("SIZE");
    create->add_option("--max-msg-size", o.max_msg_size, "Channel: largest message (default: half the ring)")
        ->type_name("SIZE");
    create->add_flag("--semaphore", o.semaphore, "A semaphore (with --key: a System V semaphore set)");
    create->add_option("--value", o.value, "Semaphore: initial value (default 0)")->type_name("N");
    create->add_option("-k,--key", o.key, "System V: the key of a new segment or semaphore set")->type_name("KEY");
    create->add_flag("-x,--exclusive", o.exclusive, "Fail (73) if it exists");
    app.add_mode(create, o.mode);

    auto* stat = app.verb("stat", "Describe objects", [&] { return do_stat(o); });
    stat->add_option("name", o.names, "POSIX object NAME or /NAME")->type_name("NAME");
    sysv_selector(stat, o, "segment (or with --semaphore, semaphore set)");
    stat->add_flag("--semaphore", o.semaphore, "With --key/--id: a System V semaphore set");

    auto* ls = app.verb("ls", "List /dev/shm objects with their kind, or System V segments and semaphores",
                        [&] { return do_ls(o); });
    ls->add_flag("--sysv", o.sysv, "List System V segments and semaphore sets");
    ls->add_option("--kind", o.kind, "Only objects of KIND: segment, consistent, channel, semaphore, mailbox, other")
        ->type_name("KIND");

    auto* rm = app.verb("rm", "Remove objects by name, or in bulk by selectors", [&] { return do_rm(o); });
    rm->add_option("name", o.names, "POSIX object NAME or /NAME")->type_name("NAME");
    sysv_selector(rm, o, "segment (or with --semaphore, semaphore set)");
    rm->add_flag("--semaphore", o.semaphore, "With --key/--id: a System V semaphore set");
    rm->add_option("--match", o.match, "Objects whose names match GLOB")->type_name("GLOB");
    rm->add_option("--older-than", o.older_than, "Objects not modified for DUR")->type_name("DUR");
    rm->add_option("--owner", o.owner, "Objects owned by USER")->type_name("USER");
    rm->add_flag("--stale", o.stale, "Objects no process holds, whose creator is gone");
    rm->add_option("--kind", o.kind, "Only objects of KIND (default: the kinds ipc-shm makes)")->type_name("KIND");
    rm->add_flag("--dry-run", o.dry_run, "Say what would be removed; remove nothing");

    auto* resize = app.verb("resize", "Change a segment's size", [&] { return do_resize(o); });
    one_name(resize, o, "POSIX segment NAME or /NAME");
    resize->add_option("-s,--size", o.size, "New size")->required()->type_name("SIZE");

    auto* read = app.verb("read", "Write a segment's bytes to stdout (raw, --hex or --base64)", [&] { return do_read(o); });
    one_name(read, o, "POSIX segment NAME or /NAME");
    sysv_selector(read, o, "segment");
    read->add_option("--offset", o.offset, "First byte (default 0)")->type_name("SIZE");
    read->add_option("--length", o.length, "Bytes to read (default: to the end)")->type_name("SIZE");
    read->add_flag("--hex", o.hex, "Offset, hex and ASCII columns");
    read->add_flag("--base64", o.base64, "Base64, one line");

    auto* write = app.verb("write", "Write stdin (or --data) into a segment", [&] { return do_write(o); });
    one_name(write, o, "POSIX segment NAME or /NAME");
    sysv_selector(write, o, "segment");
    write->add_option("--offset", o.offset, "First byte (default 0)")->type_name("SIZE");
    write->add_option("--data", o.data, "The bytes to write (default: all of stdin)")->type_name("TEXT");
    app.add_wait(write, o.wait);

    auto* watch = app.verb("watch", "Stream which byte ranges of a segment change", [&] { return do_watch(o); });
    one_name(watch, o, "POSIX segment NAME or /NAME");
    sysv_selector(watch, o, "segment");
    watch->add_option("--interval", o.interval, "How often to compare (default 200ms)")->type_name("DUR");
    watch->add_option("-c,--count", o.changes, "Stop after N records (default: until interrupted)")->type_name("N");
    watch->add_option("-t,--timeout", o.wait.timeout, "Stop watching after DUR (default inf)")->type_name("DUR");

    auto* send = app.verb("send", "Send messages into a channel", [&] { return do_send(o); });
    one_name(send, o, "Channel NAME or /NAME");
    send->add_option("message", o.messages, "Messages (default: read from stdin)")->type_name("MSG");
    send->add_option("-w,--wait", o.wait_mode, "How to wait for room: spin, block or adaptive (default)")
        ->type_name("MODE");
    app.add_input(send, o.input);
    app.add_wait(send, o.wait);

    auto* recv = app.verb("recv", "Receive messages from a channel", [&] { return do_recv(o); });
    one_name(recv, o, "Channel NAME or /NAME");
    recv->add_option("-c,--count", o.count, "Take N messages (default 1)")
        ->type_name("N")
        ->each([&](const std::string&) { o.count_set = true; });
    recv->add_flag("-f,--follow", o.follow, "Keep taking messages");
    recv->add_option("-w,--wait", o.wait_mode, "How to wait for messages: spin, block or adaptive (default)")
        ->type_name("MODE");
    app.add_print(recv, o.print);
    app.add_wait(recv, o.wait);

    auto* post = app.verb("post", "Release a semaphore (V, +1)", [&] { return do_post(o); });
    one_name(post, o, "POSIX semaphore NAME or /NAME");
    sysv_selector(post, o, "semaphore set");

    auto* wait = app.verb("wait", "Take a semaphore (P, -1), or wait until an object exists", [&] { return do_wait(o); });
    one_name(wait, o, "POSIX semaphore (or with --exists, any object) NAME or /NAME");
    sysv_selector(wait, o, "semaphore set");
    wait->add_flag("--exists", o.exists, "Wait until the object exists instead");
    app.add_wait(wait, o.wait);

    auto* run = app.verb("run", "Hold a semaphore while COMMAND runs; released also when COMMAND is killed",
                         [&] { return do_run(o); });
    one_name(run, o, "POSIX semaphore NAME or /NAME");
    sysv_selector(run, o, "semaphore set");
    run->add_option("command", o.command, "The command and its arguments, after --")->type_name("COMMAND");
    app.add_wait(run, o.wait);

    return app.run(argc, argv);
}
