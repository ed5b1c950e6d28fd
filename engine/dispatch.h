// Helpers every op uses to validate its arguments and pick a backend: the one dispatch point
// between engine ops and kernels/cpu (and kernels/cuda when built).
#pragma once

#include <initializer_list>

#include "engine/tensor.h"
#include "kernels/cpu/nchw.h"

namespace deblur {

// The device all defined tensors share; throws naming the op and the devices otherwise.
Device common_device(const char* op, std::initializer_list<Tensor> tensors);
[[noreturn]] void no_kernel(const char* op, Device device);
void check_same_shape(const char* op, const Tensor& a, const Tensor& b);

inline cpu::NchwView<float> cpu_view(const Tensor& t) {
  return {t.data(), t.n(), t.c(), t.h(), t.w(), t.batch_stride()};
}

}  // namespace deblur
