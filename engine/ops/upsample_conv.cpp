// upsample_conv2d op: conv2d(upsample_bilinear2x(x_low), weight, bias), 3x3, as one op with its
// backward, so the decoder's up path never stores the upsampled tensor.
//
// CUDA (native conv backend): the conv kernels' upsample load policy (kernels/cuda/conv2d.cu)
// interpolates x_low while staging input tiles, in the forward and in the weight gradient, so
// the backward saves only x_low (4x smaller than the upsampled input conv2d would save). The
// input gradient is the transposed conv into a full-resolution workspace from the caching
// allocator, reduced by the upsample's adjoint and freed at once (conv2d.cuh says why it is not
// fused into the store). With the cuDNN backend the op is upsample_bilinear2x then conv2d, so
// that path stays a pure baseline.
//
// CPU: the composition of the CPU kernels (upsample into a temporary, then conv), the reference
// the CUDA kernels are tested against; the backward recomputes the upsampled input for the
// parameter gradients. Without autograd (inference) conv2d_forward_inference_upsampled gives
// the same values, and through Winograd never stores the upsampled input.
#include "engine/check.h"
#include "engine/conv_backend.h"
#include "engine/dispatch.h"
#include "engine/ops.h"
#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/resample.h"
#if defined(DEBLUR_HAS_CUDA_KERNELS)
#include "kernels/cuda/conv2d.cuh"
#endif

namespace deblur {

namespace {

constexpr int kKernel = 3;

Shape upsampled(const Shape& s, int64_t channels) {
  return {s.n, channels, 2 * s.h, 2 * s.w};
}

// The CPU reference's upsampled input, in a temporary.
Tensor upsample_cpu(const Tensor& x_low) {
  Tensor up = Tensor::empty(upsampled(x_low.shape(), x_low.c()), Device::CPU);
  cpu::upsample_bilinear2x_forward<float>(cpu_view(x_low), cpu_view(up));
  return up;
}

void check_arguments(const Tensor& x_low, const Tensor& weight, const Tensor& bias) {
  const Shape& ws = weight.shape();
  DEBLUR_CHECK(ws.h == kKernel && ws.w == kKernel, "upsample_conv2d: kernel must be 3x3, weight ",
               ws.str());
  DEBLUR_CHECK(x_low.c() == ws.c, "upsample_conv2d: input ", x_low.shape().str(), " has ",
               x_low.c(), " channels but weight ", ws.str(), " expects ", ws.c);
  DEBLUR_CHECK(x_low.h() > 0 && x_low.w() > 0, "upsample_conv2d: empty input ",
               x_low.shape().str());
  DEBLUR_CHECK(weight.is_contiguous(), "upsample_conv2d: weight ", ws.str(), " must be contiguous");
  DEBLUR_CHECK(!bias.defined() || (bias.numel() == ws.n && bias.is_contiguous()),
               "upsample_conv2d: bias ", bias.shape().str(), " must be ", ws.n,
               " contiguous values, one per output channel");
}

// The op proper: writes y (fresh or an out= view) and records the backward on it.
Tensor upsample_conv(const Tensor& x_low, const Tensor& weight, const Tensor& bias, Tensor y) {
  const Device device = y.device();
  const float* bias_data = bias.defined() ? bias.data() : nullptr;
  const bool grad = needs_grad({x_low, weight, bias});
  if (device == Device::CUDA) {
#if defined(DEBLUR_HAS_CUDA_KERNELS)
    cuda::upsample_conv2d_forward(cpu_view(x_low), weight.data(), bias_data, kKernel, cpu_view(y),
                                  cuda_stream());
#endif
  } else if (grad) {
    cpu::conv2d_forward<float>(cpu_view(upsample_cpu(x_low)), weight.data(), bias_data, kKernel,
                               cpu_view(y));
  } else {
    cpu::conv2d_forward_inference_upsampled(cpu_view(x_low), weight.data(), bias_data, kKernel,
                                            cpu_view(y));
  }
  if (grad) {
    // x_low is saved only when a parameter needs a gradient; the weight only when x_low does.
    const bool params_need_grad =
        weight.requires_grad() || (bias.defined() && bias.requires_grad());
    Tensor saved_x = params_need_grad ? x_low.detach() : Tensor();
    Tensor saved_w = x_low.requires_grad() ? weight.detach() : Tensor();
    record(y, "upsample_conv2d", {x_low, weight, bias},
           [saved_x, saved_w, low = x_low.shape()](const Tensor& grad_y, GradInputs& grads) {
             const Device dev = grad_y.device();
             if (grads.needed(0)) {
               Tensor grad_x = Tensor::empty(low, dev);
               if (dev == Device::CUDA) {
#if defined(DEBLUR_HAS_CUDA_KERNELS)
                 // The full-resolution gradient lives only for this call (file comment).
                 CudaWorkspace workspace(
                     cuda::upsample_conv2d_backward_input_workspace_bytes(cpu_view(grad_y), low.c));
                 cuda::upsample_conv2d_backward_input(cpu_view(grad_y), saved_w.data(), kKernel,
                                                      cpu_view(grad_x), workspace.data(),
                                                      cuda_stream());
#endif
               } else {
                 Tensor grad_up = Tensor::empty(upsampled(low, low.c), dev);
                 cpu::conv2d_backward_input<float>(cpu_view(grad_y), saved_w.data(), kKernel,
                                                   cpu_view(grad_up));
                 cpu::upsample_bilinear2x_backward<float>(cpu_view(grad_up), cpu_view(grad_x));
               }
               grads.set(0, grad_x);
             }
             if (grads.needed(1) || grads.needed(2)) {
               Tensor grad_w = grads.needed(1) ? grads.accumulator(1) : Tensor();
               Tensor grad_b = grads.needed(2) ? grads.accumulator(2) : Tensor();
               float* grad_w_data = grad_w.defined() ? grad_w.data() : nullptr;
               float* grad_b_data = grad_b.defined() ? grad_b.data() : nullptr;
               if (dev == Device::CUDA) {
#if defined(DEBLUR_HAS_CUDA_KERNELS)
                 CudaWorkspace workspace(cuda::upsample_conv2d_backward_params_workspace_bytes(
                     cpu_view(saved_x), cpu_view(grad_y), kKernel));
                 cuda::upsample_conv2d_backward_params(cpu_view(saved_x), cpu_view(grad_y), kKernel,
                                                       grad_w_data, grad_b_data, workspace.data(),
                                                       cuda_stream());
#endif
               } else {
                 cpu::conv2d_backward_params<float>(cpu_view(upsample_cpu(saved_x)),
                                                    cpu_view(grad_y), kKernel, grad_w_data,
                                                    grad_b_data);
               }
             }
           });
  }
  return y;
}

// The cuDNN backend's path: the two ops, so cuDNN runs the same convolution as conv2d.
bool composed(Device device) {
  return device == Device::CUDA && conv_backend() == ConvBackend::Cudnn;
}

}  // namespace

Tensor upsample_conv2d(const Tensor& x_low, const Tensor& weight, const Tensor& bias) {
  const Device device = common_device("upsample_conv2d", {x_low, weight, bias});
  check_arguments(x_low, weight, bias);
  check_backend("upsample_conv2d", device);
  if (composed(device)) return conv2d(upsample_bilinear2x(x_low), weight, bias);
  return upsample_conv(x_low, weight, bias,
                       Tensor::empty(upsampled(x_low.shape(), weight.n()), device));
}

Tensor upsample_conv2d(const Tensor& x_low, const Tensor& weight, const Tensor& bias,
                       const Tensor& out) {
  const Device device = common_device("upsample_conv2d", {x_low, weight, bias, out});
  check_arguments(x_low, weight, bias);
  DEBLUR_CHECK(out.shape() == upsampled(x_low.shape(), weight.n()), "upsample_conv2d: out ",
               out.shape().str(), " must be ", upsampled(x_low.shape(), weight.n()).str());
  DEBLUR_CHECK(!out.requires_grad(),
               "upsample_conv2d: out must be a fresh buffer with no "
               "autograd history");
  check_backend("upsample_conv2d", device);
  // The cuDNN path returns its own tensor; concat_into then copies it into place.
  if (composed(device)) return conv2d(upsample_bilinear2x(x_low), weight, bias);
  return upsample_conv(x_low, weight, bias, out.detach());
}

}  // namespace deblur
