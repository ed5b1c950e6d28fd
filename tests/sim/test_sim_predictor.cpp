// Tiled inference with tiles on Device::CUDA (in the simulator): the predictor keeps each tile's
// output on the device and stitches there (kernels/cuda/stitch.cu), bringing back only finished
// 8-bit rows, and the image equals the CPU stitch's: for tile functions whose overlapping tiles
// disagree (so the feather decides every blended pixel), over odd sizes, several bands, edge
// tiles, overlap 0, one padded tile, gray, alpha and 16-bit input, and for DeblurUNet itself.
#include <catch2/catch.hpp>
#include <cmath>
#include <memory>

#include "infer/image_io.h"
#include "infer/predictor.h"
#include "layers/deblur_unet.h"

using namespace deblur;

namespace {
// A tile function whose output depends on the pixel, the channel and the call (the k-th tile),
// so neighbouring tiles disagree over their overlap, and which overshoots [-1, 1] (the clamp
// matters): 1.2 sin(2.1 x + 0.7 c + 0.37 k). on_cuda leaves its output on the device, as a
// model there does.
TileFn varying_tiles(bool on_cuda) {
  auto calls = std::make_shared<int>(0);
  return [calls, on_cuda](const Tensor& x) {
    const float k = float((*calls)++);
    Tensor y = Tensor::empty(x.shape());
    const Tensor in = x.device() == Device::CPU ? x : x.to(Device::CPU);
    const int64_t plane = x.h() * x.w();
    for (int64_t i = 0; i < x.numel(); ++i)
      y.data()[i] = 1.2f * std::sin(2.1f * in.data()[i] + 0.7f * float(i / plane) + 0.37f * k);
    return on_cuda ? y.to(Device::CUDA) : y;
  };
}

Image patterned_image(int64_t width, int64_t height, int channels, int bits) {
  Image image = make_image(width, height, channels, bits);
  for (size_t i = 0; i < image.data8.size(); ++i) image.data8[i] = uint8_t((i * 37 + i / 7) % 256);
  for (size_t i = 0; i < image.data16.size(); ++i)
    image.data16[i] = uint16_t((i * 7919 + i / 3) % 65536);
  return image;
}

// The largest difference between two 8-bit images, in levels, and how many values differ.
std::pair<int, int64_t> difference(const Image& a, const Image& b) {
  REQUIRE(a.data8.size() == b.data8.size());
  int worst = 0;
  int64_t count = 0;
  for (size_t i = 0; i < a.data8.size(); ++i) {
    const int d = std::abs(int(a.data8[i]) - int(b.data8[i]));
    worst = std::max(worst, d);
    count += d != 0;
  }
  return {worst, count};
}
}  // namespace

TEST_CASE("predictor stitches cuda tiles on the device (simulator), as the cpu stitch does",
          "[sim][predictor][stitch]") {
  struct Case {
    const char* what;
    int64_t width, height;
    int channels, bits;
    TileOptions options;
  };
  const Case cases[] = {
      // columns 0 11 22 33 37, rows 0 11 22 25: the last band reaches into three.
      {"rgb, 5x4 tiles, edge tiles", 53, 41, 3, 8, {16, 5}},
      {"gray + alpha, 16-bit", 30, 35, 2, 16, {16, 6}},
      {"gray, one tile padded to 32x32", 21, 19, 1, 8, {0, 0}},
      {"rgba, overlap 0", 40, 24, 4, 8, {16, 0}},
      {"rgb, one column of tiles 17 wide", 17, 50, 3, 8, {32, 8}},
  };
  for (const Case& c : cases) {
    INFO(c.what << ": " << c.width << "x" << c.height);
    const Image image = patterned_image(c.width, c.height, c.channels, c.bits);
    RunStats cpu_stats, cuda_stats;
    const Image on_cpu = Predictor(varying_tiles(false), c.options).run(image, {}, &cpu_stats);
    const Image on_cuda = Predictor(varying_tiles(true), c.options).run(image, {}, &cuda_stats);
    CHECK(on_cuda.channels == image.channels);
    const auto [worst, count] = difference(on_cpu, on_cuda);
    INFO(count << " of " << on_cpu.data8.size() << " values differ");
    // The kernel adds the same rounded terms in the same order and divides the same way: equal
    // floats, equal pixels. A host compiler that fuses the CPU's w * v + s into an FMA (one
    // rounding for two) may move a value on a rounding boundary by one level.
#if defined(__x86_64__) && !defined(__FMA__)
    CHECK(count == 0);
#endif
    CHECK(worst <= 1);
    // The device accumulators: plan.y.tile rows of (3 values + weight) floats, and the 8-bit
    // finished rows (at most plan.y.tile of them); bounded by the band like the CPU's.
    const TilePlan plan = plan_tiles(c.width, c.height, c.options);
    const int64_t color = c.channels <= 2 ? 1 : 3;
    CHECK(cuda_stats.peak_accumulator_bytes ==
          plan.y.tile * c.width * (4 * int64_t(sizeof(float)) + color));
    CHECK(cuda_stats.tiles == cpu_stats.tiles);
  }
}

TEST_CASE("predictor on cuda (simulator) matches the cpu", "[sim][predictor]") {
  Image image = make_image(40, 24, 3, 8);
  for (size_t i = 0; i < image.data8.size(); ++i) image.data8[i] = uint8_t((i * 37 + i / 7) % 256);
  DeblurUNet model(32, /*seed=*/3);
  const TileOptions options{32, 8};  // two 32x32 tiles across, the second overlapping by 24
  const Image on_cpu = Predictor(model, options).run(image);
  model.to(Device::CUDA);
  RunStats stats;
  const Image on_cuda = Predictor(model, options).run(image, {}, &stats);
  CHECK(stats.tiles == 2);
  REQUIRE(on_cuda.data8.size() == on_cpu.data8.size());
  // Same float model on both devices with different summation orders (~1e-6 relative before
  // rounding to 8 bits): a value on a rounding boundary may move one level, never more.
  int worst = 0;
  for (size_t i = 0; i < on_cpu.data8.size(); ++i)
    worst = std::max(worst, std::abs(int(on_cpu.data8[i]) - int(on_cuda.data8[i])));
  CHECK(worst <= 1);
}
