// Resampling ops: max_pool2d (2x2, stride 2, floor) and upsample_bilinear2x
// (align_corners=False), on the CPU and CUDA; semantics in kernels/cpu/resample.h.
#include "kernels/cpu/resample.h"

#include "engine/check.h"
#include "engine/dispatch.h"
#include "engine/ops.h"
#if defined(DEBLUR_HAS_CUDA_KERNELS)
#include "kernels/cuda/resample.cuh"
#endif

namespace deblur {

Tensor max_pool2d(const Tensor& x) {
  Device device = common_device("max_pool2d", {x});
  DEBLUR_CHECK(x.h() >= 2 && x.w() >= 2, "max_pool2d: input ", x.shape().str(),
               " is smaller than the 2x2 window");
  check_backend("max_pool2d", device);
  Tensor y = Tensor::empty({x.n(), x.c(), x.h() / 2, x.w() / 2}, device);
  if (device == Device::CUDA) {
#if defined(DEBLUR_HAS_CUDA_KERNELS)
    cuda::max_pool2d_2x2_forward(cpu_view(x), cpu_view(y), cuda_stream());
#endif
  } else {
    cpu::max_pool2d_2x2_forward<float>(cpu_view(x), cpu_view(y));
  }
  if (needs_grad({x})) {
    // The backward recomputes each window's argmax from x (see the kernel header).
    record(y, "max_pool2d", {x}, [x = x.detach()](const Tensor& grad_y, GradInputs& grads) {
      Tensor grad_x = Tensor::empty(x.shape(), x.device());
      if (x.device() == Device::CUDA) {
#if defined(DEBLUR_HAS_CUDA_KERNELS)
        cuda::max_pool2d_2x2_backward(cpu_view(x), cpu_view(grad_y), cpu_view(grad_x),
                                      cuda_stream());
#endif
      } else {
        cpu::max_pool2d_2x2_backward<float>(cpu_view(x), cpu_view(grad_y), cpu_view(grad_x));
      }
      grads.set(0, grad_x);
    });
  }
  return y;
}

Tensor upsample_bilinear2x(const Tensor& x) {
  Device device = common_device("upsample_bilinear2x", {x});
  DEBLUR_CHECK(x.h() > 0 && x.w() > 0, "upsample_bilinear2x: empty input ", x.shape().str());
  check_backend("upsample_bilinear2x", device);
  Tensor y = Tensor::empty({x.n(), x.c(), 2 * x.h(), 2 * x.w()}, device);
  if (device == Device::CUDA) {
#if defined(DEBLUR_HAS_CUDA_KERNELS)
    cuda::upsample_bilinear2x_forward(cpu_view(x), cpu_view(y), cuda_stream());
#endif
  } else {
    cpu::upsample_bilinear2x_forward<float>(cpu_view(x), cpu_view(y));
  }
  if (needs_grad({x})) {
    // Linear in x: the backward needs only the input's shape.
    record(y, "upsample_bilinear2x", {x},
           [shape = x.shape()](const Tensor& grad_y, GradInputs& grads) {
             Tensor grad_x = Tensor::empty(shape, grad_y.device());
             if (grad_y.device() == Device::CUDA) {
#if defined(DEBLUR_HAS_CUDA_KERNELS)
               cuda::upsample_bilinear2x_backward(cpu_view(grad_y), cpu_view(grad_x),
                                                  cuda_stream());
#endif
             } else {
               cpu::upsample_bilinear2x_backward<float>(cpu_view(grad_y), cpu_view(grad_x));
             }
             grads.set(0, grad_x);
           });
  }
  return y;
}

}  // namespace deblur
