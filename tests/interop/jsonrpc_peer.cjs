// SPDX-License-Identifier: MIT
// The other side of ipc-rpc's interoperation tests: JSON-RPC 2.0 from the npm
// package json-rpc-2.0 (an independent implementation, transport-agnostic),
// over TCP with one JSON text per line, the framing ipc-rpc speaks.
//
//   node jsonrpc_peer.cjs server [PORTFILE]
//       Serves on 127.0.0.1 on a port the system chooses; prints its endpoint
//       (tcp:127.0.0.1:PORT) on stdout once it accepts calls, and writes the
//       port to PORTFILE when given. Serves until SIGTERM, or until its parent
//       process is gone.
//   node jsonrpc_peer.cjs client HOST PORT
//       Calls an ipc-rpc server's methods (the set tests/cli/test_rpc_interop.cpp
//       serves) and prints one JSON line per answer, {"step":...,"result":...}
//       or {"step":...,"error":{...}} or {"step":...,"response":...}, then a
//       {"step":"wire","lines":[...]} line with every line the server sent.
//
// The package is found through NODE_PATH (the build tree's interop/node_modules,
// installed by tests/interop/npm_install.sh).
"use strict";

const net = require("node:net");
const fs = require("node:fs");
const { JSONRPCServer, JSONRPCClient, JSONRPCErrorException } = require("json-rpc-2.0");

const MAX_LINE = 1 << 20;

function usage() {
    process.stderr.write("usage: jsonrpc_peer.cjs server [PORTFILE] | client HOST PORT\n");
    process.exit(64);
}

// Calls onLine for each line received (without "\n", and a "\r" before it),
// and for a last line without its newline when the peer ends the connection.
function frameLines(socket, onLine, onEnd) {
    let buf = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk) => {
        buf += chunk;
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
            let line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            if (line.endsWith("\r")) line = line.slice(0, -1);
            if (line.trim() !== "") onLine(line);
        }
        if (buf.length > MAX_LINE) {
            process.stderr.write("jsonrpc_peer: a line over 1 MiB, connection closed\n");
            socket.destroy();
        }
    });
    socket.on("end", () => {
        if (buf.trim() !== "") onLine(buf);
        buf = "";
        if (onEnd) onEnd();
    });
}

// ---- server ---------------------------------------------------------------

function serve(portfile) {
    const notes = [];
    const server = new JSONRPCServer({ errorListener: () => {} });

    // Positional params: [a, b].
    server.addMethod("add", (params) => {
        if (!Array.isArray(params) || params.length !== 2 || params.some((x) => typeof x !== "number"))
            throw new JSONRPCErrorException("add takes two numbers", -32602, { got: params ?? null });
        return params[0] + params[1];
    });
    // Named params: {a, b}.
    server.addMethod("concat", (params) => {
        if (params === null || typeof params !== "object" || Array.isArray(params))
            throw new JSONRPCErrorException("concat takes named params a and b", -32602, { got: params ?? null });
        return String(params.a) + String(params.b);
    });
    // The params as JavaScript parsed them, so a caller sees what survived.
    server.addMethod("echo", (params) => params ?? null);
    // Large numbers as JavaScript writes them: "safe" is 2^53-1, exact in a
    // double; "2^64" is written 18446744073709552000 (a rounded value, above
    // 2^64-1); "1e300" is written 1e+300; "string" is the digits of 2^64-1 as
    // a string, the way to send them exactly.
    server.addMethod("big", (params) => {
        switch (params && params.which) {
        case "safe": return Number.MAX_SAFE_INTEGER;
        case "2^64": return 2 ** 64;
        case "1e300": return 1e300;
        case "string": return "18446744073709551615";
        default: throw new JSONRPCErrorException("which: safe, 2^64, 1e300 or string", -32602);
        }
    });
    // An application error with a code and data of its own.
    server.addMethod("fail", (params) => {
        throw new JSONRPCErrorException("failed on purpose", 4711, { reason: "asked to", params: params ?? null });
    });
    // An exception that is no JSONRPCErrorException: the package answers it
    // with its default code (0) and the exception's message.
    server.addMethod("crash", () => {
        throw new Error("an unexpected exception");
    });
    // Records its params; as a call it answers how many it holds.
    server.addMethod("note", (params) => {
        notes.push(params ?? null);
        return notes.length;
    });
    // What "note" recorded, notifications included.
    server.addMethod("notes", () => notes);
    // No result at all: the package answers null.
    server.addMethod("nothing", () => undefined);

    const listener = net.createServer({ allowHalfOpen: true }, (socket) => {
        let pending = 0;
        let ended = false;
        const finish = () => {
            if (ended && pending === 0) socket.end();
        };
        socket.on("error", () => {});
        frameLines(socket, (line) => {
            ++pending;
            Promise.resolve(server.receiveJSON(line)).then((response) => {
                if (response !== null && !socket.destroyed) socket.write(JSON.stringify(response) + "\n");
            }).catch((e) => {
                process.stderr.write(`jsonrpc_peer: ${e && e.stack}\n`);
            }).finally(() => {
                --pending;
                finish();
            });
        }, () => {
            ended = true;
            finish();
        });
    });
    listener.on("error", (e) => {
        process.stderr.write(`jsonrpc_peer: ${e.message}\n`);
        process.exit(69);
    });
    listener.listen(0, "127.0.0.1", () => {
        const port = listener.address().port;
        if (portfile) {
            fs.writeFileSync(portfile + ".tmp", `${port}\n`);
            fs.renameSync(portfile + ".tmp", portfile);
        }
        process.stdout.write(`tcp:127.0.0.1:${port}\n`);
    });

    // Never outlive the test that started this server, even one that was killed.
    const parent = process.ppid;
    setInterval(() => {
        if (process.ppid !== parent) process.exit(0);
    }, 250).unref();
    setTimeout(() => {
        process.stderr.write("jsonrpc_peer: served for 10 minutes, exiting\n");
        process.exit(75);
    }, 10 * 60 * 1000).unref();
}

// ---- client ---------------------------------------------------------------

function clientMode(host, port) {
    const wire = [];
    const socket = net.connect({ host, port: Number(port) });
    const client = new JSONRPCClient((payload) => {
        socket.write(JSON.stringify(payload) + "\n");
    });
    const print = (record) => process.stdout.write(JSON.stringify(record) + "\n");
    const pending = new Set();
    let connected = false;

    const watchdog = setTimeout(() => {
        print({ step: "timeout", pending: [...pending] });
        process.exit(75);
    }, 30000);

    socket.on("error", (e) => {
        print({ step: connected ? "socket" : "connect", error: { message: e.message } });
        process.exit(69);
    });
    socket.on("close", () => print({ step: "closed", closed: true }));
    frameLines(socket, (line) => {
        wire.push(line);
        let message;
        try {
            message = JSON.parse(line);
        } catch (e) {
            print({ step: "unparsable", line });
            return;
        }
        client.receive(message);
    });

    // A call through client.request: its result, or the error it was answered.
    const call = (step, method, params) => {
        pending.add(step);
        return client.request(method, params).then(
            (result) => print({ step, result: result === undefined ? null : result }),
            (e) => print({ step, error: { code: e.code, message: e.message, data: e.data ?? null } }),
        ).finally(() => pending.delete(step));
    };
    // A request object sent as it is: the whole response (or responses).
    const advanced = (step, request) => {
        pending.add(step);
        return client.requestAdvanced(request).then(
            (response) => print({ step, response }),
        ).finally(() => pending.delete(step));
    };

    socket.on("connect", async () => {
        connected = true;
        // All at once on one connection: ipc-rpc may answer in any order and
        // the client matches the answers by id.
        client.notify("note", { tag: "from-npm" });
        await Promise.all([
            call("positional", "add", [2, 40]),
            call("named", "hello", { name: "world" }),
            call("echo", "echo", { a: { b: [1, 2, 3] }, s: "caf\u00e9 \"quoted\"\n", neg: -7, f: 0.5 }),
            call("text", "text"),
            call("nothing", "nothing"),
            call("big", "big"),
            call("missing", "nope", [1]),
            call("fail", "fail", { x: 1 }),
            advanced("string-id", { jsonrpc: "2.0", id: "str-1", method: "add", params: [1, 1] }),
            advanced("batch", [
                { jsonrpc: "2.0", id: "b1", method: "add", params: [1, 2] },
                { jsonrpc: "2.0", id: "b2", method: "nope" },
                { jsonrpc: "2.0", method: "note", params: { tag: "from-npm-batch" } },
                { jsonrpc: "2.0", id: "b3", method: "echo", params: { x: 1 } },
            ]),
        ]);
        // A notification is never answered: give a wrong answer time to come.
        setTimeout(() => {
            clearTimeout(watchdog);
            print({ step: "wire", lines: wire });
            socket.end();
            // The server closes its side once it has read the end of ours.
            setTimeout(() => {
                print({ step: "closed", closed: false });
                process.exit(75);
            }, 10000).unref();
        }, 500);
    });
}

const [mode, ...args] = process.argv.slice(2);
if (mode === "server" && args.length <= 1) serve(args[0]);
else if (mode === "client" && args.length === 2) clientMode(args[0], args[1]);
else usage();
