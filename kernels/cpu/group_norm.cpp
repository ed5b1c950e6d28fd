// CPU GroupNorm + ReLU: one job per (sample, group); statistics in double, two passes over the
// group for the variance (stable where one-pass E[x^2] - E[x]^2 cancels).
#include "kernels/cpu/group_norm.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/cpu/parallel.h"

namespace deblur::cpu {

namespace {

// The sum of term(p[i]) over i < count, in double. Sixteen partial sums in turn, not one: a
// single running sum waits on each addition's latency (and must not be reordered), while
// independent ones vectorise; the order is fixed, so the result is too.
template <class T, class Term>
double sum_in_lanes(const T* p, int64_t count, Term term) {
  constexpr int kLanes = 16;
  double lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= count; i += kLanes)
    for (int j = 0; j < kLanes; ++j) lanes[j] += term(double(p[i + j]));
  double sum = 0;
  for (; i < count; ++i) sum += term(double(p[i]));
  for (int j = 0; j < kLanes; ++j) sum += lanes[j];
  return sum;
}

}  // namespace

template <class T>
void group_norm_forward(NchwView<const T> x, const T* gamma, const T* beta, int groups, T eps,
                        bool relu, NchwView<T> y, T* mean, T* rstd) {
  const int64_t per_group = x.c / groups, plane = x.plane();
  const int64_t count = per_group * plane;
  parallel_for(x.n * groups, [&](int64_t job) {
    const int64_t n = job / groups, c0 = (job % groups) * per_group;
    // The group's channels are contiguous within a sample.
    const T* in = x.channel(n, c0);
    const double mu = sum_in_lanes(in, count, [](double v) { return v; }) / count;
    const double ss = sum_in_lanes(in, count, [mu](double v) { return (v - mu) * (v - mu); });
    const double inv_std = 1.0 / std::sqrt(ss / count + double(eps));
    mean[job] = T(mu);
    rstd[job] = T(inv_std);
    T* out = y.channel(n, c0);
    for (int64_t c = 0; c < per_group; ++c) {
      // z = x * a + b with a, b folded per channel.
      const T a = T(inv_std * gamma[c0 + c]);
      const T b = T(beta[c0 + c] - mu * inv_std * gamma[c0 + c]);
      const T* src = in + c * plane;
      T* dst = out + c * plane;
      if (relu) {
        for (int64_t i = 0; i < plane; ++i) {
          const T z = src[i] * a + b;
          dst[i] = z > T(0) || z != z ? z : T(0);  // NaN passes, as in PyTorch
        }
      } else {
        for (int64_t i = 0; i < plane; ++i) dst[i] = src[i] * a + b;
      }
    }
  });
}

template <class T>
void group_norm_backward(NchwView<const T> x, NchwView<const T> y, const T* gamma, const T* mean,
                         const T* rstd, int groups, bool relu, NchwView<const T> grad_y,
                         NchwView<T> grad_x, T* grad_gamma, T* grad_beta) {
  const int64_t channels = x.c, per_group = channels / groups, plane = x.plane();
  const int64_t count = per_group * plane;
  // Per-(sample, channel) sums of dz * xhat and dz, reduced over samples afterwards so that
  // parallel jobs never write the same parameter gradient.
  std::vector<double> sum_dz_xhat(size_t(x.n * channels)), sum_dz(size_t(x.n * channels));
  parallel_for(x.n * groups, [&](int64_t job) {
    const int64_t n = job / groups, c0 = (job % groups) * per_group;
    const double mu = mean[job], inv_std = rstd[job];
    // dz = dy masked by the ReLU (the mask ANDed onto the bits: a branch on the output's sign
    // is mispredicted half the time); dxhat = dz * gamma.
    const auto dz_of = [relu](T dy, T out) -> double {
      const uint64_t keep = uint64_t(0) - uint64_t(!relu || out > T(0));
      const double d = double(dy);
      uint64_t bits;
      std::memcpy(&bits, &d, sizeof bits);
      bits &= keep;
      double dz;
      std::memcpy(&dz, &bits, sizeof dz);
      return dz;
    };
    double mean_dxhat = 0, mean_dxhat_xhat = 0;
    for (int64_t c = c0; c < c0 + per_group; ++c) {
      const T* src = x.channel(n, c);
      const T* dy = grad_y.channel(n, c);
      const T* out = y.channel(n, c);
      // Both sums in kLanes partial sums each, in a fixed order, as sum_in_lanes: single chains
      // wait on each addition's latency.
      constexpr int kLanes = 8;
      double dz_xhat_lanes[kLanes] = {}, dz_lanes[kLanes] = {};
      int64_t i = 0;
      for (; i + kLanes <= plane; i += kLanes)
        for (int j = 0; j < kLanes; ++j) {
          const double dz = dz_of(dy[i + j], out[i + j]);
          dz_xhat_lanes[j] += dz * ((src[i + j] - mu) * inv_std);
          dz_lanes[j] += dz;
        }
      double dz_xhat = 0, dz_sum = 0;
      for (; i < plane; ++i) {
        const double dz = dz_of(dy[i], out[i]);
        dz_xhat += dz * ((src[i] - mu) * inv_std);
        dz_sum += dz;
      }
      for (int j = 0; j < kLanes; ++j) {
        dz_xhat += dz_xhat_lanes[j];
        dz_sum += dz_lanes[j];
      }
      sum_dz_xhat[n * channels + c] = dz_xhat;
      sum_dz[n * channels + c] = dz_sum;
      mean_dxhat += dz_sum * gamma[c];
      mean_dxhat_xhat += dz_xhat * gamma[c];
    }
    mean_dxhat /= count;
    mean_dxhat_xhat /= count;
    // dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
    for (int64_t c = c0; c < c0 + per_group; ++c) {
      const T* src = x.channel(n, c);
      const T* dy = grad_y.channel(n, c);
      const T* out = y.channel(n, c);
      const double g = gamma[c];
      T* dst = grad_x.channel(n, c);
      for (int64_t i = 0; i < plane; ++i) {
        const double xhat = (src[i] - mu) * inv_std;
        dst[i] = T(inv_std * (dz_of(dy[i], out[i]) * g - mean_dxhat - xhat * mean_dxhat_xhat));
      }
    }
  });
  for (int64_t c = 0; c < channels; ++c) {
    double g = 0, b = 0;
    for (int64_t n = 0; n < x.n; ++n) {
      g += sum_dz_xhat[n * channels + c];
      b += sum_dz[n * channels + c];
    }
    if (grad_gamma) grad_gamma[c] += T(g);
    if (grad_beta) grad_beta[c] += T(b);
  }
}

#define DEBLUR_INSTANTIATE(T)                                                                    \
  template void group_norm_forward<T>(NchwView<const T>, const T*, const T*, int, T, bool,       \
                                      NchwView<T>, T*, T*);                                      \
  template void group_norm_backward<T>(NchwView<const T>, NchwView<const T>, const T*, const T*, \
                                       const T*, int, bool, NchwView<const T>, NchwView<T>, T*,  \
                                       T*);
DEBLUR_INSTANTIATE(float)
DEBLUR_INSTANTIATE(double)
#undef DEBLUR_INSTANTIATE

}  // namespace deblur::cpu
