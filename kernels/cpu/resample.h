// Resampling CPU kernels, forward and backward, float and double.
//   max_pool2d_2x2: PyTorch's F.max_pool2d(x, 2) (kernel 2, stride 2, no padding, floor mode):
//     y is [N, C, H/2, W/2]; an odd trailing row or column is dropped (its gradient is 0).
//     The maximum is chosen as PyTorch's CPU kernel does, scanning the window row-major from
//     -inf with `v > max || isnan(v)`: the first maximum wins ties, a NaN beats every number
//     (the last NaN when there are several), an all -inf window picks its first element.
//     The backward routes each dy to that one element. It recomputes the argmax from the saved
//     input instead of saving indices: the engine's tensors are float only, and the rule above
//     is deterministic, so forward and backward always agree.
//   upsample_bilinear2x: PyTorch's F.interpolate(x, scale_factor=2, mode="bilinear",
//     align_corners=False): y is [N, C, 2H, 2W], taps from kernels/common/bilinear.h (border
//     clamp). The backward scatters each dy with the same four weights.
// Backward kernels assign (=) their outputs, including the elements no output reads.
#pragma once

#include <vector>

#include "kernels/common/bilinear.h"
#include "kernels/cpu/nchw.h"

namespace deblur::cpu {

template <class T>
void max_pool2d_2x2_forward(NchwView<const T> x, NchwView<T> y);
template <class T>
void max_pool2d_2x2_backward(NchwView<const T> x, NchwView<const T> grad_y, NchwView<T> grad_x);

template <class T>
void upsample_bilinear2x_forward(NchwView<const T> x, NchwView<T> y);

// The forward one output row at a time, for a consumer that upsamples as it reads (the
// Winograd conv's band packing): row `row` of the upsample of one in_h x in_w plane into out
// (2 * in_w values). The forward is made of these calls, so the values are the same bit for bit.
template <class T>
void upsample_bilinear2x_row(const T* plane, int64_t in_h, int64_t in_w, int64_t row, T* out);

// The W-axis taps of the x2 upsample, for every output column.
template <class T>
std::vector<common::LinearTap<T>> upsample2x_column_taps(int64_t out_w, int64_t in_w);
template <class T>
void upsample_bilinear2x_backward(NchwView<const T> grad_y, NchwView<T> grad_x);

}  // namespace deblur::cpu
