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

// --- engine/ops/pointwise.cpp
Tensor relu(const Tensor& x);
Tensor add(const Tensor& a, const Tensor& b);                     // same shapes
Tensor scale(const Tensor& x, float factor, float shift = 0.0f);  // factor * x + shift
Tensor clamp(const Tensor& x, float lo, float hi);                // grad passes where lo <= x <= hi
Tensor mean(const Tensor& x);                           // of all elements, shape [1, 1, 1, 1]
void accumulate(const Tensor& dst, const Tensor& src);  // dst += src, in place, no autograd

// --- engine/ops/resample.cpp
Tensor max_pool2d(const Tensor& x);           // 2x2 window, stride 2, floor; first max wins ties
Tensor upsample_bilinear2x(const Tensor& x);  // scale 2, align_corners=False

// --- engine/ops/concat.cpp
Tensor concat(const Tensor& a, const Tensor& b);  // on channels: [a, b]

// --- engine/ops/losses.cpp (each returns a [1, 1, 1, 1] mean over all elements)
Tensor charbonnier(const Tensor& pred, const Tensor& target, float eps = 1e-3f);
Tensor l1_loss(const Tensor& pred, const Tensor& target);

// --- engine/ops/ssim.cpp (pytorch_msssim semantics; mean over samples and channels)
Tensor ssim(const Tensor& x, const Tensor& y, float data_range);
Tensor ms_ssim(const Tensor& x, const Tensor& y, float data_range);
bool ms_ssim_supported(const Shape& shape);  // smaller side > 160: room for 4 downsamplings

}  // namespace deblur
