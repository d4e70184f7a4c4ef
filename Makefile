# SPDX-License-Identifier: MIT
# Wraps CMake. `make` installs missing Debian packages and builds; `make test`
# builds and runs the whole suite through CTest.

BUILD     ?= build
PREFIX    ?= /usr/local
DESTDIR   ?=
JOBS      ?= $(shell nproc 2>/dev/null || echo 2)
WERROR    ?= ON
CMAKE_ARGS ?=
CTEST_ARGS ?=

CONFIGURE = cmake -S . -B $(1) -DCMAKE_INSTALL_PREFIX=$(PREFIX) -DIPC_WERROR=$(WERROR) $(CMAKE_ARGS) $(2) >/dev/null

.PHONY: all deps build test demo install man sanitize tsan torture bench bench-pipe bench-mq bench-shm bench-mbox bench-rpc clean distclean

all: build

deps:
	@tools/deps.sh build test

build: deps
	@$(call CONFIGURE,$(BUILD))
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

# The toolkit's main job on a fresh machine: a short demonstration.
demo: build
	@tools/demo.sh $(BUILD)

install: build
	DESTDIR=$(DESTDIR) cmake --install $(BUILD) --prefix $(PREFIX)

# Turns man/*.ronn into the roff pages that are committed (needs ronn).
man:
	@tools/deps.sh man
	cd man && for f in *.ronn; do \
	  ronn --roff --manual="ipc toolkit" --organization="ipc toolkit $$(sed -n 's/^project(ipc-toolkit VERSION \([0-9.]*\).*/\1/p' ../CMakeLists.txt)" \
	       --date=2026-11-25 "$$f" >/dev/null || exit 1; done

sanitize: deps
	@$(call CONFIGURE,$(BUILD)-asan,-DIPC_SANITIZE=address$(,)undefined -DCMAKE_BUILD_TYPE=Debug)
	@cmake --build $(BUILD)-asan -j $(JOBS)
	cd $(BUILD)-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

tsan: deps
	@$(call CONFIGURE,$(BUILD)-tsan,-DIPC_SANITIZE=thread -DCMAKE_BUILD_TYPE=Debug)
	@cmake --build $(BUILD)-tsan -j $(JOBS)
	cd $(BUILD)-tsan && TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

# The long crash run: random kill points from a printed seed (TORTURE_ROUNDS,
# IPC_TORTURE_SEED to reproduce one).
TORTURE_ROUNDS ?= 400
torture: build
	$(BUILD)/tests/channel_torture --rounds $(TORTURE_ROUNDS)
	$(BUILD)/tests/mbox_torture --rounds $$(( $(TORTURE_ROUNDS) / 4 ))

# Benchmarks are not tests: ratios against a baseline measured in the same run.
bench: bench-pipe bench-mq bench-shm bench-mbox bench-rpc

bench-pipe: build
	@tools/deps.sh bench
	@bench/pipe-relay.sh $(BUILD)

bench-mq: build
	@tools/deps.sh bench
	@bench/mq-throughput.sh $(BUILD)

bench-shm: build
	@tools/deps.sh bench
	@bench/shm-channel.sh $(BUILD)

# Mailboxes: Redis (a private server) against bare pipelined hiredis loops of
# the same stream commands (entries with only a body, and entries with the
# mailbox's fields), then the local backend on its own.
bench-mbox: build
	@tools/deps.sh bench test
	@$(BUILD)/bench/bench_mbox --start-redis
	@$(BUILD)/bench/bench_mbox --backend local

# ipc-rpc: an echo method (1 and 16 clients, JSON and CBOR, and a command per
# call) against a raw Unix-socket ping-pong of the same request and reply.
bench-rpc: build
	@tools/deps.sh bench
	@$(BUILD)/bench/bench_rpc --rounds 5

clean:
	cmake --build $(BUILD) --target clean

distclean:
	rm -rf $(BUILD) $(BUILD)-asan $(BUILD)-tsan

, := ,
