// Pixel loss CPU kernels (semantics in losses.h): elementwise passes over fixed-size chunks of
// each sample, so the work spreads over threads even for a single large image.
#include "kernels/cpu/losses.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/parallel.h"

namespace deblur::cpu {

namespace {
// Sum over all elements of term(pred - target): a double partial per chunk, totalled in chunk
// order, so the result does not depend on the thread count.
template <class T, class Term>
double sum_of(NchwView<const T> pred, NchwView<const T> target, Term term) {
  const int64_t size = pred.sample_size(), chunks = chunk_count(size);
  std::vector<double> partial(pred.n * chunks, 0.0);
  for_each_chunk(pred.n, size, [&](int64_t i, int64_t begin, int64_t count) {
    const T* p = pred.sample(i) + begin;
    const T* t = target.sample(i) + begin;
    double s = 0.0;
    for (int64_t k = 0; k < count; ++k) s += term(p[k] - t[k]);
    partial[i * chunks + begin / kChunk] = s;
  });
  double total = 0.0;
  for (double s : partial) total += s;
  return total;
}

// grad_pred = scale * slope(d) and grad_target = -grad_pred (when wanted), in one pass.
template <class T, class Slope>
void backward_of(NchwView<const T> pred, NchwView<const T> target, T scale, Slope slope,
                 NchwView<T> grad_pred, NchwView<T> grad_target) {
  const bool want_target = grad_target.data != nullptr;
  for_each_chunk(pred.n, pred.sample_size(), [&](int64_t i, int64_t begin, int64_t count) {
    const T* p = pred.sample(i) + begin;
    const T* t = target.sample(i) + begin;
    T* gp = grad_pred.sample(i) + begin;
    T* gt = want_target ? grad_target.sample(i) + begin : nullptr;
    for (int64_t k = 0; k < count; ++k) {
      const T g = scale * slope(p[k] - t[k]);
      gp[k] = g;
      if (want_target) gt[k] = -g;
    }
  });
}
}  // namespace

template <class T>
double charbonnier_sum(NchwView<const T> pred, NchwView<const T> target, T eps) {
  const T eps2 = eps * eps;
  return sum_of(pred, target, [eps2](T d) { return std::sqrt(d * d + eps2); });
}

template <class T>
void charbonnier_backward(NchwView<const T> pred, NchwView<const T> target, T eps, T scale,
                          NchwView<T> grad_pred, NchwView<T> grad_target) {
  const T eps2 = eps * eps;
  backward_of(
      pred, target, scale, [eps2](T d) { return d / std::sqrt(d * d + eps2); }, grad_pred,
      grad_target);
}

template <class T>
double l1_sum(NchwView<const T> pred, NchwView<const T> target) {
  return sum_of(pred, target, [](T d) { return std::abs(d); });
}

template <class T>
void l1_backward(NchwView<const T> pred, NchwView<const T> target, T scale, NchwView<T> grad_pred,
                 NchwView<T> grad_target) {
  backward_of(
      pred, target, scale, [](T d) { return T((d > T(0)) - (d < T(0))); }, grad_pred, grad_target);
}

#define DEBLUR_INSTANTIATE(T)                                                                    \
  template double charbonnier_sum<T>(NchwView<const T>, NchwView<const T>, T);                   \
  template void charbonnier_backward<T>(NchwView<const T>, NchwView<const T>, T, T, NchwView<T>, \
                                        NchwView<T>);                                            \
  template double l1_sum<T>(NchwView<const T>, NchwView<const T>);                               \
  template void l1_backward<T>(NchwView<const T>, NchwView<const T>, T, NchwView<T>, NchwView<T>);
DEBLUR_INSTANTIATE(float)
DEBLUR_INSTANTIATE(double)
#undef DEBLUR_INSTANTIATE

}  // namespace deblur::cpu
