// Channel concat op: the output is a fresh tensor with a and b copied in (CPU or CUDA); the
// backward hands each input a zero-copy channel_slice view of the output gradient.
#include "kernels/cpu/concat.h"

#include "engine/check.h"
#include "engine/dispatch.h"
#include "engine/ops.h"
#if defined(DEBLUR_HAS_CUDA_KERNELS)
#include "kernels/cuda/concat.cuh"
#endif

namespace deblur {

Tensor concat(const Tensor& a, const Tensor& b) {
  Device device = common_device("concat", {a, b});
  DEBLUR_CHECK(a.n() == b.n() && a.h() == b.h() && a.w() == b.w(), "concat: shapes ",
               a.shape().str(), " and ", b.shape().str(),
               " must match in N, H and W (only channels may differ)");
  check_backend("concat", device);
  Tensor y = Tensor::empty({a.n(), a.c() + b.c(), a.h(), a.w()}, device);
  if (device == Device::CUDA) {
#if defined(DEBLUR_HAS_CUDA_KERNELS)
    cuda::concat_forward(cpu_view(a), cpu_view(b), cpu_view(y), cuda_stream());
#endif
  } else {
    cpu::concat_forward<float>(cpu_view(a), cpu_view(b), cpu_view(y));
  }
  if (needs_grad({a, b})) {
    record(y, "concat", {a, b}, [ca = a.c(), cb = b.c()](const Tensor& grad_y, GradInputs& grads) {
      grads.set(0, grad_y.channel_slice(0, ca));
      grads.set(1, grad_y.channel_slice(ca, cb));
    });
  }
  return y;
}

}  // namespace deblur
