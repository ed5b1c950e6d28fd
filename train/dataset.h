// Training data on disk: pairs of blurry and sharp images, found and checked before training
// starts, and the random patch each sample becomes.
//
// Layouts (the folder names are fixed, the file names free; partners share a file name):
//   GoPro   <root>/<scene>/blur/*.png and <root>/<scene>/sharp/*.png, scenes in name order
//   flat    <root>/blur/* and <root>/sharp/*
//   sharp   any folder of images, read recursively: sharp images only, for --synthetic_blur
// scan_pairs checks every pair from the file headers: a missing partner, two sizes that differ,
// an image smaller than the patch, or a file that is not a readable image is an error naming the
// file (or, with skip_bad, a warning and the pair is left out), so no epoch meets it halfway.
//
// A sample is a patch x patch crop at a random position of both images of a pair, the same
// horizontal flip (probability 1/2) and the same number of quarter turns (0-3, uniform) applied
// to both, RGB in [-1, 1] (gray fills all three channels; alpha is dropped). Everything random
// about a sample comes from one 64-bit seed, so a batch is a pure function of (seed, epoch,
// position), whichever thread decodes it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "infer/image.h"

namespace deblur::train {

struct ImagePair {
  std::string blur;   // empty in a sharp-only dataset: the blur is synthesised
  std::string sharp;
  int64_t width = 0, height = 0;
};

struct ScanOptions {
  int64_t min_side = 0;      // both sides of every image at least this (the patch size)
  bool skip_bad = false;     // warn and leave a bad pair out instead of failing
  bool sharp_only = false;   // every image under root is a sharp image (--synthetic_blur)
};

struct Dataset {
  std::string root;
  std::string layout;  // "gopro", "flat" or "sharp"
  std::vector<ImagePair> pairs;
  std::vector<std::string> warnings;  // one line per pair left out by skip_bad
};

// Finds and checks the pairs under root (see the file comment). Errors: root missing or not a
// folder, neither layout found, no pairs left, and each bad pair unless skip_bad.
Dataset scan_pairs(const std::string& root, const ScanOptions& options);

// Where a sample's patch comes from and how it is turned.
struct PatchSpec {
  int64_t x0 = 0, y0 = 0;  // top-left of the crop
  bool flip = false;       // mirror left-right (after the crop, before the turns)
  int quarter_turns = 0;   // counter-clockwise, as torch.rot90(x, k, dims=(H, W))
};

// A uniformly random patch position in a width x height image (both >= patch) and a random
// flip and turn, all from `seed`.
PatchSpec draw_patch(int64_t width, int64_t height, int64_t patch, uint64_t seed);

// The spec's patch of `image` as [3, patch, patch] floats in [-1, 1], written to dst.
void extract_patch(const Image& image, const PatchSpec& spec, int64_t patch, float* dst);

// splitmix64: the mixing step every seed in training goes through (seed, epoch, index -> value).
uint64_t mix_seed(uint64_t a, uint64_t b);

}  // namespace deblur::train
