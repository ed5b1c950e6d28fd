// AdamW, gradient norm and cosine schedule CPU kernels (semantics in adamw.h and
// kernels/common/adamw.h): passes over fixed-size chunks of the slab, spread over threads.
#include "kernels/cpu/adamw.h"

#include <cmath>
#include <numbers>
#include <vector>

#include "kernels/cpu/parallel.h"

namespace deblur::cpu {

template <class T>
double grad_norm_squared(const T* grads, int64_t n) {
  // A double partial per chunk, totalled in chunk order: the same bits for any thread count.
  std::vector<double> partial(chunk_count(n), 0.0);
  for_each_chunk(1, n, [&](int64_t, int64_t begin, int64_t count) {
    double s = 0.0;
    for (int64_t k = begin; k < begin + count; ++k) s += double(grads[k]) * double(grads[k]);
    partial[begin / kChunk] = s;
  });
  double total = 0.0;
  for (double s : partial) total += s;
  return total;
}

template <class T>
void adamw_step(T* params, const T* grads, T* m, T* v, int64_t n, const AdamWHyper& h, int64_t step,
                T clip_scale) {
  const common::AdamWStep<T> s = common::adamw_step_constants<T>(h, h.lr, step);
  for_each_chunk(1, n, [&](int64_t, int64_t begin, int64_t count) {
    for (int64_t k = begin; k < begin + count; ++k)
      common::adamw_update(params[k], m[k], v[k], grads[k] * clip_scale, s);
  });
}

double cosine_annealing_lr(double lr0, double eta_min, int64_t epoch, int64_t t_max) {
  return eta_min +
         (lr0 - eta_min) * (1.0 + std::cos(std::numbers::pi * double(epoch) / double(t_max))) / 2.0;
}

template double grad_norm_squared<float>(const float*, int64_t);
template double grad_norm_squared<double>(const double*, int64_t);
template void adamw_step<float>(float*, const float*, float*, float*, int64_t, const AdamWHyper&,
                                int64_t, float);
template void adamw_step<double>(double*, const double*, double*, double*, int64_t,
                                 const AdamWHyper&, int64_t, double);

}  // namespace deblur::cpu
