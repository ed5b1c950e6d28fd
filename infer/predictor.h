// Predictor: deblurs an Image of any size by running a model tile by tile (infer/tiling.h) and
// stitching the tiles with feathered blending, in memory bounded by the tile size, not the image.
//
// Pixels: an 8-bit value p enters the model as p / 127.5 - 1 and a 16-bit value q as
// q / 32767.5 - 1; an output y leaves as round((clamp(y, -1, 1) + 1) * 127.5). The output is
// always 8-bit, with the input's width, height and channel count. Gray inputs (1 or 2 channels)
// run as RGB with the gray value in every channel and are written back as the mean of the three
// clamped output channels. Alpha is copied through unchanged (16-bit alpha as round(q / 257)).
//
// Where the stitch runs follows the tiles: outputs that come back on the CPU go through the CPU
// Stitcher; outputs left on a CUDA device (a model moved there) stay there and are stitched by
// kernels/cuda/stitch.cuh, band by band in device accumulators, with one copy of finished 8-bit
// rows to the host per band. Same feather, sums and division on both, so the same pixels.
#pragma once

#include <cstdint>
#include <functional>

#include "engine/tensor.h"
#include "infer/image.h"
#include "infer/tiling.h"
#include "layers/deblur_unet.h"

namespace deblur {

// The model seen by the predictor: [N, 3, h, w] in [-1, 1] to [N, 3, h, w], h and w multiples of
// 16. The predictor calls it with N = 1, one tile at a time, band by band, left to right; the
// result may be on the CPU or on a CUDA device (it is stitched where it is).
using TileFn = std::function<Tensor(const Tensor&)>;

// Called after each tile with the tiles done and the total.
using ProgressFn = std::function<void(int64_t done, int64_t total)>;

struct RunStats {
  int64_t tiles = 0, tiles_x = 0, tiles_y = 0;
  int64_t tile_width = 0, tile_height = 0;  // the model's input size (after reflection padding)
  // The stitch's accumulators at their largest: on the CPU, the value and weight floats and one
  // normalised row; on the device, the value and weight floats and the band's finished 8-bit
  // rows (the band's tile outputs, kept until it is stitched, are not counted).
  int64_t peak_accumulator_bytes = 0;
};

class Predictor {
 public:
  explicit Predictor(TileFn model, TileOptions options = {});
  // Runs `model` under NoGradGuard on the device its parameters are on; the model must outlive
  // the predictor.
  explicit Predictor(const DeblurUNet& model, TileOptions options = {});

  // The deblurred image (see the top of this file); `stats`, when given, receives the run's
  // tile counts and peak accumulator memory. Throws deblur::Error on an invalid image or a tile
  // function that returns the wrong shape.
  Image run(const Image& in, const ProgressFn& progress = {}, RunStats* stats = nullptr) const;

  const TileOptions& options() const { return options_; }

 private:
  TileFn model_;
  TileOptions options_;
};

}  // namespace deblur
