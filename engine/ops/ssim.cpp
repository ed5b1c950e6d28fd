// SSIM and MS-SSIM ops (pytorch_msssim semantics, see kernels/cpu/ssim.cpp): scalar results of
// shape [1, 1, 1, 1]. The backward keeps only the detached inputs and recomputes the filtered
// statistics and the pyramid, so no per-pixel map outlives the forward.
#include "kernels/cpu/ssim.h"

#include <algorithm>
#include <cmath>

#include "engine/check.h"
#include "engine/dispatch.h"
#include "engine/ops.h"
#include "kernels/common/gaussian.h"

namespace deblur {

namespace {

// The smallest side MS-SSIM accepts: pytorch_msssim asserts > (11 - 1) * 2^4.

// Common checks; returns the device.
Device check_inputs(const char* op, const Tensor& x, const Tensor& y, float data_range) {
  Device device = common_device(op, {x, y});
  check_same_shape(op, x, y);
  DEBLUR_CHECK(std::isfinite(data_range) && data_range > 0.0f, op,
               ": data_range must be positive and finite, got ", data_range);
  return device;
}

using ForwardKernel = double (*)(cpu::NchwView<const float>, cpu::NchwView<const float>, double);
using BackwardKernel = void (*)(cpu::NchwView<const float>, cpu::NchwView<const float>, double,
                                double, cpu::NchwView<float>, cpu::NchwView<float>);

// Runs the forward kernel and records a backward that recomputes from the saved inputs.
Tensor scalar_similarity(const char* op, const Tensor& x, const Tensor& y, float data_range,
                         ForwardKernel forward, BackwardKernel backward) {
  const double value = forward(cpu_view(x), cpu_view(y), data_range);
  Tensor out = Tensor::full({1, 1, 1, 1}, static_cast<float>(value));
  if (needs_grad({x, y})) {
    record(out, op, {x, y},
           [x = x.detach(), y = y.detach(), data_range, backward](const Tensor& grad_out,
                                                                  GradInputs& grads) {
             Tensor grad_x = Tensor::empty(x.shape(), x.device());
             Tensor grad_y = Tensor::empty(y.shape(), y.device());
             backward(cpu_view(x), cpu_view(y), data_range, grad_out.item(), cpu_view(grad_x),
                      cpu_view(grad_y));
             grads.set(0, grad_x);
             grads.set(1, grad_y);
           });
  }
  return out;
}

}  // namespace

bool ms_ssim_supported(const Shape& shape) {
  return std::min(shape.h, shape.w) >= common::kMsSsimMinSide;
}

Tensor ssim(const Tensor& x, const Tensor& y, float data_range) {
  Device device = check_inputs("ssim", x, y, data_range);
  // pytorch_msssim would silently skip filtering a side shorter than the window; refuse it.
  DEBLUR_CHECK(std::min(x.h(), x.w()) >= common::kGaussianTaps, "ssim: input ", x.shape().str(),
               " is smaller than the ", common::kGaussianTaps, "-pixel Gaussian window");
  if (device != Device::CPU) no_kernel("ssim", device);
  return scalar_similarity("ssim", x, y, data_range, &cpu::ssim_forward<float>,
                           &cpu::ssim_backward<float>);
}

Tensor ms_ssim(const Tensor& x, const Tensor& y, float data_range) {
  Device device = check_inputs("ms_ssim", x, y, data_range);
  DEBLUR_CHECK(ms_ssim_supported(x.shape()), "ms_ssim: input ", x.shape().str(),
               " is too small: the smaller side must be at least ", common::kMsSsimMinSide,
               " pixels for the 4 downsamplings of the ", common::kGaussianTaps, "-pixel window");
  if (device != Device::CPU) no_kernel("ms_ssim", device);
  return scalar_similarity("ms_ssim", x, y, data_range, &cpu::ms_ssim_forward<float>,
                           &cpu::ms_ssim_backward<float>);
}

}  // namespace deblur
