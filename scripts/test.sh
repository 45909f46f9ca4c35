#!/usr/bin/env bash
# Builds llama-crab and runs every test:
#   1. Release build, all ctest labels (unit, model, server);
#   2. Debug build with AddressSanitizer + UndefinedBehaviorSanitizer, unit and model tests;
#   3. the libFuzzer targets (clang-14), each run for a short bounded time.
# Set LLAMA_CRAB_QUICK=1 to run only step 1.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
JOBS="$(nproc)"
TESTDATA="${LLAMA_CRAB_TESTDATA_DIR:-$(pwd)/../shared/testdata}"

echo "== Release build and tests"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLAMA_CRAB_TESTDATA_DIR="$TESTDATA" >/dev/null
cmake --build build -j "$JOBS"
(cd build && ctest --output-on-failure -j "$JOBS" --timeout 900)

if [ "${LLAMA_CRAB_QUICK:-0}" = "1" ]; then exit 0; fi

echo "== Debug build with ASan + UBSan"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DLLAMA_CRAB_SANITIZE=ON -DLLAMA_CRAB_BENCH=OFF \
  -DLLAMA_CRAB_TESTDATA_DIR="$TESTDATA" >/dev/null
cmake --build build-asan -j "$JOBS" --target unit_tests model_tests llama-crab
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest --output-on-failure -j "$JOBS" --timeout 1800 -L 'unit|model')

echo "== Fuzzers (clang-14, libFuzzer)"
CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLLAMA_CRAB_FUZZ=ON \
  -DLLAMA_CRAB_TESTS=OFF -DLLAMA_CRAB_BENCH=OFF >/dev/null
cmake --build build-fuzz -j "$JOBS"
bash scripts/run-fuzzers.sh build-fuzz "${LLAMA_CRAB_FUZZ_SECONDS:-30}"
echo "test.sh: all stages passed"
