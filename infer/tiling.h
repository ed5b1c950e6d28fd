// Tiled inference: where the tiles go (TilePlan) and the CPU stitch that blends their outputs
// with the feather of kernels/common/feather.h, band by band, in bounded memory (Stitcher).
//
// Along each axis independently, for an image `length` pixels long:
// - length <= tile, or tile == 0: one tile covering [0, length);
// - otherwise tiles `tile` long start at 0, tile - overlap, 2 (tile - overlap), ... while the start
//   is below length - tile, and a last tile starts at length - tile, aligned to the image edge.
//   Every tile lies inside the image; the last one may overlap its neighbour by more than
//   `overlap`, which the normalisation by sum(w) absorbs.
// The model needs sides that are multiples of 16: a tile whose length is not (only possible when
// it covers the whole axis) is reflection-padded at its far end (right / bottom) up to the next
// multiple of 16 and its output cropped back to the top-left.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "engine/tensor.h"
#include "kernels/common/feather.h"

namespace deblur {

struct TileOptions {
  int64_t tile = 512;    // tile side in pixels, a multiple of 16; 0: the whole image as one tile
  int64_t overlap = 64;  // pixels neighbouring tiles share, 0 <= overlap < tile / 2 (unused if 0)
};

// Throws deblur::Error when tile is negative or not a multiple of 16, or when overlap is negative
// or, with tile > 0, at least tile / 2.
void check_tile_options(const TileOptions& options);

// The multiple of 16 at or above length.
int64_t pad_to_16(int64_t length);

// The source index in [0, n) of position i >= 0 of an axis of n values reflect-padded at its end:
// PyTorch's 'reflect' mode (... c b | a b c ..., the edge value not repeated) for i < 2n - 1, and
// reflecting again at each end beyond that (period 2 (n - 1)), so a 1..8 pixel axis can still be
// padded to 16. An axis of one value repeats it.
int64_t reflect_index(int64_t i, int64_t n);

// Tile start offsets along one axis of `length` pixels (the rule above); options are checked.
std::vector<int64_t> tile_starts(int64_t length, const TileOptions& options);

// The tiles along one axis.
struct TileAxis {
  int64_t length = 0;  // the image's length
  int64_t tile = 0;    // every tile's length: min(tile, length), or length when tile == 0
  int64_t padded = 0;  // pad_to_16(tile): the model's input length
  std::vector<int64_t> starts;

  int64_t count() const { return static_cast<int64_t>(starts.size()); }
  // Tile k's feather: ramps towards the tiles before and after it, none at the image border.
  common::FeatherAxis feather(int64_t k, int64_t overlap) const;
};

struct TilePlan {
  TileAxis x, y;
  int64_t overlap = 0;
  int64_t count() const { return x.count() * y.count(); }
};

// The tiles of a width x height image (both > 0); options are checked.
TilePlan plan_tiles(int64_t width, int64_t height, const TileOptions& options);

// Blends tile outputs into finished rows, one band (row of tiles, plan.y.starts[b]) at a time:
// add() every tile of the current band, then finish_band(). It keeps value and weight
// accumulators (channels + 1 floats per pixel) only for the plan.y.tile rows the current band
// covers. When a band is done, the rows above the next band's first row are final: finish_band
// normalises them (sum(w * v) / sum(w)), hands each to the sink top to bottom, and reuses their
// memory for the next band. Peak memory: plan.y.tile * width * (channels + 1) floats.
class Stitcher {
 public:
  // y: the image row; values: width * channels normalised values, pixel-interleaved.
  using RowSink = std::function<void(int64_t y, const float* values)>;

  explicit Stitcher(const TilePlan& plan, int64_t channels = 3);

  // Adds tile `ix` of the current band. out: a CPU tensor [1, channels, h, w] with h >= plan.y.tile
  // and w >= plan.x.tile; its top-left plan.y.tile x plan.x.tile values are the tile's output.
  void add(const Tensor& out, int64_t ix);
  // Ends the current band: emits the rows that are final and moves on to the next band.
  void finish_band(const RowSink& sink);

  int64_t band() const { return band_; }  // the current band; plan.y.count() once all are done
  int64_t accumulator_bytes() const;

 private:
  TilePlan plan_;
  int64_t channels_;
  int64_t band_ = 0;
  int64_t first_row_ = 0;    // the image row held in accumulator row 0
  std::vector<float> acc_;   // plan.y.tile rows of width pixels of (values..., weight)
  std::vector<float> done_;  // one normalised row for the sink
};

}  // namespace deblur
