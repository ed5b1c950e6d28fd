// The engine's ops: autograd-aware functions on Tensors, dispatched to a backend's kernels.
// Semantics match PyTorch (see each kernel file's header); every op checks shapes and devices
// and throws deblur::Error naming the op and the shapes. Each op family lives in its own file
// under engine/ops/.
#pragma once

#include "engine/autograd.h"
#include "engine/tensor.h"

namespace deblur {

// --- engine/ops/conv2d.cpp
// Cross-correlation, stride 1, zero padding k/2. weight [O, I, k, k] (OIHW) with k = 1 or 3;
// bias [O, 1, 1, 1] or undefined.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias);

// --- engine/ops/group_norm.cpp
// GroupNorm over (C/groups, H, W) per sample, biased variance; gamma and beta [C, 1, 1, 1];
// optionally followed by ReLU in the same pass.
Tensor group_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, int groups,
                  float eps = 1e-5f, bool fuse_relu = false);
// The same, written into `out` (x's shape and device, no autograd history; e.g. a channel slice
// of a concat_into buffer). Returns a handle to out's memory carrying the op.
Tensor group_norm_into(const Tensor& out, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                       int groups, float eps = 1e-5f, bool fuse_relu = false);

// --- engine/ops/pointwise.cpp
Tensor relu(const Tensor& x);
Tensor add(const Tensor& a, const Tensor& b);                     // same shapes
Tensor scale(const Tensor& x, float factor, float shift = 0.0f);  // factor * x + shift
Tensor clamp(const Tensor& x, float lo, float hi);                // grad passes where lo <= x <= hi
Tensor mean(const Tensor& x);                           // of all elements, shape [1, 1, 1, 1]
void accumulate(const Tensor& dst, const Tensor& src);  // dst += src, in place, no autograd
// dst += weight * (src - dst), in place, no autograd (a moving average of weights, train/ema.h)
void lerp(const Tensor& dst, const Tensor& src, float weight);

// --- engine/ops/resample.cpp
Tensor max_pool2d(const Tensor& x);           // 2x2 window, stride 2, floor; first max wins ties
Tensor upsample_bilinear2x(const Tensor& x);  // scale 2, align_corners=False

// --- engine/ops/concat.cpp
Tensor concat(const Tensor& a, const Tensor& b);  // on channels: [a, b]

// --- engine/ops/concat.cpp (in place)
// cat([a, b]) on channels with no copy of what is already in place: `buffer` is a fresh
// [N, Ca + Cb, H, W] tensor (no autograd history) whose channels [0, Ca) and [Ca, Ca + Cb) the
// producers of a and b wrote through out= views (upsample_conv2d's `out`); an input that is not
// that slice already is copied into it. Returns a handle to `buffer` holding the result; the
// backward hands a and b zero-copy channel_slice views of the gradient, as concat() does.
Tensor concat_into(const Tensor& buffer, const Tensor& a, const Tensor& b);

// --- engine/ops/upsample_conv.cpp
// conv2d(upsample_bilinear2x(x_low), weight, bias) for a 3x3 weight [O, I, 3, 3], as one op:
// y is [N, O, 2h, 2w]. On CUDA (native conv backend) the convolution's input loads interpolate
// x_low on the fly, so the upsampled [N, I, 2h, 2w] tensor is neither stored nor saved for the
// backward (which recomputes it the same way); see the file's comment for the input gradient.
Tensor upsample_conv2d(const Tensor& x_low, const Tensor& weight, const Tensor& bias);
// The same, written into `out` ([N, O, 2h, 2w], on x_low's device, no autograd history; e.g. a
// channel slice of a concat_into buffer). Returns a handle to out's memory carrying the op.
Tensor upsample_conv2d(const Tensor& x_low, const Tensor& weight, const Tensor& bias,
                       const Tensor& out);

// --- engine/ops/losses.cpp (each returns a [1, 1, 1, 1] mean over all elements)
Tensor charbonnier(const Tensor& pred, const Tensor& target, float eps = 1e-3f);
Tensor l1_loss(const Tensor& pred, const Tensor& target);

// --- engine/ops/ssim.cpp (pytorch_msssim semantics; mean over samples and channels)
Tensor ssim(const Tensor& x, const Tensor& y, float data_range);
Tensor ms_ssim(const Tensor& x, const Tensor& y, float data_range);
bool ms_ssim_supported(const Shape& shape);  // smaller side > 160: room for 4 downsamplings

}  // namespace deblur
