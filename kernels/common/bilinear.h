// Bilinear interpolation taps shared by the CPU and CUDA resample kernels, computed exactly as
// PyTorch's upsample_bilinear2d does with align_corners=False (area_pixel_compute_source_index
// followed by the linear index/lambda guard), along one axis:
//   src     = max((dst + 0.5) * scale - 0.5, 0)     with scale = in / out (0.5 for x2)
//   i0      = floor(src),  i1 = min(i0 + 1, in - 1)
//   lambda1 = src - i0,    lambda0 = 1 - lambda1
// The clamp at 0 and the min at in - 1 are the border clamp: the outermost outputs copy the
// outermost inputs. A 2-D output is lambda-weighted along H of lambda-weighted sums along W.
#pragma once

#include <cstdint>

#include "kernels/common/hd.h"

namespace deblur::common {

template <class T>
struct LinearTap {
  int64_t i0 = 0, i1 = 0;  // the two source indices (equal at the far border)
  T w0 = 0, w1 = 0;        // their weights, summing to 1
};

// The taps of output index `dst` on an axis of `in_size` inputs, for upsampling
// (scale = in / out <= 1, so floor(src) never passes in_size - 1).
template <class T>
DEBLUR_HD LinearTap<T> linear_tap(int64_t dst, int64_t in_size, T scale) {
  T src = (static_cast<T>(dst) + T(0.5)) * scale - T(0.5);
  if (src < T(0)) src = T(0);
  LinearTap<T> tap;
  tap.i0 = static_cast<int64_t>(src);  // floor, as src >= 0
  tap.i1 = tap.i0 < in_size - 1 ? tap.i0 + 1 : tap.i0;
  tap.w1 = src - static_cast<T>(tap.i0);
  tap.w0 = T(1) - tap.w1;
  return tap;
}

// The x2 upsample's taps: scale = in / out = 1/2, which PyTorch computes exactly.
template <class T>
DEBLUR_HD LinearTap<T> upsample2x_tap(int64_t dst, int64_t in_size) {
  return linear_tap<T>(dst, in_size, T(0.5));
}

}  // namespace deblur::common
