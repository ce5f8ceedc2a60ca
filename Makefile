# Docket: the two commands are `make run` and `make test`.
BUILD_DIR ?= build
JOBS ?= 2
CMAKE_BUILD_TYPE ?= RelWithDebInfo

.PHONY: all deps deps-test configure build run test test-unit test-pg test-e2e test-scale test-asan test-tsan fuzz bench bench-peers soak \
        format format-check lint clean image

all: build

deps:
	@scripts/deps.sh

deps-test:
	@scripts/deps.sh test

$(BUILD_DIR)/CMakeCache.txt: | deps
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(CMAKE_BUILD_TYPE) >/dev/null

configure: $(BUILD_DIR)/CMakeCache.txt

build: deps configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

# Starts Docket on its embedded PostgreSQL (./.docket) with a worker running the demo kinds.
run: build
	$(BUILD_DIR)/docket dev

# Every test, against a throwaway PostgreSQL cluster the suite starts itself.
test: deps-test build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

test-unit: build
	cd $(BUILD_DIR) && ctest --output-on-failure -L unit

test-pg: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) -L integration

test-e2e: build
	cd $(BUILD_DIR) && ctest --output-on-failure -L e2e

# Beyond one host (README): PgBouncer in transaction mode (and the engine tests rerun through it),
# workers in network namespaces with a cut and a lossy link, clocks 10 minutes off, poison jobs, and
# the 2-minute schedule scenario (DOCKET_TEST_LONG=1; make test runs a 40-second one).
# Each test starts and removes its own servers and namespaces; the partition tests need root.
test-scale: deps-test build
	cd $(BUILD_DIR) && DOCKET_TEST_LONG=1 ctest --output-on-failure -R '^(PgBouncer|Partition|Failover|ClockSkew|Poison|ScheduleLong)'

# tests/sanitizers/lsan.supp: leaks inside libraries we cannot change, each with its reason.
SANITIZER_ENV = ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:detect_leaks=1 \
                LSAN_OPTIONS=suppressions=$(CURDIR)/tests/sanitizers/lsan.supp:print_suppressions=1 \
                UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
LAUNCHER = $(if $(shell command -v ccache),-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)

# The unit and integration suites (and the fuzz corpus replays) built with AddressSanitizer and
# UndefinedBehaviorSanitizer in build-asan; any report fails the run. -O1 -g1 as the sanitizer
# documentation advises: reports keep their file:line stacks and the build takes less of CI's time.
test-asan: deps-test
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDOCKET_SANITIZE=address,undefined -DDOCKET_PCH=OFF \
	  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" $(LAUNCHER) >/dev/null
	@cmake --build build-asan -j $(JOBS) --target docket_unit_tests docket_pg_tests docket_pg_cluster \
	  $(addprefix docket_replay_,$(FUZZ_TARGETS))
	cd build-asan && $(SANITIZER_ENV) ctest --output-on-failure -j $(JOBS) -L 'unit|integration' $(CTEST_ARGS)

# ThreadSanitizer on the tests that run the worker's threads (claim loop, completer, maintainer,
# executors) in-process; in build-tsan. Not part of CI: see README "Testing the boundary".
TSAN_TESTS ?= Engine|Quota|Shutdown|ExactlyOnce|Retries|Scheduling|Restart|Crash|Roles
test-tsan: deps-test
	@cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDOCKET_SANITIZE=thread -DDOCKET_PCH=OFF \
	  $(LAUNCHER) >/dev/null
	@cmake --build build-tsan -j $(JOBS) --target docket_pg_tests docket_e2e_tests docket_pg_cluster
	cd build-tsan && $(SANITIZER_ENV) ctest --output-on-failure -R '$(TSAN_TESTS)' $(CTEST_ARGS)

# libFuzzer targets of tests/fuzz (clang, build-fuzz): each runs FUZZ_SECONDS and its new inputs
# are merged into tests/fuzz/corpus/<target> (commit them: `make test` replays the corpus).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= json enqueue config time
fuzz: deps
	@DOCKET_EXTRA_PACKAGES="clang libclang-rt-14-dev" scripts/deps.sh
	@cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DDOCKET_FUZZ=ON \
	  -DDOCKET_PCH=OFF $(LAUNCHER) >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target $(addprefix docket_fuzz_,$(FUZZ_TARGETS))
	@FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh build-fuzz $(FUZZ_TARGETS)

# Docket's benchmark scenarios on DATABASE_URL, or on a throwaway cluster of its own (REPS=1).
bench: deps-test build
	@bench/run.sh

# graphile-worker, the raw SQL limits and Docket on the cluster of ../shared/peers, interleaved
# (REPS=3); writes bench/RESULTS.md. Not part of `make test`.
bench-peers: deps-test build
	@bench/peers.sh

# A long run (README "Soak"): SOAK_SECONDS (default 7200) at SOAK_RATE jobs/s (default 500) with
# retries, a quota, crawls and a transaction held open; writes bench/soak.{csv,svg,json}.
soak: deps-test build
	@bench/soak.sh

# The container image (deploy/container/Containerfile) with podman, buildah or docker, the first
# one installed; fails with a message when there is none. IMAGE=registry/docket:1.2 to name it.
IMAGE ?= docket:latest
image:
	@engine=$$(for e in podman buildah docker; do command -v $$e >/dev/null && echo $$e && break; done); \
	if [ -z "$$engine" ]; then \
	  echo "make image: no container engine found: install podman, buildah or docker" >&2; exit 1; fi; \
	if [ "$$engine" = buildah ]; then set -- bud; else set -- build; fi; \
	echo "make image: $$engine $$1 -t $(IMAGE)"; \
	$$engine "$$1" -f deploy/container/Containerfile -t $(IMAGE) .

# The C++ sources clang-format owns (.clang-format; Debian 12's clang-format 14).
FORMAT_FILES = find worker api tests bench \( -name '*.cpp' -o -name '*.hpp' \) -print

# Reformats the tree in place.
format:
	@DOCKET_EXTRA_PACKAGES=clang-format scripts/deps.sh
	@$(FORMAT_FILES) | xargs clang-format -i

# Fails (listing the files) when a source is not as clang-format would write it: about 5 s.
format-check:
	@DOCKET_EXTRA_PACKAGES=clang-format scripts/deps.sh
	@bad=$$($(FORMAT_FILES) | xargs clang-format --dry-run 2>&1 | grep -E "^[^ ]+:[0-9]+:[0-9]+: (warning|error):" \
	  | cut -d: -f1 | sort -u); \
	if [ -n "$$bad" ]; then echo "format-check: not formatted (run make format):"; echo "$$bad"; exit 1; fi

# clang-tidy (.clang-tidy) on a compile database without GCC precompiled headers (clang cannot
# read them). Fails on any finding or on a file that does not compile; .ci/run runs it (about
# 140 s on 2 idle cores: README, How it is built).
lint:
	@DOCKET_EXTRA_PACKAGES=clang-tidy scripts/deps.sh
	@cmake -S . -B build-lint -DDOCKET_PCH=OFF -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null
	@cmake --build build-lint --target docket_generated >/dev/null  # the generated headers, not a library
	@out=$$(find worker/src api -name '*.cpp' | xargs -P $(JOBS) -n 4 clang-tidy -p build-lint --quiet 2>/dev/null \
	  | grep -E "^/.*(warning|error):" | sort -u); \
	if [ -n "$$out" ]; then echo "$$out"; echo "lint: $$(echo "$$out" | wc -l) finding(s)"; exit 1; fi

clean:
	rm -rf $(BUILD_DIR) build-lint build-asan build-tsan build-fuzz
