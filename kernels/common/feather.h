// The feather weight of tiled inference, shared by the CPU stitch (infer/tiling.cpp) and the CUDA
// stitch kernel so the two cannot drift. A tile's output is weighted by w(x, y) = wx(x) * wy(y);
// the stitched image is sum(w * tile) / sum(w).
//
// Along one axis, a side of the tile that has a neighbouring tile ramps linearly over its first
// `overlap` pixels: the d-th pixel from that edge (0 <= d < overlap) weighs (d + 0.5) / overlap.
// A side on the image border weighs 1. The half-pixel offset keeps every weight strictly positive
// (sum(w) never vanishes) and makes two mirrored ramps over the same pixels sum to exactly 1:
// (d + 0.5) + (overlap - 1 - d + 0.5) = overlap. overlap < length / 2 keeps the two ramps of a
// tile apart, so at most one of them applies to any pixel.
//
// Also here, so the CPU and CUDA paths of the predictor cannot drift either: the stitched value's
// 8-bit pixel, round((clamp(y, -1, 1) + 1) * 127.5), and a gray pixel as the mean of the three
// clamped channels.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/common/hd.h"

namespace deblur::common {

// One axis of one tile.
struct FeatherAxis {
  int64_t length = 0;        // the tile's length along the axis
  int64_t overlap = 0;       // ramp length in pixels
  bool ramp_before = false;  // a neighbouring tile precedes this one along the axis
  bool ramp_after = false;   // a neighbouring tile follows it
};

// Weight of pixel i (0 <= i < axis.length) along one axis.
template <class T>
DEBLUR_HD T feather_weight_1d(int64_t i, const FeatherAxis& axis) {
  const int64_t from_end = axis.length - 1 - i;
  if (axis.ramp_before && i < axis.overlap)
    return (static_cast<T>(i) + T(0.5)) / static_cast<T>(axis.overlap);
  if (axis.ramp_after && from_end < axis.overlap)
    return (static_cast<T>(from_end) + T(0.5)) / static_cast<T>(axis.overlap);
  return T(1);
}

// Weight of pixel (x, y) of a tile.
template <class T>
DEBLUR_HD T feather_weight(int64_t x, int64_t y, const FeatherAxis& ax, const FeatherAxis& ay) {
  return feather_weight_1d<T>(x, ax) * feather_weight_1d<T>(y, ay);
}

// clamp(y, -1, 1) as std::clamp computes it (NaN passes through).
DEBLUR_HD float clamp_unit(float y) {
  return y < -1.0f ? -1.0f : (1.0f < y ? 1.0f : y);
}

// round((clamp(y, -1, 1) + 1) * 127.5), ties away from zero (lround).
DEBLUR_HD uint8_t unit_to_8bit(float y) {
  return static_cast<uint8_t>(lroundf((clamp_unit(y) + 1.0f) * 127.5f));
}

// A gray pixel from the model's three output channels: the mean of the clamped values.
DEBLUR_HD uint8_t gray_to_8bit(float r, float g, float b) {
  return unit_to_8bit((clamp_unit(r) + clamp_unit(g) + clamp_unit(b)) / 3.0f);
}

}  // namespace deblur::common
