// The feathered stitch of tiled inference, CUDA kernel's host launcher: the device twin of
// infer/tiling.h's Stitcher, with its band design and its math (kernels/common/feather.h).
//
// Semantics. An image `width` pixels wide is stitched one band at a time. A band is the `rows`
// image rows [first_row, first_row + rows) that one row of tiles covers: every tile is `rows`
// high and tile_width wide and sits at column x0 of the band. Pixel (x, y) accumulates, over the
// tiles t covering it (earlier bands first, then this band's in list order),
//   sum(w_t * v_t) and sum(w_t),
//   w_t = feather_weight_1d(x - x0_t, fx_t) * feather_weight_1d(y - first_row, fy_t)
// (common::feather_weight), and its final value is sum(w * v) / sum(w): the CPU Stitcher's
// additions, in the same order, and its division. Every product is rounded before it is added
// (never fused into an FMA, as nvcc would by default), so where the host compiler does not
// contract either (x86-64 without FMA) the two backends agree to the last bit.
//
// One launch per band, a gather: one thread per pixel of the band starts from the sums earlier
// bands left for it (rows [first_row, carried_end), covered by the previous band too) or from
// zero, adds this band's tiles covering it in list order, then either writes the normalised
// value to `out` (rows [first_row, finished_end), which no later band reaches) or stores the sums
// in the accumulator for the next band. No atomics, and no two threads touch one pixel: the
// result is deterministic and bitwise the same on every run.
//
// Memory. The accumulator is ring_rows (>= rows) rows of width pixels, each row channels + 1
// planes of width floats (values..., weight); image row y lives in ring row y % ring_rows, so
// consecutive bands share rows without moving them and memory is bounded by the band, not the
// image: stitch_accumulator_floats() floats. Rows a band does not carry are never read (they
// need no clearing). `out` receives rows [first_row, finished_end), pixel-interleaved, row after
// row from its start, in the chosen format:
//   StitchOutput::Float  channels floats: the normalised values;
//   StitchOutput::Unit8  channels bytes: common::unit_to_8bit(value), clamped to [-1, 1];
//   StitchOutput::Gray8  one byte from three channels: common::gray_to_8bit(r, g, b).
// Tile outputs stay where the caller has them: tile t's values are t.data[(c * src_h + j) * src_w
// + i] (sample t of a [B, channels, src_h, src_w] batch, say, or of separate tensors), of which
// only the top-left rows x tile_width count (a tile padded for the model is cropped here).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/common/feather.h"
#include "kernels/cuda/launch.cuh"

namespace deblur::cuda {

enum class StitchOutput { Float, Unit8, Gray8 };

// One tile of a band.
struct StitchTile {
  const float* data = nullptr;  // device: [channels, src_h, src_w]
  int64_t x0 = 0;               // its left column in the image
  common::FeatherAxis fx;       // its feather along x (length tile_width)
  common::FeatherAxis fy;       // and along y (length rows)
};

// One band of the image and the accumulator's shape.
struct StitchBand {
  int64_t width = 0;       // image width: the accumulator's and the output's row length
  int64_t channels = 3;    // 1 to 4
  int64_t rows = 0;        // every tile's height: the band's rows
  int64_t tile_width = 0;  // every tile's width
  int64_t src_h = 0;       // the tiles' arrays' height (>= rows) and width (>= tile_width)
  int64_t src_w = 0;
  int64_t first_row = 0;     // the band's first image row
  int64_t carried_end = 0;   // rows [first_row, carried_end) continue earlier bands' sums
  int64_t finished_end = 0;  // rows [first_row, finished_end) are final: written to out
  int64_t ring_rows = 0;     // the accumulator's rows (>= rows)
};

// Floats of a band's accumulator: ring_rows * width * (channels + 1).
int64_t stitch_accumulator_floats(const StitchBand& band);
// Bytes stitch_band writes to out: the finished rows in the chosen format.
size_t stitch_output_bytes(const StitchBand& band, StitchOutput format);
// Bytes of device workspace stitch_band needs for `count` tiles (their list).
size_t stitch_workspace_bytes(int64_t count);

// Stitches one band (semantics above). tiles: `count` host descriptors, sorted by x0 (as a band
// is, left to right), that together cover every column; the list is copied to `workspace`
// (stitch_workspace_bytes(count) bytes of device memory, 16-byte aligned) with cudaMemcpy,
// ordered with the legacy default stream, the engine's. accumulator: stitch_accumulator_floats
// (band) device floats, holding the previous band's sums; out: stitch_output_bytes(band, format)
// device bytes. Throws deblur::Error on an inconsistent band or tile list.
void stitch_band(const StitchBand& band, const StitchTile* tiles, int64_t count, float* accumulator,
                 void* out, StitchOutput format, void* workspace, cudaStream_t stream);

}  // namespace deblur::cuda
