// The SSIM Gaussian window shared by the CPU and CUDA kernels: 11 taps, sigma 1.5, normalised
// to sum 1 (pytorch_msssim's _fspecial_gauss_1d(11, 1.5)). Tap k weighs offset k - 5.
// The taps are computed in double; pytorch_msssim computes them in float32 (even for double
// inputs), which puts 3 of its taps 1 ulp away and moves SSIM values by ~1e-7.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/common/hd.h"

namespace deblur::common {

inline constexpr int kGaussianTaps = 11;
inline constexpr double kGaussianSigma = 1.5;
// MS-SSIM's fifth scale is the image shrunk 16 times and must still hold one window, so the
// smaller side needs more than 16 * (taps - 1) pixels.
inline constexpr int64_t kMsSsimMinSide = (kGaussianTaps - 1) * 16 + 1;

// exp(-d^2 / (2 sigma^2)) for tap k, before normalisation.
DEBLUR_HD double gaussian_weight_unnormalised(int k) {
  const double d = k - kGaussianTaps / 2;
  return ::exp(-d * d / (2.0 * kGaussianSigma * kGaussianSigma));
}

// Fills window[0..10] with the normalised taps; computed in double, rounded once to T.
template <class T>
DEBLUR_HD void gaussian_window(T* window) {
  double total = 0.0;
  for (int k = 0; k < kGaussianTaps; ++k) total += gaussian_weight_unnormalised(k);
  for (int k = 0; k < kGaussianTaps; ++k)
    window[k] = static_cast<T>(gaussian_weight_unnormalised(k) / total);
}

}  // namespace deblur::common
