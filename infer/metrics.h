// Image-quality metrics computed the standard way (the brief's "Reported metrics"): colour values
// mapped to [0, 1] (8-bit p / 255, 16-bit q / 65535; gray on its one channel; alpha ignored),
// data_range 1, the whole image with no border crop.
//   PSNR     10 log10(1 / MSE), the MSE over every colour value
//            (skimage.metrics.peak_signal_noise_ratio(data_range=1)).
//   SSIM     the mean over channels of the mean SSIM over the valid 11x11 Gaussian windows (sigma
//            1.5, K1 0.01, K2 0.03, population covariances): skimage's
//            structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
//            data_range=1, channel_axis=-1), whose reflect-padded map it crops by 5 on every side,
//            which leaves exactly the valid windows.
//   MS-SSIM  pytorch_msssim.ms_ssim(data_range=1, size_average=True); only when the smaller side
//            exceeds 160 pixels, as pytorch_msssim requires.
// SSIM and MS-SSIM are the engine's CPU kernels (kernels/cpu/ssim.h) run in double.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "infer/image.h"
#include "kernels/common/gaussian.h"

namespace deblur {

// SSIM's window: both sides must be at least this.
inline constexpr int64_t kMetricsMinSide = common::kGaussianTaps;

struct ImageMetrics {
  double psnr = 0.0;              // dB; +infinity when every colour value is equal
  double ssim = 0.0;              // in [-1, 1]
  std::optional<double> ms_ssim;  // empty when the smaller side is under common::kMsSsimMinSide
  bool identical() const;         // psnr is infinite: the colour values are all equal
};

// Compares a prediction with its target. Sizes and colour-channel counts must match (bit depths
// may differ: both map to [0, 1]) and both sides must be >= kMetricsMinSide; otherwise throws
// deblur::Error describing both images. Holds two double copies of the colour planes
// (16 bytes per colour value).
ImageMetrics compare_images(const Image& pred, const Image& target);

// One JSON object on one line (no trailing newline), e.g.
//   {"psnr": 22.762642960284957, "ssim": 0.8996330607320778, "ms_ssim": 0.9820082036534097,
//    "identical": false}
// Numbers are the shortest decimal that reads back as the same double (std::to_chars, as
// Python's repr), so a reader gets exactly the computed value without noise digits. JSON has no
// Infinity: identical images give "psnr": null with "identical": true. "ms_ssim" is null when
// the image is too small for MS-SSIM.
std::string metrics_json(const ImageMetrics& metrics);

}  // namespace deblur
