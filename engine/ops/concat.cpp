// Channel concat ops, whose backward hands each input a zero-copy channel_slice view of the
// output gradient: concat, whose output is a fresh tensor with a and b copied in (CPU or CUDA),
// and concat_into, whose output is a buffer the producers of a and b already wrote their
// channel slices of (out= views), so nothing is copied; an input found elsewhere is copied
// into its slice (the same kernels, with an empty second input).
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

namespace {

// True when t is exactly channels [first, first + t.c()) of buffer: the same memory, strides.
bool is_slice_of(const Tensor& t, const Tensor& buffer, int64_t first) {
  return t.same_storage(buffer) && t.data() == buffer.data() + first * buffer.h() * buffer.w() &&
         (t.batch_stride() == buffer.batch_stride() || t.n() == 1);
}

// Copies src into dst (same shape), either device: concat with an empty second input.
void copy_into(const Tensor& src, const Tensor& dst) {
  auto empty = cpu_view(src);
  empty.c = 0;
  if (src.device() == Device::CUDA) {
#if defined(DEBLUR_HAS_CUDA_KERNELS)
    cuda::concat_forward(cpu_view(src), empty, cpu_view(dst), cuda_stream());
#endif
  } else {
    cpu::concat_forward<float>(cpu_view(src), empty, cpu_view(dst));
  }
}

}  // namespace

Tensor concat_into(const Tensor& buffer, const Tensor& a, const Tensor& b) {
  Device device = common_device("concat_into", {buffer, a, b});
  DEBLUR_CHECK(a.n() == b.n() && a.h() == b.h() && a.w() == b.w() && buffer.n() == a.n() &&
                   buffer.c() == a.c() + b.c() && buffer.h() == a.h() && buffer.w() == a.w(),
               "concat_into: inputs ", a.shape().str(), " and ", b.shape().str(),
               " do not make the buffer ", buffer.shape().str());
  DEBLUR_CHECK(!buffer.requires_grad(),
               "concat_into: the buffer must be a fresh tensor with no autograd history");
  check_backend("concat_into", device);
  const bool a_in_place = is_slice_of(a, buffer, 0), b_in_place = is_slice_of(b, buffer, a.c());
  DEBLUR_CHECK((a_in_place || !a.same_storage(buffer)) && (b_in_place || !b.same_storage(buffer)),
               "concat_into: an input lies in the buffer's memory but not in its own slice (an "
               "overlapping copy)");
  if (!a_in_place) copy_into(a, buffer.channel_slice(0, a.c()));
  if (!b_in_place) copy_into(b, buffer.channel_slice(a.c(), b.c()));
  Tensor y = buffer.detach();  // a handle of its own, to carry this op's node
  if (needs_grad({a, b})) {
    record(y, "concat_into", {a, b},
           [ca = a.c(), cb = b.c()](const Tensor& grad_y, GradInputs& grads) {
             grads.set(0, grad_y.channel_slice(0, ca));
             grads.set(1, grad_y.channel_slice(ca, cb));
           });
  }
  return y;
}

}  // namespace deblur
