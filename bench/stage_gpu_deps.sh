#!/usr/bin/env bash
# Stages what a GPU machine without a package manager needs to build deblur, from this (Debian)
# build machine into .carry/ (ignored by git; name it in the device tool's `carry`):
#   .carry/prefix/   Catch2 2 (headers, static main), stb and nlohmann/json headers, and Google
#                    Benchmark (headers, shared library) with their CMake package files
#                    (relocatable: pass -DCMAKE_PREFIX_PATH=$PWD/.carry/prefix)
#   .carry/reference/deblur_unet.py   the reference module, for bench/torch_reference.py
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
prefix=.carry/prefix
rm -rf .carry
mkdir -p "$prefix/include" "$prefix/lib/cmake" "$prefix/share/cmake" .carry/reference
cp -r /usr/include/catch2 /usr/include/stb /usr/include/nlohmann "$prefix/include/"
cp -r /usr/lib/cmake/Catch2 "$prefix/lib/cmake/"
cp /usr/lib/libCatch2WithMain.a "$prefix/lib/"  # the static main its CMake package names
cp -r /usr/share/cmake/nlohmann_json "$prefix/share/cmake/"
# Google Benchmark, for deblur_bench_cuda: its package finds the library three levels above
# itself, so it keeps Debian's multiarch layout; the build's RPATH points at it.
multiarch=lib/x86_64-linux-gnu
mkdir -p "$prefix/$multiarch/cmake"
cp -r /usr/include/benchmark "$prefix/include/"
cp -r "/usr/$multiarch/cmake/benchmark" "$prefix/$multiarch/cmake/"
cp -P /usr/$multiarch/libbenchmark.so* /usr/$multiarch/libbenchmark_main.a "$prefix/$multiarch/"
reference=../shared/reference/deblur_unet.py
[ -f "$reference" ] && cp "$reference" .carry/reference/
du -sh .carry
