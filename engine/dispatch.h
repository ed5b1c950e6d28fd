// Helpers every op uses to validate its arguments and pick a backend: the one dispatch point
// between engine ops and kernels/cpu, and kernels/cuda in the builds that have CUDA kernels (the
// CUDA backend, and the simulator build of the engine). An op with a CUDA kernel calls
// check_backend, then runs its CUDA branch, written under `#if defined(DEBLUR_HAS_CUDA_KERNELS)`
// so a CPU-only build compiles it away, for Device::CUDA tensors (every op has one today).
#pragma once

#include <initializer_list>

#include "engine/cuda_allocator.h"
#include "engine/tensor.h"
#include "kernels/cpu/nchw.h"

namespace deblur {

// The device all defined tensors share; throws naming the op and the devices otherwise.
Device common_device(const char* op, std::initializer_list<Tensor> tensors);
[[noreturn]] void no_kernel(const char* op, Device device);
// For an op that has a CUDA kernel: no_kernel for a CUDA tensor in a build without CUDA kernels.
inline void check_backend(const char* op, Device device) {
#if !defined(DEBLUR_HAS_CUDA_KERNELS)
  if (device == Device::CUDA) no_kernel(op, device);
#else
  (void)op;
  (void)device;
#endif
}
void check_same_shape(const char* op, const Tensor& a, const Tensor& b);

// The kernels' view of a tensor, on either device (NchwView is a plain pointer and shape).
inline cpu::NchwView<float> cpu_view(const Tensor& t) {
  return {t.data(), t.n(), t.c(), t.h(), t.w(), t.batch_stride()};
}

}  // namespace deblur
