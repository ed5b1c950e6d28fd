// conv2d op: argument checks, dispatch (CPU and CUDA), and the backward (input and parameter
// gradients).
#include "kernels/cpu/conv2d.h"

#include "engine/check.h"
#include "engine/dispatch.h"
#include "engine/ops.h"
#if defined(DEBLUR_HAS_CUDA_KERNELS)
#include "engine/conv_backend.h"
#include "engine/cudnn_conv.h"
#include "kernels/cuda/conv2d.cuh"
#endif

namespace deblur {

#if defined(DEBLUR_HAS_CUDA_KERNELS)
namespace {
// --conv-backend cudnn: CUDA tensors go to cuDNN / cuBLAS (engine/cudnn_conv.h), whose entry
// points throw in a build without them.
bool use_cudnn() {
  return conv_backend() == ConvBackend::Cudnn;
}
}  // namespace
#endif

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  Device device = common_device("conv2d", {x, weight, bias});
  const Shape& ws = weight.shape();
  DEBLUR_CHECK(ws.h == ws.w && (ws.h == 1 || ws.h == 3),
               "conv2d: kernel must be 1x1 or 3x3, "
               "weight ",
               ws.str());
  DEBLUR_CHECK(x.c() == ws.c, "conv2d: input ", x.shape().str(), " has ", x.c(),
               " channels but weight ", ws.str(), " expects ", ws.c);
  DEBLUR_CHECK(weight.is_contiguous(), "conv2d: weight ", ws.str(), " must be contiguous");
  DEBLUR_CHECK(!bias.defined() || (bias.numel() == ws.n && bias.is_contiguous()), "conv2d: bias ",
               bias.shape().str(), " must be ", ws.n, " contiguous values, one per output channel");
  check_backend("conv2d", device);
  const int kernel = static_cast<int>(ws.h);
  Tensor y = Tensor::empty({x.n(), ws.n, x.h(), x.w()}, device);
  const float* bias_data = bias.defined() ? bias.data() : nullptr;
  const bool grad = needs_grad({x, weight, bias});
  if (device == Device::CUDA) {
#if defined(DEBLUR_HAS_CUDA_KERNELS)
    if (use_cudnn())
      cudnn::conv2d_forward(cpu_view(x), weight.data(), bias_data, kernel, cpu_view(y));
    else
      cuda::conv2d_forward(cpu_view(x), weight.data(), bias_data, kernel, cpu_view(y),
                           cuda_stream());
#endif
  } else if (grad) {
    cpu::conv2d_forward<float>(cpu_view(x), weight.data(), bias_data, kernel, cpu_view(y));
  } else {
    cpu::conv2d_forward_inference(cpu_view(x), weight.data(), bias_data, kernel, cpu_view(y));
  }
  if (grad) {
    // The input is saved only when a parameter needs a gradient; the weight only when x does.
    const bool params_need_grad =
        weight.requires_grad() || (bias.defined() && bias.requires_grad());
    Tensor saved_x = params_need_grad ? x.detach() : Tensor();
    Tensor saved_w = x.requires_grad() ? weight.detach() : Tensor();
    record(y, "conv2d", {x, weight, bias},
           [saved_x, saved_w, kernel](const Tensor& grad_y, GradInputs& grads) {
             if (grads.needed(0)) {
               Tensor grad_x = Tensor::empty({grad_y.n(), saved_w.c(), grad_y.h(), grad_y.w()},
                                             grad_y.device());
               if (grad_y.device() == Device::CUDA) {
#if defined(DEBLUR_HAS_CUDA_KERNELS)
                 if (use_cudnn())
                   cudnn::conv2d_backward_input(cpu_view(grad_y), saved_w.data(), kernel,
                                                cpu_view(grad_x));
                 else
                   cuda::conv2d_backward_input(cpu_view(grad_y), saved_w.data(), kernel,
                                               cpu_view(grad_x), cuda_stream());
#endif
               } else {
                 cpu::conv2d_backward_input<float>(cpu_view(grad_y), saved_w.data(), kernel,
                                                   cpu_view(grad_x));
               }
               grads.set(0, grad_x);
             }
             if (grads.needed(1) || grads.needed(2)) {
               Tensor grad_w = grads.needed(1) ? grads.accumulator(1) : Tensor();
               Tensor grad_b = grads.needed(2) ? grads.accumulator(2) : Tensor();
               float* grad_w_data = grad_w.defined() ? grad_w.data() : nullptr;
               float* grad_b_data = grad_b.defined() ? grad_b.data() : nullptr;
               if (grad_y.device() == Device::CUDA) {
#if defined(DEBLUR_HAS_CUDA_KERNELS)
                 if (use_cudnn()) {
                   cudnn::conv2d_backward_params(cpu_view(saved_x), cpu_view(grad_y), kernel,
                                                 grad_w_data, grad_b_data);
                 } else {
                   CudaWorkspace workspace(cuda::conv2d_backward_params_workspace_bytes(
                       cpu_view(saved_x), cpu_view(grad_y), kernel));
                   cuda::conv2d_backward_params(cpu_view(saved_x), cpu_view(grad_y), kernel,
                                                grad_w_data, grad_b_data, workspace.data(),
                                                cuda_stream());
                 }
#endif
               } else {
                 cpu::conv2d_backward_params<float>(cpu_view(saved_x), cpu_view(grad_y), kernel,
                                                    grad_w_data, grad_b_data);
               }
             }
           });
  }
  return y;
}

}  // namespace deblur
