// Procedural sharp images (train/procedural.h).
#include "train/procedural.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <random>
#include <vector>

#include "engine/check.h"
#include "train/dataset.h"

namespace deblur::train {

namespace {

using Colour = std::array<float, 3>;  // [0, 1]

// Value noise: a seeded lattice of random values, smoothly interpolated.
class ValueNoise {
 public:
  ValueNoise(uint64_t seed, double cell) : seed_(seed), cell_(cell) {}
  double at(double x, double y) const {
    const double gx = x / cell_, gy = y / cell_;
    const int64_t x0 = static_cast<int64_t>(std::floor(gx)), y0 = static_cast<int64_t>(std::floor(gy));
    const double fx = smooth(gx - x0), fy = smooth(gy - y0);
    const double a = lattice(x0, y0), b = lattice(x0 + 1, y0);
    const double c = lattice(x0, y0 + 1), d = lattice(x0 + 1, y0 + 1);
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy;
  }

 private:
  static double smooth(double t) { return t * t * (3 - 2 * t); }
  double lattice(int64_t x, int64_t y) const {
    const uint64_t h = mix_seed(seed_, static_cast<uint64_t>(x) * 0x9E3779B1ull ^
                                           static_cast<uint64_t>(y) * 0x85EBCA77ull);
    return static_cast<double>(h >> 11) * 0x1p-53 * 2.0 - 1.0;  // [-1, 1)
  }
  uint64_t seed_;
  double cell_;
};

// One shape: whether a point is inside it, and its colour.
struct Shape {
  enum Kind { Rect, Disc, Ring, Line, Checker } kind;
  double cx, cy, a, b;   // centre, half sizes (or radius and ring width)
  double cos_a, sin_a;   // rotation
  double reach;          // no point farther than this from the centre (on either axis) is inside
  Colour colour, second;  // second: the checker's other colour
  bool inside(double x, double y, Colour& out) const {
    if (std::abs(x - cx) > reach || std::abs(y - cy) > reach) return false;
    const double u = (x - cx) * cos_a + (y - cy) * sin_a, v = -(x - cx) * sin_a + (y - cy) * cos_a;
    switch (kind) {
      case Rect:
        if (std::abs(u) > a || std::abs(v) > b) return false;
        break;
      case Disc:
        if (u * u + v * v > a * a) return false;
        break;
      case Ring: {
        const double r = std::sqrt(u * u + v * v);
        if (r > a || r < a - b) return false;
        break;
      }
      case Line:
        if (std::abs(u) > a || std::abs(v) > b) return false;  // a long, b thin
        break;
      case Checker: {
        if (std::abs(u) > a || std::abs(v) > a) return false;
        const int64_t i = static_cast<int64_t>(std::floor((u + a) / b));
        const int64_t j = static_cast<int64_t>(std::floor((v + a) / b));
        out = (i + j) % 2 ? second : colour;
        return true;
      }
    }
    out = colour;
    return true;
  }
};

}  // namespace

Image procedural_image(int64_t width, int64_t height, uint64_t seed) {
  DEBLUR_CHECK(width > 0 && height > 0, "procedural_image: empty ", width, "x", height, " image");
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  auto colour = [&] { return Colour{float(u(rng)), float(u(rng)), float(u(rng))}; };
  const double side = static_cast<double>(std::min(width, height));

  const Colour from = colour(), to = colour();
  const double direction = 2 * M_PI * u(rng);
  const std::array<ValueNoise, 3> noise = {ValueNoise(mix_seed(seed, 1), side / 3),
                                           ValueNoise(mix_seed(seed, 2), side / 20),
                                           ValueNoise(mix_seed(seed, 3), 3.0)};
  const double texture = 0.05 + 0.15 * u(rng);

  std::vector<Shape> shapes;
  const int count = 20 + static_cast<int>(u(rng) * 40);
  for (int k = 0; k < count; ++k) {
    Shape shape;
    const double pick = u(rng);
    shape.kind = pick < 0.3   ? Shape::Rect
                 : pick < 0.5 ? Shape::Disc
                 : pick < 0.65 ? Shape::Ring
                 : pick < 0.9  ? Shape::Line
                               : Shape::Checker;
    shape.cx = u(rng) * width, shape.cy = u(rng) * height;
    const double angle = M_PI * u(rng);
    shape.cos_a = std::cos(angle), shape.sin_a = std::sin(angle);
    const double size = side * (0.02 + 0.2 * u(rng));
    shape.a = size, shape.b = size * (0.2 + 0.8 * u(rng));
    if (shape.kind == Shape::Ring) shape.b = 1.5 + 0.3 * size * u(rng);
    if (shape.kind == Shape::Line) shape.a = size * 3, shape.b = 0.5 + 2.5 * u(rng);
    if (shape.kind == Shape::Checker) shape.b = 2.0 + size / (2 + 6 * u(rng));
    shape.reach = std::hypot(shape.a, std::max(shape.a, shape.b)) + 1.0;  // checker: a x a
    shape.colour = colour(), shape.second = colour();
    shapes.push_back(shape);
  }

  Image image = make_image(width, height, 3, 8);
  constexpr int kSamples = 4;  // per axis
  for (int64_t y = 0; y < height; ++y)
    for (int64_t x = 0; x < width; ++x) {
      std::array<double, 3> sum{};
      for (int sy = 0; sy < kSamples; ++sy)
        for (int sx = 0; sx < kSamples; ++sx) {
          const double px = x + (sx + 0.5) / kSamples, py = y + (sy + 0.5) / kSamples;
          const double t = 0.5 + 0.5 * std::sin((px * std::cos(direction) + py * std::sin(direction)) /
                                                side * M_PI);
          const double grain = texture * (0.5 * noise[0].at(px, py) + 0.3 * noise[1].at(px, py) +
                                          0.2 * noise[2].at(px, py));
          Colour c{};
          for (int ch = 0; ch < 3; ++ch) c[ch] = float(from[ch] * (1 - t) + to[ch] * t + grain);
          for (const Shape& shape : shapes) {  // later shapes on top
            Colour over;
            if (shape.inside(px, py, over)) c = over;
          }
          for (int ch = 0; ch < 3; ++ch) sum[ch] += c[ch];
        }
      for (int ch = 0; ch < 3; ++ch)
        image.data8[static_cast<size_t>((y * width + x) * 3 + ch)] = static_cast<uint8_t>(
            std::lround(std::clamp(sum[ch] / (kSamples * kSamples), 0.0, 1.0) * 255.0));
    }
  return image;
}

}  // namespace deblur::train
