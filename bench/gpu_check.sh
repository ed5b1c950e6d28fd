#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU (CUDA toolkit, CMake, g++; PyTorch optional; no
# package manager needed) it builds deblur for that card, runs the whole test suite, runs
# compute-sanitizer (memcheck, racecheck) on the CUDA kernel tests, times the reference PyTorch
# module and ours (bench/model_timing.cpp) on the same cases, runs the CUDA kernel benchmarks
# against cuDNN/cuBLAS (bench/cuda_kernels.cpp), and writes everything to one results file.
#
#   bash bench/stage_gpu_deps.sh         # on the build machine: headers into .carry/
#   bash bench/gpu_check.sh [RESULTS]    # on the GPU machine (default build-gpu/gpu-check.md)
#
# GPU_CHECK_SKIP lists steps to leave out (any of: ctest torch parity timing kernels train
# racecheck),
# for a lease with little time left; GPU_CHECK_RACECHECK_FILTER narrows racecheck to a Catch
# test filter (default: every kernel test); GPU_CHECK_SANITIZER_S caps each sanitizer run.
#
# Copy what it reports into docs/gpu-validation.md with the date and the card. It never stops
# at a failure: each step's outcome is recorded and the exit code is non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
results="${1:-build-gpu/gpu-check.md}"
mkdir -p build-gpu "$(dirname "$results")"
failures=0

section() { printf '\n## %s\n\n' "$1" >> "$results"; }
wanted() { [[ " ${GPU_CHECK_SKIP:-} " != *" $1 "* ]]; }
# Runs a step, keeps the last lines of its output in the results file, counts failures.
step() {
  local title="$1"; shift
  section "$title"
  local log="build-gpu/$(echo "$title" | tr -c 'A-Za-z0-9' '_').log"
  local start=$SECONDS
  "$@" > "$log" 2>&1
  local rc=$?
  {
    echo "command: \`$*\` — exit $rc, $((SECONDS - start)) s"
    echo '```'
    tail -n 40 "$log"
    echo '```'
  } >> "$results"
  [ $rc -eq 0 ] || failures=$((failures + 1))
  return 0
}

{
  echo "# deblur GPU check"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- card: $(nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"
  echo "- nvcc: $(nvcc --version 2>&1 | tail -1)"
  echo "- host: $(nproc) cores"
} > "$results"

arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '. ')
arch=${arch:-90}
# cuDNN and cuBLAS (the baselines) may live only in NVIDIA's Python wheels next to PyTorch: CMake
# asks this python3 for them, and cuDNN 9 loads its sub-libraries by name at run time.
python=$(command -v python3 || true)
cudnn_args=()
if [ -n "$python" ]; then
  cudnn_args+=(-DDEBLUR_PYTHON3="$python")
  wheels=$("$python" -c "import nvidia; print(list(nvidia.__path__)[0])" 2> /dev/null) &&
    export LD_LIBRARY_PATH="$wheels/cudnn/lib:$wheels/cublas/lib:${LD_LIBRARY_PATH:-}"
fi
step "configure (sm_$arch)" cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DDEBLUR_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="$arch" -DCMAKE_PREFIX_PATH="$PWD/.carry/prefix" "${cudnn_args[@]}"
step "build" cmake --build build-gpu -j"$(nproc)"
# The CUDA kernels on the real device against their CPU twins, then under the sanitizers (each
# capped at GPU_CHECK_SANITIZER_S seconds, default 180: racecheck is slow on shared memory).
sanitizer_s="${GPU_CHECK_SANITIZER_S:-180}"
if [ -x build-gpu/bin/deblur_gpu_tests ]; then
  step "CUDA kernels vs CPU on the device" build-gpu/bin/deblur_gpu_tests
  if command -v compute-sanitizer > /dev/null; then
    step "compute-sanitizer memcheck" timeout "$sanitizer_s" compute-sanitizer --tool memcheck \
      --error-exitcode 1 build-gpu/bin/deblur_gpu_tests
  fi
else
  section "CUDA kernels on the device"
  echo "build-gpu/bin/deblur_gpu_tests was not built: no device kernel tests in this version." \
    >> "$results"
fi
wanted ctest && step "ctest (whole suite)" ctest --test-dir build-gpu --output-on-failure -j"$(nproc)"

# The peer: the reference PyTorch module on this card (inference 2048x2048, a training step at
# batch 24 x 256x256; fp32, TF32, bf16).
if wanted torch && python3 -c "import torch; assert torch.cuda.is_available()" 2> /dev/null; then
  step "PyTorch reference timings" python3 bench/torch_reference.py \
    --reference .carry/reference/deblur_unet.py
fi

# The whole pipeline at a real size: `deblur infer` on the GPU against the CPU, same model
# (an untrained one, from `deblur demo --save`), same image (the sample, scaled to 1536x1152),
# 512-pixel tiles; the two 8-bit outputs may differ by at most one level.
infer_parity() {
  local dir=build-gpu/parity
  mkdir -p "$dir"
  python3 -c "from PIL import Image; Image.open('samples/blurry.png').resize((1536, 1152),
Image.BICUBIC).save('$dir/input.png')" || return 1
  build-gpu/bin/deblur demo --size 256 --save "$dir/model.safetensors" > /dev/null || return 1
  for device in cpu cuda; do
    build-gpu/bin/deblur infer --model "$dir/model.safetensors" --input "$dir/input.png" \
      --output "$dir/$device.png" --device "$device" --tile 512 || return 1
  done
  build-gpu/bin/deblur metrics --pred "$dir/cuda.png" --target "$dir/cpu.png" || return 1
  python3 -c "import numpy as np; from PIL import Image
a, b = (np.asarray(Image.open('$dir/' + d + '.png'), dtype=int) for d in ('cuda', 'cpu'))
worst = np.abs(a - b).max(); print('largest difference:', worst, 'levels')
raise SystemExit(0 if worst <= 1 else 1)"
}
wanted parity && step "deblur infer cuda vs cpu (1536x1152, tiles of 512)" infer_parity

# Ours on the same cases, in the same run: our kernels, then cuDNN/cuBLAS where the build has
# them (the baseline).
if wanted timing; then
  step "deblur_model_timing (ours, cuda)" timeout 300 build-gpu/bin/deblur_model_timing \
    --device cuda --repeats 5 --json "$(dirname "$results")/model_timing_cuda.json"
  if grep -q "conv-backend cudnn available" build-gpu/*.log 2> /dev/null; then
    step "deblur_model_timing (cuDNN baseline, cuda)" timeout 300 \
      build-gpu/bin/deblur_model_timing --device cuda --repeats 5 --conv-backend cudnn \
      --json "$(dirname "$results")/model_timing_cuda_cudnn.json"
  fi
fi

# Every CUDA kernel at the model's shapes, cuDNN/cuBLAS beside the convolutions
# (bench/cuda_kernels.cpp); the JSON goes next to the results file.
if wanted kernels; then
  if [ -x build-gpu/bin/deblur_bench_cuda ]; then
    step "deblur_bench_cuda (kernel benchmarks)" timeout 300 build-gpu/bin/deblur_bench_cuda \
      --benchmark_out="$(dirname "$results")/bench_cuda.json" --benchmark_out_format=json
  else
    section "deblur_bench_cuda (kernel benchmarks)"
    echo "not built: CMake found no Google Benchmark (bench/stage_gpu_deps.sh stages it)" \
      >> "$results"
    failures=$((failures + 1))
  fi
fi

# A short training run on the GPU: 16 copies of the sharp sample with synthetic camera shake,
# validated on the sample pair, 3 epochs of 2 batches of 8 x 256x256, then 1 more epoch resumed
# from last.safetensors.
train_smoke() {
  local dir=build-gpu/train-smoke
  rm -rf "$dir"
  mkdir -p "$dir/train" "$dir/val/blur" "$dir/val/sharp"
  for k in $(seq 10 25); do cp samples/sharp.png "$dir/train/sharp$k.png"; done
  cp samples/blurry.png "$dir/val/blur/sample.png"
  cp samples/sharp.png "$dir/val/sharp/sample.png"
  local common=(--device cuda --train_data "$dir/train" --synthetic_blur --test_data "$dir/val"
    --batch_size 8 --patch_size 256 --workers 8 --checkpoint_dir "$dir/checkpoints"
    --run_dir "$dir/run")
  build-gpu/bin/deblur train "${common[@]}" --num_epochs 4 --max_steps 6 || return 1
  build-gpu/bin/deblur train "${common[@]}" --num_epochs 4 \
    --resume "$dir/checkpoints/last.safetensors" || return 1
  cat "$dir/run/metrics.csv"
  ls "$dir/checkpoints"
}
wanted train && step "deblur train --device cuda (short run, then resumed)" train_smoke

if wanted racecheck && [ -x build-gpu/bin/deblur_gpu_tests ] &&
  command -v compute-sanitizer > /dev/null; then
  step "compute-sanitizer racecheck" timeout "$sanitizer_s" compute-sanitizer --tool racecheck \
    --error-exitcode 1 build-gpu/bin/deblur_gpu_tests ${GPU_CHECK_RACECHECK_FILTER:-}
fi

section "summary"
echo "failed steps: $failures" >> "$results"
echo "results: $results (failed steps: $failures)"
[ $failures -eq 0 ]
