// NchwView: how every CPU kernel sees a 4-D activation. Kernels know nothing of tensors; they
// get a pointer, the shape and the distance between samples. Within one sample the C*H*W
// values are contiguous (channel stride H*W); batch_stride may exceed C*H*W when the view is a
// channel slice of a larger tensor (a concat written in place).
#pragma once

#include <cstdint>
#include <type_traits>

namespace deblur::cpu {

template <class T>
struct NchwView {
  T* data = nullptr;
  int64_t n = 0, c = 0, h = 0, w = 0;
  int64_t batch_stride = 0;

  int64_t plane() const { return h * w; }
  int64_t sample_size() const { return c * h * w; }
  T* sample(int64_t i) const { return data + i * batch_stride; }
  T* channel(int64_t i, int64_t ch) const { return data + i * batch_stride + ch * h * w; }
  // A mutable view reads as a const one; only for mutable views, since for a const T it would
  // convert a type to itself (which nvcc flags).
  template <class U = T, std::enable_if_t<!std::is_const_v<U>, int> = 0>
  operator NchwView<const U>() const {
    return {data, n, c, h, w, batch_stride};
  }
};

template <class T>
NchwView<T> contiguous_view(T* data, int64_t n, int64_t c, int64_t h, int64_t w) {
  return {data, n, c, h, w, c * h * w};
}

}  // namespace deblur::cpu
