#!/usr/bin/env bash
# Set-up, build and the main job on the bundled default, from a fresh clone. Until a trained
# model exists this is `deblur demo`: the engine end to end on an untrained DeblurUNet.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DDEBLUR_TESTS=OFF
cmake --build build -j"$(nproc)" --target deblur
./build/bin/deblur demo "$@"
