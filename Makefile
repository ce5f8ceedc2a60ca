# Docket: the two commands are `make run` and `make test`.
BUILD_DIR ?= build
JOBS ?= 2
CMAKE_BUILD_TYPE ?= RelWithDebInfo

.PHONY: all deps deps-test configure build run test test-unit test-pg test-e2e bench bench-peers format lint clean image

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

# Docket's benchmark scenarios on DATABASE_URL, or on a throwaway cluster of its own (REPS=1).
bench: deps-test build
	@bench/run.sh

# graphile-worker, the raw SQL limits and Docket on the cluster of ../shared/peers, interleaved
# (REPS=3); writes bench/RESULTS.md. Not part of `make test`.
bench-peers: deps-test build
	@bench/peers.sh

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

format:
	@find worker api tests bench -name '*.cpp' -o -name '*.hpp' | xargs clang-format -i

# clang-tidy on a compile database without GCC precompiled headers (clang cannot read them).
lint: deps
	@cmake -S . -B build-lint -DDOCKET_PCH=OFF >/dev/null && cmake --build build-lint --target docket_core >/dev/null 2>&1 || true
	@find worker/src api -name '*.cpp' | xargs -P $(JOBS) -n 4 clang-tidy -p build-lint --quiet 2>/dev/null \
	  | grep -E "^/.*(warning|error):" | sort -u; true

clean:
	rm -rf $(BUILD_DIR) build-lint
