// Pointwise CPU kernels: one pass over each sample's contiguous C*H*W values.
#include "kernels/cpu/pointwise.h"

#include <algorithm>
#include <vector>

#include "kernels/cpu/parallel.h"

namespace deblur::cpu {

template <class T>
void relu_forward(NchwView<const T> x, NchwView<T> y) {
  for_each_chunk(x.n, x.sample_size(), [&](int64_t i, int64_t begin, int64_t count) {
    const T* in = x.sample(i) + begin;
    T* out = y.sample(i) + begin;
    // NaN passes through, as in PyTorch, so a diverging run stays visible.
    for (int64_t k = 0; k < count; ++k) out[k] = in[k] > T(0) || in[k] != in[k] ? in[k] : T(0);
  });
}

template <class T>
void relu_backward(NchwView<const T> y, NchwView<const T> grad_y, NchwView<T> grad_x) {
  for_each_chunk(y.n, y.sample_size(), [&](int64_t i, int64_t begin, int64_t count) {
    const T* out = y.sample(i) + begin;
    const T* gy = grad_y.sample(i) + begin;
    T* gx = grad_x.sample(i) + begin;
    for (int64_t k = 0; k < count; ++k) gx[k] = out[k] > T(0) ? gy[k] : T(0);
  });
}

template <class T>
void add_forward(NchwView<const T> a, NchwView<const T> b, NchwView<T> y) {
  for_each_chunk(a.n, a.sample_size(), [&](int64_t i, int64_t begin, int64_t count) {
    const T* pa = a.sample(i) + begin;
    const T* pb = b.sample(i) + begin;
    T* out = y.sample(i) + begin;
    for (int64_t k = 0; k < count; ++k) out[k] = pa[k] + pb[k];
  });
}

template <class T>
void scale_forward(NchwView<const T> x, T factor, T shift, NchwView<T> y) {
  for_each_chunk(x.n, x.sample_size(), [&](int64_t i, int64_t begin, int64_t count) {
    const T* in = x.sample(i) + begin;
    T* out = y.sample(i) + begin;
    for (int64_t k = 0; k < count; ++k) out[k] = factor * in[k] + shift;
  });
}

template <class T>
void clamp_forward(NchwView<const T> x, T lo, T hi, NchwView<T> y) {
  for_each_chunk(x.n, x.sample_size(), [&](int64_t i, int64_t begin, int64_t count) {
    const T* in = x.sample(i) + begin;
    T* out = y.sample(i) + begin;
    for (int64_t k = 0; k < count; ++k) out[k] = in[k] < lo ? lo : (in[k] > hi ? hi : in[k]);
  });
}

template <class T>
void clamp_backward(NchwView<const T> x, T lo, T hi, NchwView<const T> grad_y, NchwView<T> grad_x) {
  for_each_chunk(x.n, x.sample_size(), [&](int64_t i, int64_t begin, int64_t count) {
    const T* in = x.sample(i) + begin;
    const T* gy = grad_y.sample(i) + begin;
    T* gx = grad_x.sample(i) + begin;
    for (int64_t k = 0; k < count; ++k) gx[k] = in[k] >= lo && in[k] <= hi ? gy[k] : T(0);
  });
}

template <class T>
double sum(NchwView<const T> x) {
  // Double partial sums per chunk, totalled in chunk order: the same result for any thread
  // count.
  const int64_t size = x.sample_size(), chunks = chunk_count(size);
  std::vector<double> partial(size_t(x.n * chunks), 0.0);
  for_each_chunk(x.n, size, [&](int64_t i, int64_t begin, int64_t count) {
    const T* in = x.sample(i) + begin;
    double s = 0.0;
    for (int64_t k = 0; k < count; ++k) s += in[k];
    partial[i * chunks + begin / kChunk] = s;
  });
  double total = 0.0;
  for (double s : partial) total += s;
  return total;
}

template <class T>
void fill(NchwView<T> y, T value) {
  for_each_chunk(y.n, y.sample_size(), [&](int64_t i, int64_t begin, int64_t count) {
    T* out = y.sample(i) + begin;
    for (int64_t k = 0; k < count; ++k) out[k] = value;
  });
}

template <class T>
void accumulate(NchwView<T> dst, NchwView<const T> src) {
  for_each_chunk(dst.n, dst.sample_size(), [&](int64_t i, int64_t begin, int64_t count) {
    T* out = dst.sample(i) + begin;
    const T* in = src.sample(i) + begin;
    for (int64_t k = 0; k < count; ++k) out[k] += in[k];
  });
}

template <class T>
void lerp(NchwView<T> y, NchwView<const T> x, T weight) {
  for_each_chunk(y.n, y.sample_size(), [&](int64_t i, int64_t begin, int64_t count) {
    T* out = y.sample(i) + begin;
    const T* in = x.sample(i) + begin;
    for (int64_t k = 0; k < count; ++k) out[k] += weight * (in[k] - out[k]);
  });
}

#define DEBLUR_INSTANTIATE(T)                                                               \
  template void relu_forward<T>(NchwView<const T>, NchwView<T>);                            \
  template void relu_backward<T>(NchwView<const T>, NchwView<const T>, NchwView<T>);        \
  template void add_forward<T>(NchwView<const T>, NchwView<const T>, NchwView<T>);          \
  template void scale_forward<T>(NchwView<const T>, T, T, NchwView<T>);                     \
  template void clamp_forward<T>(NchwView<const T>, T, T, NchwView<T>);                     \
  template void clamp_backward<T>(NchwView<const T>, T, T, NchwView<const T>, NchwView<T>); \
  template double sum<T>(NchwView<const T>);                                                \
  template void fill<T>(NchwView<T>, T);                                                    \
  template void accumulate<T>(NchwView<T>, NchwView<const T>);                              \
  template void lerp<T>(NchwView<T>, NchwView<const T>, T);
DEBLUR_INSTANTIATE(float)
DEBLUR_INSTANTIATE(double)
#undef DEBLUR_INSTANTIATE

}  // namespace deblur::cpu
