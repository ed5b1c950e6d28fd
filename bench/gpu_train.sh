#!/usr/bin/env bash
# A time-boxed training run on a lent GPU: builds the CLI for the card, trains DeblurUNet on
# sharp photos with synthetic camera shake (deblur train --synthetic_blur) for SECONDS, stops it
# with Ctrl-C's signal (which saves last.safetensors), and exports the best checkpoint's weights
# as F16 (the shipped model's form), split into parts under 16 MB for the device tool's return.
#
#   bash bench/gpu_train.sh PHOTOS VAL OUT [SECONDS] [INIT]
# PHOTOS: sharp training photos (flat folder); VAL: validation pairs (deblur make-dataset's val/);
# OUT: where the log, run folder and model parts go; INIT: a model to start from (deblur train
# --init_weights), e.g. a CPU run's best exported as F16, so that a short lease carries it on.
set -uo pipefail
cd "$(dirname "$0")/.."
photos=$1 val=$2 out=$3 seconds=${4:-170} init=${5:-}
mkdir -p "$out"
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DDEBLUR_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DCMAKE_PREFIX_PATH="$PWD/.carry/prefix" -DDEBLUR_CUDNN=OFF -DDEBLUR_TESTS=OFF > "$out/build.log" 2>&1 &&
  cmake --build build-gpu -j"$(nproc)" --target deblur >> "$out/build.log" 2>&1 || { tail -20 "$out/build.log"; exit 1; }
# 24 copies of each photo: an epoch of the loader is then 24 different shakes and crops of each.
train=/tmp/gpu-train-photos
rm -rf "$train" && mkdir -p "$train"
for k in $(seq 10 33); do for f in "$photos"/*; do cp "$f" "$train/${k}_$(basename "$f")"; done; done
timeout -s INT "$seconds" build-gpu/bin/deblur train --device cuda --train_data "$train" \
  --synthetic_blur --test_data "$val" --batch_size 24 --patch_size 256 --workers 16 \
  --num_epochs 40 --patience 100 --seed 1 --checkpoint_dir /tmp/gpu-train-ck \
  --run_dir "$out/run" --registered_model_name deblur_unet ${init:+--init_weights "$init"} \
  > "$out/train.log" 2>&1
echo "deblur train exit $?" >> "$out/train.log"
best=$(ls /tmp/gpu-train-ck/best_model_epoch_*.safetensors | head -1)
build-gpu/bin/deblur export --model "$best" --output "$out/deblur_unet_f16.safetensors" || exit 1
split -b 12M "$out/deblur_unet_f16.safetensors" "$out/model.part." && rm "$out/deblur_unet_f16.safetensors"
tail -25 "$out/train.log"
