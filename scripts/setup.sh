#!/usr/bin/env bash
# Installs the dependencies and builds llama-crab in Release mode into build/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build build -j "$(nproc)"
echo "setup: built build/llama-crab"
