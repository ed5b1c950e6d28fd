#!/usr/bin/env bash
# The main job on the bundled default, from a fresh clone: set-up, build, then deblur the bundled
# blurry samples (samples/blurry.png, mild shake; samples/blurry_strong.png, strong shake) and
# print the metrics of each input and output against the sharp original (samples/sharp.png).
#
# The model is models/deblur_unet.safetensors (models/README.md: how it was trained and what it
# scores, this sample included); pass another as the first argument to use your own.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DDEBLUR_TESTS=OFF
cmake --build build -j"$(nproc)" --target deblur

model="${1:-models/deblur_unet.safetensors}"
if [ ! -f "$model" ]; then
  echo "scripts/demo.sh: no model at $model (the bundled one is models/deblur_unet.safetensors;" >&2
  echo "deblur train makes others, see docs/training.md)" >&2
  exit 1
fi
for case in blurry blurry_strong; do
  output="build/sample_${case}_deblurred.png"
  echo
  ./build/bin/deblur infer --model "$model" --input "samples/$case.png" --output "$output"
  echo "samples/$case.png vs sharp: $(./build/bin/deblur metrics --pred "samples/$case.png" --target samples/sharp.png)"
  echo "deblurred output vs sharp:   $(./build/bin/deblur metrics --pred "$output" --target samples/sharp.png)"
  echo "output image: $output"
done
