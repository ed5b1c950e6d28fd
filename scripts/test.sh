#!/usr/bin/env bash
# Set-up, build and the whole test suite, from a fresh clone: what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
# MLflow from PyPI, for the tracking tests against a real `mlflow server` (ctest tracking.mlflow
# starts one on 127.0.0.1 with a temporary SQLite store and stops it afterwards).
mlflow_python="$(bash scripts/setup_mlflow.sh)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DDEBLUR_MLFLOW_PYTHON="$mlflow_python" \
  -DDEBLUR_PAGE_TEST=ON
cmake --build build -j"$(nproc)"
# Tests run in parallel processes, each kernel on one thread: more threads per test would only
# oversubscribe the cores (OpenMP teams spinning against each other).
(cd build && OMP_NUM_THREADS=1 ctest --output-on-failure -j"$(nproc)")

# Everything that parses untrusted input (model files, images, command lines, the C API) and the
# engine's bookkeeping again under AddressSanitizer and UBSan: a malformed file must be an error,
# never an out-of-bounds read that happens to pass.
cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDEBLUR_CUDA=OFF -DDEBLUR_SANITIZE=ON
cmake --build build-sanitize -j"$(nproc)" --target deblur_tests deblur
OMP_NUM_THREADS=1 ./build-sanitize/bin/deblur_tests \
  "[safetensors],[image_io],[metrics],[tiling],[predictor],[autograd],[tensor],[c_api],[cli],[tracking]"
# The HTTP service takes untrusted uploads over the network: its tests again under the same
# sanitizers (a leak or a bad access makes the server exit non-zero, which the tests check).
python3 tests/serve/test_serve.py --deblur build-sanitize/bin/deblur
