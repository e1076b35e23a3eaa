# The two commands the README promises: `make test` and `make bench`. Both install
# what they need (tools/install-deps, apt-get) on a fresh Debian 12 machine.
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all release debug test fuzz bench deps-build deps-test deps-bench install format clean

all: release

deps-build:
	@tools/install-deps build
deps-test:
	@tools/install-deps build test
deps-bench:
	@tools/install-deps build bench

release: deps-build
	cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DJSMALLOC_BUILD_TESTS=ON \
	  -DJSMALLOC_BUILD_BENCH=ON $(CMAKE_FLAGS) >/dev/null
	cmake --build build/release -j $(JOBS)

debug: deps-build
	cmake -S . -B build/debug -DCMAKE_BUILD_TYPE=Debug -DJSMALLOC_DEBUG=ON $(CMAKE_FLAGS) >/dev/null
	cmake --build build/debug -j $(JOBS)

test: deps-test release
	cd build/release && ctest --output-on-failure -j $(JOBS) --timeout 600

# The libFuzzer targets (the default and the secure library) for FUZZ_SECONDS (600)
# each, in a clang build of its own; crashes are saved as build/fuzz/crash-* and
# build/fuzz/secure-crash-*, new inputs under build/fuzz/corpus and corpus-secure.
FUZZ_SECONDS ?= 600
fuzz: deps-test
	FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run_fuzz.sh $(CURDIR) $(CURDIR)/build/fuzz long

bench: deps-bench release
	bench/run

install: release
	cmake --install build/release

format:
	clang-format -i $$(git ls-files '*.h' '*.cpp' '*.cc' '*.c')

clean:
	rm -rf build
