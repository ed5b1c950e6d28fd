// Image-quality metrics (see metrics.h): images to [0, 1] colour planes in double, PSNR from
// their squared differences, SSIM and MS-SSIM from the engine's CPU kernels.
#include "infer/metrics.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <limits>
#include <vector>

#include "engine/check.h"
#include "kernels/cpu/ssim.h"

namespace deblur {

namespace {

// By channel count; used once the count is known to be 1 to 4.
constexpr const char* kLayoutNames[] = {"", "gray", "gray+alpha", "RGB", "RGBA"};

std::string describe(const Image& image) {
  return detail::concat(image.width, "x", image.height, " ", kLayoutNames[image.channels], " ",
                        image.bits, "-bit");
}

void check_well_formed(const Image& image, const char* role) {
  DEBLUR_CHECK(image.width > 0 && image.height > 0 && image.channels >= 1 && image.channels <= 4 &&
                   (image.bits == 8 || image.bits == 16),
               "the ", role, " image is ", image.width, "x", image.height, " with ", image.channels,
               " channels of ", image.bits, " bits; expected 1 to 4 channels of 8 or 16 bits");
  const size_t values = static_cast<size_t>(image.width * image.height * image.channels);
  const size_t stored = image.bits == 8 ? image.data8.size() : image.data16.size();
  DEBLUR_CHECK(stored == values, "the ", role, " image (", describe(image), ") holds ", stored,
               " values, not ", values);
}

// The colour channels as C planes of H x W values in [0, 1] (NCHW with N = 1), alpha dropped.
std::vector<double> unit_planes(const Image& image) {
  const int colours = image.color_channels();
  const int64_t pixels = image.width * image.height;
  std::vector<double> planes(static_cast<size_t>(colours * pixels));
  // A table for 8 bits: the same correctly rounded p / 255 as dividing each time.
  std::array<double, 256> table8;
  for (int p = 0; p < 256; ++p) table8[p] = p / 255.0;
  for (int c = 0; c < colours; ++c) {
    double* plane = planes.data() + c * pixels;
    for (int64_t i = 0; i < pixels; ++i) {
      const int64_t at = i * image.channels + c;
      plane[i] = image.bits == 8 ? table8[image.data8[at]] : image.data16[at] / 65535.0;
    }
  }
  return planes;
}

// The shortest decimal that reads back as the same double; 32 characters hold any (at most 24).
std::string json_number(double value) {
  std::array<char, 32> text;
  return std::string(text.data(), std::to_chars(text.data(), text.data() + text.size(), value).ptr);
}

// A finite value as a number; anything else as null (JSON has no Infinity or NaN).
std::string json_value(std::optional<double> value) {
  return value && std::isfinite(*value) ? json_number(*value) : "null";
}

}  // namespace

bool ImageMetrics::identical() const {
  return std::isinf(psnr);
}

ImageMetrics compare_images(const Image& pred, const Image& target) {
  check_well_formed(pred, "prediction");
  check_well_formed(target, "target");
  DEBLUR_CHECK(pred.width == target.width && pred.height == target.height &&
                   pred.color_channels() == target.color_channels(),
               "the images differ in size or colour channels: prediction ", describe(pred),
               ", target ", describe(target));
  DEBLUR_CHECK(pred.width >= kMetricsMinSide && pred.height >= kMetricsMinSide,
               "SSIM needs both sides >= ", kMetricsMinSide,
               " pixels (its window), the images are ", pred.width, "x", pred.height);

  const std::vector<double> x = unit_planes(pred), y = unit_planes(target);
  ImageMetrics metrics;
  double squares = 0.0;
  for (size_t i = 0; i < x.size(); ++i) squares += (x[i] - y[i]) * (x[i] - y[i]);
  const double mse = squares / static_cast<double>(x.size());
  metrics.psnr = mse > 0.0 ? 10.0 * std::log10(1.0 / mse) : std::numeric_limits<double>::infinity();

  const auto xv = cpu::contiguous_view(x.data(), 1, pred.color_channels(), pred.height, pred.width);
  const auto yv = cpu::contiguous_view(y.data(), 1, pred.color_channels(), pred.height, pred.width);
  // ssim_forward averages the per-channel SSIM of the valid windows, as skimage does.
  metrics.ssim = cpu::ssim_forward<double>(xv, yv, 1.0);
  if (std::min(pred.width, pred.height) >= common::kMsSsimMinSide)
    metrics.ms_ssim = cpu::ms_ssim_forward<double>(xv, yv, 1.0);
  return metrics;
}

std::string metrics_json(const ImageMetrics& metrics) {
  return detail::concat("{\"psnr\": ", json_value(metrics.psnr),
                        ", \"ssim\": ", json_value(metrics.ssim),
                        ", \"ms_ssim\": ", json_value(metrics.ms_ssim),
                        ", \"identical\": ", metrics.identical() ? "true" : "false", "}");
}

}  // namespace deblur
