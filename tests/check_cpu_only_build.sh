#!/usr/bin/env bash
# check_cpu_only_build.sh: proves a CPU-only build needs no CUDA and links none. Configures this
# source tree with -DDEBLUR_CUDA=OFF -DDEBLUR_TESTS=OFF into BUILD_DIR (reused when present),
# builds only the `deblur` CLI and the C API example `deblur_example`, then checks that:
#   - configure said the CUDA backend is OFF and never looked for a CUDA compiler;
#   - neither binary needs a CUDA library, directly or indirectly (ldd), nor carries CUDA
#     runtime symbols (nm: a statically linked runtime would not show in ldd);
#   - `deblur --help` runs, and the example reports a missing model through the C API.
# ctest runs it (test cpu_only_build); by hand:
#   tests/check_cpu_only_build.sh SOURCE_DIR BUILD_DIR [C_COMPILER CXX_COMPILER [BUILD_TYPE]]
# $CMAKE names the cmake to use (default: the one on PATH).
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: $0 SOURCE_DIR BUILD_DIR [C_COMPILER CXX_COMPILER [BUILD_TYPE]]" >&2
  exit 2
fi
source_dir=$1
cmake=${CMAKE:-cmake}
build_dir=$2
configure_args=(-DDEBLUR_CUDA=OFF -DDEBLUR_TESTS=OFF "-DCMAKE_BUILD_TYPE=${5:-Release}")
# The same compilers as the build that runs this check, when it says which.
if [[ $# -ge 4 ]]; then
  configure_args+=("-DCMAKE_C_COMPILER=$3" "-DCMAKE_CXX_COMPILER=$4")
fi

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

echo "== configure $source_dir -> $build_dir (${configure_args[*]})"
configure_log=$("$cmake" -S "$source_dir" -B "$build_dir" "${configure_args[@]}" 2>&1) ||
  { echo "$configure_log"; fail "configure failed"; }
grep -F -- "deblur: CUDA backend" <<<"$configure_log" || true
grep -qF -- "deblur: CUDA backend OFF" <<<"$configure_log" ||
  { echo "$configure_log"; fail "configure did not report the CUDA backend OFF"; }
echo "ok: configure reports the CUDA backend OFF"
if grep -q '^CMAKE_CUDA_COMPILER' "$build_dir/CMakeCache.txt"; then
  fail "configure looked for a CUDA compiler: $(grep '^CMAKE_CUDA_COMPILER' "$build_dir/CMakeCache.txt")"
fi
echo "ok: configure never looked for a CUDA compiler (no CMAKE_CUDA_COMPILER in the cache)"

echo "== build deblur deblur_example"
build_log=$("$cmake" --build "$build_dir" --target deblur deblur_example -j2 2>&1) ||
  { echo "$build_log"; fail "build failed"; }
echo "ok: built"

cuda_libraries='lib(cuda|cudart|cublas|cublasLt|cudnn[a-z_]*|nvrtc|nvJitLink|nvToolsExt|nvidia-[a-z]+|cufft|curand|cusparse|cusolver|nccl|nvjpeg|npp[a-z]*)[.-]'
for name in deblur deblur_example; do
  binary="$build_dir/bin/$name"
  [[ -x $binary ]] || fail "$binary was not built"
  libraries=$(ldd "$binary") || fail "ldd $binary failed"
  if grep -E -- "$cuda_libraries" <<<"$libraries"; then
    fail "$name links the CUDA libraries above"
  fi
  echo "ok: $name links no CUDA library; it needs: $(awk '{printf "%s ", $1}' <<<"$libraries")"
  # Static symbols, and the dynamic ones a stripped binary still has.
  symbols=$({ nm "$binary" || true; nm -D "$binary" || true; } 2>/dev/null |
    grep -E -- ' [A-Za-z] (cuda[A-Z]|__cuda)' || true)
  if [[ -n $symbols ]]; then
    head -n 5 <<<"$symbols"
    fail "$name carries CUDA runtime symbols (above)"
  fi
  echo "ok: $name has no CUDA runtime symbols"
done

help=$("$build_dir/bin/deblur" --help) || fail "deblur --help exited non-zero"
grep -q "usage: deblur" <<<"$help" || { echo "$help"; fail "deblur --help printed no usage"; }
echo "ok: deblur --help runs"

missing="$build_dir/no_such_model.safetensors"
status=0
message=$("$build_dir/bin/deblur_example" "$missing" 16 16 2>&1) || status=$?
[[ $status -eq 1 ]] || { echo "$message"; fail "deblur_example on a missing model exited $status, not 1"; }
grep -qF -- "$missing" <<<"$message" ||
  { echo "$message"; fail "deblur_example's error does not name the missing model"; }
echo "ok: deblur_example reports a missing model through the C API: $(grep -F -- "$missing" <<<"$message")"
echo "PASS: the CPU-only build needs and links no CUDA"
