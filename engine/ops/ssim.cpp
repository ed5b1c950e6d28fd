// SSIM and MS-SSIM ops (pytorch_msssim semantics, see kernels/cpu/ssim.cpp): scalar results of
// shape [1, 1, 1, 1], on the CPU and CUDA. The backward keeps only the detached inputs and
// recomputes the filtered statistics and the pyramid, so no per-pixel map outlives the forward.
// On CUDA the forward's value stays on the device (no synchronisation); the backward reads its
// incoming gradient with item(), as the pixel losses do.
#include "kernels/cpu/ssim.h"

#include <algorithm>
#include <cmath>

#include "engine/check.h"
#include "engine/dispatch.h"
#include "engine/ops.h"
#include "kernels/common/gaussian.h"
#if defined(DEBLUR_HAS_CUDA_KERNELS)
#include "kernels/cuda/ssim.cuh"
#endif

namespace deblur {

namespace {

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

// One op's kernels on both backends.
struct SimilarityKernels {
  ForwardKernel cpu_forward;
  BackwardKernel cpu_backward;
#if defined(DEBLUR_HAS_CUDA_KERNELS)
  size_t (*cuda_workspace_bytes)(cpu::NchwView<const float>);
  void (*cuda_forward)(cpu::NchwView<const float>, cpu::NchwView<const float>, double, float*,
                       void*, cudaStream_t);
  void (*cuda_backward)(cpu::NchwView<const float>, cpu::NchwView<const float>, double, double,
                        cpu::NchwView<float>, cpu::NchwView<float>, void*, cudaStream_t);
#endif
};

const SimilarityKernels kSsimKernels = {
    .cpu_forward = &cpu::ssim_forward<float>,
    .cpu_backward = &cpu::ssim_backward<float>,
#if defined(DEBLUR_HAS_CUDA_KERNELS)
    .cuda_workspace_bytes = &cuda::ssim_workspace_bytes,
    .cuda_forward = &cuda::ssim_forward,
    .cuda_backward = &cuda::ssim_backward,
#endif
};
const SimilarityKernels kMsSsimKernels = {
    .cpu_forward = &cpu::ms_ssim_forward<float>,
    .cpu_backward = &cpu::ms_ssim_backward<float>,
#if defined(DEBLUR_HAS_CUDA_KERNELS)
    .cuda_workspace_bytes = &cuda::ms_ssim_workspace_bytes,
    .cuda_forward = &cuda::ms_ssim_forward,
    .cuda_backward = &cuda::ms_ssim_backward,
#endif
};

Tensor similarity_value(const Tensor& x, const Tensor& y, float data_range,
                        const SimilarityKernels& kernels) {
  if (x.device() == Device::CUDA) {
    Tensor out = Tensor::empty({1, 1, 1, 1}, Device::CUDA);
#if defined(DEBLUR_HAS_CUDA_KERNELS)
    CudaWorkspace workspace(kernels.cuda_workspace_bytes(cpu_view(x)));
    kernels.cuda_forward(cpu_view(x), cpu_view(y), data_range, out.data(), workspace.data(),
                         cuda_stream());
#endif
    return out;
  }
  const double value = kernels.cpu_forward(cpu_view(x), cpu_view(y), data_range);
  return Tensor::full({1, 1, 1, 1}, static_cast<float>(value));
}

// grad_x and grad_y (assigned) of grad * the op's value.
void similarity_backward(const Tensor& x, const Tensor& y, float data_range, double grad,
                         const SimilarityKernels& kernels, const Tensor& grad_x,
                         const Tensor& grad_y) {
  if (x.device() == Device::CUDA) {
#if defined(DEBLUR_HAS_CUDA_KERNELS)
    CudaWorkspace workspace(kernels.cuda_workspace_bytes(cpu_view(x)));
    kernels.cuda_backward(cpu_view(x), cpu_view(y), data_range, grad, cpu_view(grad_x),
                          cpu_view(grad_y), workspace.data(), cuda_stream());
#endif
    return;
  }
  kernels.cpu_backward(cpu_view(x), cpu_view(y), data_range, grad, cpu_view(grad_x),
                       cpu_view(grad_y));
}

// Runs the forward kernel and records a backward that recomputes from the saved inputs
// (`kernels` is one of the static tables above, so the closure may keep a reference).
Tensor scalar_similarity(const char* op, const Tensor& x, const Tensor& y, float data_range,
                         const SimilarityKernels& kernels) {
  Tensor out = similarity_value(x, y, data_range, kernels);
  if (needs_grad({x, y})) {
    record(out, op, {x, y},
           [x = x.detach(), y = y.detach(), data_range, &kernels](const Tensor& grad_out,
                                                                  GradInputs& grads) {
             Tensor grad_x = Tensor::empty(x.shape(), x.device());
             Tensor grad_y = Tensor::empty(y.shape(), y.device());
             similarity_backward(x, y, data_range, grad_out.item(), kernels, grad_x, grad_y);
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
  check_backend("ssim", device);
  return scalar_similarity("ssim", x, y, data_range, kSsimKernels);
}

Tensor ms_ssim(const Tensor& x, const Tensor& y, float data_range) {
  Device device = check_inputs("ms_ssim", x, y, data_range);
  DEBLUR_CHECK(ms_ssim_supported(x.shape()), "ms_ssim: input ", x.shape().str(),
               " is too small: the smaller side must be at least ", common::kMsSsimMinSide,
               " pixels for the 4 downsamplings of the ", common::kGaussianTaps, "-pixel window");
  check_backend("ms_ssim", device);
  return scalar_similarity("ms_ssim", x, y, data_range, kMsSsimKernels);
}

}  // namespace deblur
