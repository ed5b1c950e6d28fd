// Camera-shake kernels and their application to a patch (train/synthetic_blur.h).
#include "train/synthetic_blur.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <random>

#include "engine/check.h"

namespace deblur::train {

namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr float kGamma = 2.2f;

// Reflect (without repeating the edge) into [0, n).
int64_t reflect(int64_t i, int64_t n) {
  if (n == 1) return 0;
  const int64_t period = 2 * (n - 1);
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}

}  // namespace

BlurKernel camera_shake_kernel(uint64_t seed, int64_t max_size) {
  DEBLUR_CHECK(max_size >= 3 && max_size % 2 == 1, "camera_shake_kernel: max_size must be odd and "
               "at least 3, got ", max_size);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  std::normal_distribution<double> normal(0.0, 1.0);

  // The trajectory (Boracchi and Foi's parameters, scaled to the kernel's size).
  const int steps = 2000;
  const double anxiety = 0.003 + 0.007 * uniform(rng);  // DeblurGAN's range of "expl"
  const double centripetal = 0.7 * uniform(rng);      // pull back towards the start
  const double gaussian_term = 10.0 * uniform(rng);   // steady tremor
  const double freq_big_shakes = 0.2 * uniform(rng);
  const double max_length = 60.0;
  const double init_angle = 2.0 * kPi * uniform(rng);
  std::complex<double> velocity = std::polar(1.0, init_angle) * (max_length / (steps - 1));
  std::vector<std::complex<double>> path(steps);
  for (int t = 1; t < steps; ++t) {
    std::complex<double> jerk = 0.0;
    if (uniform(rng) < freq_big_shakes * anxiety) {
      jerk = 2.0 * std::abs(velocity) *
             std::polar(1.0, kPi + (uniform(rng) - 0.5)) * velocity / std::abs(velocity);
    }
    const std::complex<double> kick(normal(rng), normal(rng));
    // Inertia, plus (scaled by the anxiety) the tremor's kick and the pull back to the start.
    velocity += jerk + anxiety * (gaussian_term * kick - centripetal * path[t - 1]) *
                           (max_length / (steps - 1));
    velocity *= max_length / (steps - 1) / std::max(std::abs(velocity), 1e-12);
    path[t] = path[t - 1] + velocity;
  }
  // The exposure: a random portion (40-100%) of the trajectory.
  const int length = std::max(2, static_cast<int>(steps * (0.4 + 0.6 * uniform(rng))));
  path.resize(static_cast<size_t>(length));

  // Scale the path into the kernel around its centroid (the time-weighted mean position), so
  // the blur does not move the image: a kernel centred on anything else shifts the blurry
  // patch against its sharp one by up to a few pixels, a displacement the network could only
  // guess. The path's larger side spans a random `target` pixels, less where the widest reach
  // from the centroid would not fit the largest kernel.
  std::complex<double> centroid = 0.0;
  for (const auto& p : path) centroid += p;
  centroid /= static_cast<double>(path.size());
  double min_x = 1e300, max_x = -1e300, min_y = 1e300, max_y = -1e300, reach = 1e-9;
  for (const auto& p : path) {
    min_x = std::min(min_x, p.real()), max_x = std::max(max_x, p.real());
    min_y = std::min(min_y, p.imag()), max_y = std::max(max_y, p.imag());
    reach = std::max({reach, std::abs(p.real() - centroid.real()),
                      std::abs(p.imag() - centroid.imag())});
  }
  const double extent = std::max({max_x - min_x, max_y - min_y, 1e-9});
  // Uniform from a pixel (nearly sharp) up: with no mild blur in training, a model never sees
  // fine detail in its input and learns to smooth it away, sharp photos included.
  const double target = 1.0 + (double(max_size) - 3.0) * uniform(rng);
  // Half a pixel inside the edge: bilinear splatting then lands inside the kernel, and a
  // 3x3 kernel still blurs.
  const double max_half = (double(max_size) - 2.0) / 2.0;
  const double scale = std::min(target / extent, max_half / reach);
  const int64_t size =
      std::min(2 * static_cast<int64_t>(std::ceil(reach * scale)) + 3, max_size);  // odd
  const double centre = (size - 1) / 2.0;

  BlurKernel kernel;
  kernel.size = size;
  kernel.weights.assign(static_cast<size_t>(size * size), 0.0f);
  for (const auto& p : path) {
    const double x = centre + (p.real() - centroid.real()) * scale;
    const double y = centre + (p.imag() - centroid.imag()) * scale;
    // x and y lie in [0.5, size - 1.5], so both splat rows and columns are inside.
    const int64_t x0 = static_cast<int64_t>(std::floor(x)), y0 = static_cast<int64_t>(std::floor(y));
    const double fx = x - x0, fy = y - y0;
    for (int dy = 0; dy <= 1; ++dy)
      for (int dx = 0; dx <= 1; ++dx)
        kernel.weights[static_cast<size_t>((y0 + dy) * size + x0 + dx)] +=
            static_cast<float>((dx ? fx : 1 - fx) * (dy ? fy : 1 - fy));
  }
  double sum = 0.0;
  for (float w : kernel.weights) sum += w;
  for (float& w : kernel.weights) w = static_cast<float>(w / sum);
  return kernel;
}

void apply_camera_shake(const float* sharp, float* blur, int64_t width, int64_t height,
                        int64_t max_kernel, uint64_t seed) {
  DEBLUR_CHECK(width > 0 && height > 0, "apply_camera_shake: empty ", width, "x", height,
               " image");
  const BlurKernel kernel = camera_shake_kernel(seed, max_kernel);
  // Only the taps the trajectory touched: a shake kernel is a thin curve.
  struct Tap {
    int64_t dx, dy;
    float w;
  };
  std::vector<Tap> taps;
  const int64_t r = kernel.size / 2;
  for (int64_t ky = 0; ky < kernel.size; ++ky)
    for (int64_t kx = 0; kx < kernel.size; ++kx)
      if (const float w = kernel.weights[static_cast<size_t>(ky * kernel.size + kx)]; w > 0.0f)
        taps.push_back({kx - r, ky - r, w});

  std::mt19937_64 rng(seed ^ 0x6a09e667f3bcc909ull);
  const double noise_sigma = 0.01 * std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  std::normal_distribution<float> noise(0.0f, static_cast<float>(noise_sigma));
  // Each plane in linear light, reflect-padded by r once, so every tap is a shifted row read.
  const int64_t pw = width + 2 * r, ph = height + 2 * r;
  std::vector<float> linear(static_cast<size_t>(pw * ph));
  std::vector<float> sum(static_cast<size_t>(width));
  for (int c = 0; c < 3; ++c) {
    const float* in = sharp + c * width * height;
    float* out = blur + c * width * height;
    for (int64_t y = 0; y < ph; ++y)
      for (int64_t x = 0; x < pw; ++x) {
        const float v = in[reflect(y - r, height) * width + reflect(x - r, width)];
        linear[static_cast<size_t>(y * pw + x)] =
            std::pow(std::clamp((v + 1.0f) * 0.5f, 0.0f, 1.0f), kGamma);
      }
    for (int64_t y = 0; y < height; ++y) {
      // Convolution (the kernel flipped): the light at (x, y) came from x - d along the path.
      std::fill(sum.begin(), sum.end(), 0.0f);
      for (const Tap& t : taps) {
        const float* src = &linear[static_cast<size_t>((y - t.dy + r) * pw + r - t.dx)];
        for (int64_t x = 0; x < width; ++x) sum[static_cast<size_t>(x)] += t.w * src[x];
      }
      for (int64_t x = 0; x < width; ++x) {
        const float value = std::pow(sum[static_cast<size_t>(x)], 1.0f / kGamma) + noise(rng);
        out[y * width + x] = std::clamp(value, 0.0f, 1.0f) * 2.0f - 1.0f;
      }
    }
  }
}

void synthesize_camera_shake(const float* sharp, float* blur, int64_t patch, uint64_t seed) {
  int64_t max_kernel = std::clamp<int64_t>(patch / 4, 3, 31);
  max_kernel += 1 - max_kernel % 2;
  apply_camera_shake(sharp, blur, patch, patch, max_kernel, seed);
}

}  // namespace deblur::train
