// Predictor: tiled inference end to end with plug-in tile functions (identity, constants,
// per-tile constants, channel mixes) and with DeblurUNet: exact 8-bit round trips, seamless
// blending, gray / alpha / 16-bit handling, option errors and the stitch's memory bound.
#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <vector>

#include "engine/autograd.h"
#include "engine/check.h"
#include "infer/predictor.h"

using namespace deblur;

namespace {
Image random_image(int64_t width, int64_t height, int channels, int bits, uint32_t seed) {
  Image image = make_image(width, height, channels, bits);
  std::mt19937 rng(seed);
  if (bits == 8)
    for (uint8_t& v : image.data8) v = static_cast<uint8_t>(rng() & 0xff);
  else
    for (uint16_t& v : image.data16) v = static_cast<uint16_t>(rng() & 0xffff);
  return image;
}

// The output mapping, in double: round((clamp(y, -1, 1) + 1) * 127.5).
int to_8bit(double y) {
  return int(std::lround((std::clamp(y, -1.0, 1.0) + 1.0) * 127.5));
}

Tensor identity(const Tensor& x) {
  return x;
}

// A model whose output is `value` everywhere.
TileFn constant(float value) {
  return [value](const Tensor& x) { return Tensor::full(x.shape(), value); };
}

// The number of values where a and b differ by more than `levels`.
int64_t mismatches(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b, int levels = 0) {
  REQUIRE(a.size() == b.size());
  int64_t count = 0;
  for (size_t i = 0; i < a.size(); ++i) count += std::abs(int(a[i]) - int(b[i])) > levels;
  return count;
}
}  // namespace

TEST_CASE("identity tiles give the input back exactly, any size, tile and overlap", "[predictor]") {
  struct Size {
    int64_t width, height;
  };
  const std::vector<Size> sizes = {{1, 1},   {1, 37},  {37, 1},   {5, 3},     {16, 16},
                                   {37, 53}, {64, 64}, {100, 30}, {130, 200}, {513, 511}};
  const std::vector<TileOptions> options = {{0, 0},  {0, 64},  {16, 0},   {32, 8},  {64, 0},
                                            {64, 8}, {64, 31}, {160, 64}, {512, 64}};
  uint32_t seed = 1;
  for (const Size& size : sizes)
    for (const TileOptions& option : options) {
      INFO(size.width << "x" << size.height << ", tile " << option.tile << ", overlap "
                      << option.overlap);
      const Image in = random_image(size.width, size.height, 3, 8, seed++);
      int64_t calls = 0, last_done = 0, last_total = 0;
      RunStats stats;
      const Image out = Predictor(identity, option)
                            .run(
                                in,
                                [&](int64_t done, int64_t total) {
                                  ++calls;
                                  last_done = done;
                                  last_total = total;
                                },
                                &stats);
      REQUIRE(
          (out.width == in.width && out.height == in.height && out.channels == 3 && out.bits == 8));
      CHECK(mismatches(out.data8, in.data8) == 0);
      const TilePlan plan = plan_tiles(size.width, size.height, option);
      CHECK(stats.tiles == plan.count());
      CHECK((stats.tiles_x == plan.x.count() && stats.tiles_y == plan.y.count()));
      CHECK((stats.tile_width % 16 == 0 && stats.tile_height % 16 == 0));
      CHECK((calls == plan.count() && last_done == last_total && last_total == plan.count()));
    }
}

TEST_CASE("16-bit input maps through [-1, 1] to round(q / 257)", "[predictor]") {
  const Image in = random_image(70, 45, 3, 16, 7);
  const Image out = Predictor(identity, {32, 8}).run(in);
  REQUIRE(out.bits == 8);
  std::vector<uint8_t> want(in.data16.size());
  for (size_t i = 0; i < want.size(); ++i) want[i] = uint8_t(std::lround(in.data16[i] / 257.0));
  CHECK(mismatches(out.data8, want) == 0);
}

TEST_CASE("a constant model gives a perfectly constant image: no seams", "[predictor]") {
  for (const TileOptions& option : {TileOptions{64, 16}, TileOptions{32, 8}, TileOptions{48, 0}}) {
    const Image in = random_image(200, 150, 3, 8, 3);
    // 0.3 maps to 165.75: far from a rounding boundary, so any blend error would show.
    const Image out = Predictor(constant(0.3f), option).run(in);
    const std::vector<uint8_t> want(out.data8.size(), uint8_t(to_8bit(0.3)));
    CHECK(mismatches(out.data8, want) == 0);
  }
}

TEST_CASE("the feather blends neighbouring tiles across their overlap", "[predictor]") {
  SECTION("per-tile constants: pure regions keep theirs, overlaps lie between") {
    const TileOptions option{128, 32};
    const int64_t width = 300, height = 200;
    const TilePlan plan = plan_tiles(width, height, option);
    REQUIRE(plan.count() == 6);  // x at 0, 96, 172; y at 0, 72
    // 8-bit values 19.125, 57.375, ... 210.375: none on a rounding boundary.
    const auto tile_value = [](int64_t k) { return -0.85 + 0.3 * double(k); };
    int64_t k = 0;  // tiles arrive band by band, left to right
    const TileFn per_tile = [&](const Tensor& x) {
      return Tensor::full(x.shape(), float(tile_value(k++)));
    };
    const Image out = Predictor(per_tile, option).run(random_image(width, height, 3, 8, 5));
    int64_t pure = 0, blended = 0, bad = 0;
    for (int64_t y = 0; y < height; ++y)
      for (int64_t x = 0; x < width; ++x) {
        int lo = 255, hi = 0, covering = 0;
        for (int64_t iy = 0; iy < plan.y.count(); ++iy)
          for (int64_t ix = 0; ix < plan.x.count(); ++ix) {
            const int64_t x0 = plan.x.starts[ix], y0 = plan.y.starts[iy];
            if (x < x0 || x >= x0 + plan.x.tile || y < y0 || y >= y0 + plan.y.tile) continue;
            const int v = to_8bit(tile_value(iy * plan.x.count() + ix));
            lo = std::min(lo, v), hi = std::max(hi, v), ++covering;
          }
        const int got = out.data8[(y * width + x) * 3];
        (covering == 1 ? pure : blended)++;
        if (got < lo || got > hi || (covering == 1 && got != lo)) ++bad;
      }
    CHECK((pure > 0 && blended > 0));
    CHECK(bad == 0);
  }
  SECTION("two tiles: a linear ramp across exactly `overlap` pixels") {
    const TileOptions option{128, 32};
    const int64_t width = 224, height = 40;  // x at 0 and 96: they share [96, 128)
    int64_t k = 0;
    const TileFn two = [&](const Tensor& x) { return Tensor::full(x.shape(), k++ ? 0.5f : -0.5f); };
    const Image out = Predictor(two, option).run(random_image(width, height, 3, 8, 9));
    for (int64_t y = 0; y < height; ++y)
      for (int64_t x = 0; x < width; ++x) {
        // Tile 1 weighs (d + 0.5) / 32 at d = x - 96, tile 0 the rest: they sum to one.
        const double t = std::clamp((double(x - 96) + 0.5) / 32.0, 0.0, 1.0);
        const double blend = x < 96 ? -0.5 : x >= 128 ? 0.5 : -0.5 * (1 - t) + 0.5 * t;
        // Float vs double can only differ on an exact .5 of the 8-bit scale: one level.
        INFO("x " << x << ", y " << y);
        CHECK(std::abs(int(out.data8[(y * width + x) * 3]) - to_8bit(blend)) <= 1);
      }
  }
}

TEST_CASE("gray runs as RGB and is written back as the mean, and alpha passes through",
          "[predictor]") {
  // Channel 0 keeps the input, 1 becomes -1 and 2 becomes +1: the mean is x / 3.
  const TileFn mix = [](const Tensor& x) {
    Tensor y = x.clone();
    const int64_t plane = x.h() * x.w();
    std::fill(y.data() + plane, y.data() + 2 * plane, -1.0f);
    std::fill(y.data() + 2 * plane, y.data() + 3 * plane, 1.0f);
    return y;
  };
  SECTION("gray: identity and a channel mix") {
    const Image in = random_image(45, 33, 1, 8, 11);
    CHECK(mismatches(Predictor(identity, {32, 8}).run(in).data8, in.data8) == 0);
    const Image out = Predictor(mix, {32, 8}).run(in);
    REQUIRE(out.channels == 1);
    std::vector<uint8_t> want(in.data8.size());
    // ((p / 127.5 - 1) / 3 + 1) * 127.5 = p / 3 + 85, never near a .5: exact.
    for (size_t i = 0; i < want.size(); ++i)
      want[i] = uint8_t(to_8bit((in.data8[i] / 127.5 - 1) / 3));
    CHECK(mismatches(out.data8, want) == 0);
  }
  SECTION("gray + alpha, 8-bit") {
    const Image in = random_image(40, 50, 2, 8, 12);
    const Image out = Predictor(mix, {16, 4}).run(in);
    REQUIRE(out.channels == 2);
    for (size_t i = 0; i < in.data8.size(); i += 2) {
      CHECK(out.data8[i] == to_8bit((in.data8[i] / 127.5 - 1) / 3));
      CHECK(out.data8[i + 1] == in.data8[i + 1]);
    }
  }
  SECTION("RGBA, 8-bit: alpha untouched by the model") {
    const Image in = random_image(65, 20, 4, 8, 13);
    const Image out = Predictor(constant(-0.2f), {32, 8}).run(in);
    REQUIRE((out.channels == 4 && out.bits == 8));
    for (size_t i = 0; i < in.data8.size(); i += 4) {
      CHECK(out.data8[i] == to_8bit(-0.2));
      CHECK(out.data8[i + 3] == in.data8[i + 3]);
    }
  }
  SECTION("RGBA and gray + alpha, 16-bit: alpha becomes round(q / 257)") {
    for (int channels : {2, 4}) {
      const Image in = random_image(33, 47, channels, 16, 14);
      const Image out = Predictor(identity, {32, 4}).run(in);
      REQUIRE((out.channels == channels && out.bits == 8));
      std::vector<uint8_t> want(in.data16.size());
      for (size_t i = 0; i < want.size(); ++i) want[i] = uint8_t(std::lround(in.data16[i] / 257.0));
      CHECK(mismatches(out.data8, want) == 0);
    }
  }
}

TEST_CASE("the predictor rejects bad options, images and tile functions clearly", "[predictor]") {
  const auto names = [](const std::string& text) { return Catch::Contains(text); };
  CHECK_THROWS_WITH(Predictor(identity, {100, 0}), names("tile size 100 must be 0"));
  CHECK_THROWS_WITH(Predictor(identity, {512, 256}),
                    names("overlap 256 must be less than half the tile size 512"));
  CHECK_THROWS_WITH(Predictor(identity, {64, 32}),
                    names("overlap 32 must be less than half the tile size 64"));
  const Predictor ok(identity, {64, 8});
  Image empty = make_image(0, 5, 3, 8);
  CHECK_THROWS_WITH(ok.run(empty), names("cannot deblur an empty 0x5 image"));
  Image short_data = make_image(4, 4, 3, 8);
  short_data.data8.pop_back();
  CHECK_THROWS_WITH(ok.run(short_data), names("image data holds 47 values"));
  const Predictor shrinking([](const Tensor&) { return Tensor::zeros({1, 3, 16, 16}); }, {64, 8});
  CHECK_THROWS_WITH(shrinking.run(make_image(40, 40, 3, 8)),
                    names("the tile function returned [1, 3, 16, 16] for a [1, 3, 48, 48] tile"));
}

TEST_CASE("the stitch keeps memory bounded by the tile rows, not the image", "[predictor]") {
  const int64_t side = 4096, tile = 512, overlap = 64;
  const Image in = random_image(side, side, 3, 8, 21);
  RunStats stats;
  const Image out = Predictor(identity, {tile, overlap}).run(in, {}, &stats);
  CHECK(mismatches(out.data8, in.data8) == 0);
  CHECK(stats.tiles == 81);  // 4096 - 512 = 3584 = 8 strides of 448: 9 x 9
  // Value + weight accumulators for one band of tile rows (4 floats a pixel), with room for the
  // overlap; the whole image in float would be 8x that.
  const int64_t bound = (tile + overlap) * side * 4 * int64_t(sizeof(float));
  const int64_t whole_image = side * side * 4 * int64_t(sizeof(float));
  CHECK(stats.peak_accumulator_bytes < bound);
  CHECK(stats.peak_accumulator_bytes * 7 < whole_image);
}

TEST_CASE("DeblurUNet through the predictor matches its forward pass", "[predictor]") {
  const DeblurUNet model(32, 5);
  SECTION("--tile 0 on a small image equals forward directly") {
    const Image in = random_image(48, 32, 3, 8, 31);
    Tensor x = Tensor::empty({1, 3, in.height, in.width});
    for (int c = 0; c < 3; ++c)
      for (int64_t y = 0; y < in.height; ++y)
        for (int64_t xx = 0; xx < in.width; ++xx)
          x.data()[(c * in.height + y) * in.width + xx] = in.unit(xx, y, c);
    Tensor direct;
    {
      NoGradGuard no_grad;
      direct = model.forward(x);
    }
    std::vector<uint8_t> want(in.data8.size());
    for (int c = 0; c < 3; ++c)
      for (int64_t y = 0; y < in.height; ++y)
        for (int64_t xx = 0; xx < in.width; ++xx)
          want[(y * in.width + xx) * 3 + c] =
              uint8_t(to_8bit(direct.data()[(c * in.height + y) * in.width + xx]));
    const Image out = Predictor(model, {0, 64}).run(in);
    // The same forward pass; one level allows for a value on a .5 boundary.
    CHECK(mismatches(out.data8, want, 1) == 0);
  }
  SECTION("a tiled run and a padded whole-image run have the right sizes") {
    RunStats stats;
    const Image tiled = Predictor(model, {64, 16}).run(random_image(96, 80, 3, 8, 32), {}, &stats);
    CHECK((tiled.width == 96 && tiled.height == 80 && tiled.channels == 3 && tiled.bits == 8));
    CHECK(stats.tiles == 4);
    const Image padded = Predictor(model, {0, 0}).run(random_image(37, 21, 4, 8, 33));
    CHECK((padded.width == 37 && padded.height == 21 && padded.channels == 4));
  }
}
