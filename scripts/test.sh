#!/usr/bin/env bash
# Set-up, build and the whole test suite, from a fresh clone: what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
# Tests run in parallel processes, each kernel on one thread: more threads per test would only
# oversubscribe the cores (OpenMP teams spinning against each other).
cd build && OMP_NUM_THREADS=1 ctest --output-on-failure -j"$(nproc)"
