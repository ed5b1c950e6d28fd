// Tile plans (positions, counts, coverage), option checks, reflection indices, the feather
// weight, and the band-by-band Stitcher (every row emitted once, in order, blended exactly).
#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "engine/check.h"
#include "infer/tiling.h"
#include "kernels/common/feather.h"

using namespace deblur;

namespace {
// Catch matcher: the error message contains `text`.
Catch::Matchers::StdString::ContainsMatcher names(const std::string& text) {
  return Catch::Contains(text);
}

// Every property tile_starts promises, for one axis.
void check_axis(int64_t length, int64_t tile, int64_t overlap) {
  INFO("length " << length << ", tile " << tile << ", overlap " << overlap);
  const std::vector<int64_t> starts = tile_starts(length, {tile, overlap});
  REQUIRE(!starts.empty());
  CHECK(starts.front() == 0);
  if (tile == 0 || length <= tile) {
    CHECK(starts.size() == 1);
    return;
  }
  const int64_t stride = tile - overlap;
  const int64_t expected = (length - tile + stride - 1) / stride + 1;  // ceil((L - tile) / s) + 1
  CHECK(static_cast<int64_t>(starts.size()) == expected);
  CHECK(starts.back() == length - tile);  // the last tile ends at the image edge
  for (size_t k = 1; k < starts.size(); ++k) {
    CHECK(starts[k] > starts[k - 1]);
    // Regular stride, except the edge-aligned last tile, which may step less (never more): so
    // neighbours always share at least `overlap` pixels and the tiles cover the axis.
    if (k + 1 < starts.size()) CHECK(starts[k] - starts[k - 1] == stride);
    CHECK(starts[k] - starts[k - 1] <= stride);
  }
  for (int64_t s : starts) CHECK((s >= 0 && s + tile <= length));
}
}  // namespace

TEST_CASE("tile options are checked with clear messages", "[tiling]") {
  CHECK_THROWS_AS(check_tile_options({100, 0}), Error);
  CHECK_THROWS_WITH(check_tile_options({100, 0}), names("tile size 100 must be 0"));
  CHECK_THROWS_WITH(check_tile_options({-16, 0}), names("multiple of 16"));
  CHECK_THROWS_WITH(check_tile_options({64, -1}), names("overlap -1 must not be negative"));
  CHECK_THROWS_WITH(check_tile_options({512, 256}),
                    names("overlap 256 must be less than half the tile size 512"));
  CHECK_THROWS_WITH(check_tile_options({512, 300}), names("(at most 255)"));
  CHECK_NOTHROW(check_tile_options({512, 255}));
  CHECK_NOTHROW(check_tile_options({512, 64}));
  CHECK_NOTHROW(check_tile_options({16, 7}));
  CHECK_NOTHROW(check_tile_options({0, 64}));  // the whole image: the overlap is unused
  CHECK_THROWS_WITH(tile_starts(0, {512, 64}), names("axis of length 0"));
  CHECK_THROWS_WITH(plan_tiles(10, 0, {512, 64}), names("cannot tile a 10x0 image"));
}

TEST_CASE("tile starts: first at 0, last at the edge, regular stride, inside", "[tiling]") {
  for (int64_t tile : {16, 32, 64, 112, 512})
    for (int64_t overlap : {int64_t(0), int64_t(1), int64_t(8), tile / 2 - 1}) {
      if (2 * overlap >= tile) continue;  // 8 is too much for 16
      for (int64_t length :
           {1,   7,   15,  16,  17,  31,  33,  63,  64,  65,   100,  111,  112, 113,
            200, 447, 448, 511, 512, 513, 959, 960, 961, 1000, 1080, 1920, 4096})
        check_axis(length, tile, overlap);
    }
  for (int64_t length : {1, 37, 4096}) check_axis(length, 0, 64);
}

TEST_CASE("tile starts for worked examples", "[tiling]") {
  using V = std::vector<int64_t>;
  CHECK(tile_starts(1000, {512, 64}) == V{0, 448, 488});
  CHECK(tile_starts(960, {512, 64}) == V{0, 448});  // 448 + 512 = 960: exactly regular
  CHECK(tile_starts(512, {512, 64}) == V{0});
  CHECK(tile_starts(300, {512, 64}) == V{0});
  CHECK(tile_starts(100, {32, 0}) == V{0, 32, 64, 68});
  CHECK(tile_starts(96, {32, 0}) == V{0, 32, 64});  // tiles abut
  CHECK(tile_starts(1920, {512, 64}) == V{0, 448, 896, 1344, 1408});
  CHECK(tile_starts(1080, {512, 64}) == V{0, 448, 568});

  // The seed says 1920x1080 at 512/64 makes 12 tiles (4x3). Its own loop (range(0, W, 448))
  // gives 5 x 3 = 15, and so does this rule: 1920 - 512 = 1408 needs ceil(1408 / 448) = 4
  // steps after the first tile. Four tiles would need a stride of at least 1408 / 3 = 469.3,
  // i.e. an overlap of 42 or less. The seed's "4x3" is a slip; 15 is the count.
  const TilePlan plan = plan_tiles(1920, 1080, {512, 64});
  CHECK(plan.x.count() == 5);
  CHECK(plan.y.count() == 3);
  CHECK(plan.count() == 15);
  CHECK(plan_tiles(1920, 1080, {512, 42}).x.count() == 4);
}

TEST_CASE("tile plans: tile sizes, padding to 16, whole-image tiles", "[tiling]") {
  const TilePlan small = plan_tiles(37, 53, {512, 64});
  CHECK(small.count() == 1);
  CHECK((small.x.tile == 37 && small.x.padded == 48));
  CHECK((small.y.tile == 53 && small.y.padded == 64));
  const TilePlan whole = plan_tiles(3000, 2000, {0, 64});
  CHECK(whole.count() == 1);
  CHECK((whole.x.tile == 3000 && whole.x.padded == 3008 && whole.y.padded == 2000));
  const TilePlan mixed = plan_tiles(1000, 40, {512, 64});
  CHECK((mixed.x.count() == 3 && mixed.x.tile == 512 && mixed.x.padded == 512));
  CHECK((mixed.y.count() == 1 && mixed.y.tile == 40 && mixed.y.padded == 48));
  CHECK(pad_to_16(1) == 16);
  CHECK(pad_to_16(16) == 16);
  CHECK(pad_to_16(17) == 32);
}

TEST_CASE("reflect_index is PyTorch's reflect padding, repeated past the edge", "[tiling]") {
  // F.pad(torch.arange(4.), (0, 6), mode="reflect") = 0 1 2 3 2 1 0 ... (valid for pad < n: 3),
  // then reflecting again: 1 2 3.
  const std::vector<int64_t> four = {0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0};
  for (size_t i = 0; i < four.size(); ++i) CHECK(reflect_index(int64_t(i), 4) == four[i]);
  for (int64_t i = 0; i < 16; ++i) {
    CHECK(reflect_index(i, 1) == 0);
    CHECK(reflect_index(i, 2) == i % 2);
  }
  for (int64_t n = 2; n < 40; ++n)
    for (int64_t i = 0; i < 64; ++i) {
      const int64_t r = reflect_index(i, n);
      CHECK((r >= 0 && r < n));
      if (i < 2 * n - 1) CHECK(r == (i < n ? i : 2 * (n - 1) - i));
    }
}

TEST_CASE("feather weights: positive ramps that sum to one across an overlap", "[tiling]") {
  const int64_t overlap = 8, length = 32;
  common::FeatherAxis left{length, overlap, false, true}, right{length, overlap, true, false};
  common::FeatherAxis middle{length, overlap, true, true}, alone{length, overlap, false, false};
  for (int64_t i = 0; i < length; ++i) {
    CHECK(common::feather_weight_1d<double>(i, alone) == 1.0);
    for (const auto* axis : {&left, &right, &middle}) {
      const double w = common::feather_weight_1d<double>(i, *axis);
      CHECK((w > 0.0 && w <= 1.0));
    }
  }
  CHECK(common::feather_weight_1d<double>(0, right) == 0.5 / overlap);
  CHECK(common::feather_weight_1d<double>(overlap - 1, right) == (overlap - 0.5) / overlap);
  CHECK(common::feather_weight_1d<double>(overlap, right) == 1.0);
  CHECK(common::feather_weight_1d<double>(length - 1, left) == 0.5 / overlap);
  CHECK(common::feather_weight_1d<double>(length - 1, right) == 1.0);  // the image border
  // Tile `left` at 0 and tile `right` at length - overlap share `overlap` pixels.
  for (int64_t d = 0; d < overlap; ++d) {
    const double a = common::feather_weight_1d<double>(length - overlap + d, left);
    const double b = common::feather_weight_1d<double>(d, right);
    CHECK(a + b == Approx(1.0).epsilon(1e-15));
    CHECK(common::feather_weight_1d<double>(d, middle) ==
          common::feather_weight_1d<double>(length - 1 - d, middle));
  }
  CHECK(common::feather_weight<double>(0, 3, right, middle) ==
        common::feather_weight_1d<double>(0, right) * common::feather_weight_1d<double>(3, middle));
}

TEST_CASE("Stitcher emits every row once, in order, as the weighted mean of its tiles",
          "[tiling]") {
  struct Case {
    int64_t width, height, tile, overlap;
  };
  for (const Case& c : {Case{100, 70, 32, 8}, Case{64, 64, 32, 0}, Case{37, 200, 16, 7},
                        Case{300, 33, 64, 16}, Case{20, 20, 0, 0}, Case{96, 80, 64, 16}}) {
    INFO(c.width << "x" << c.height << ", tile " << c.tile << ", overlap " << c.overlap);
    const TilePlan plan = plan_tiles(c.width, c.height, {c.tile, c.overlap});
    Stitcher stitcher(plan, 2);
    // Channel 0 of every tile holds the pixel's own image coordinates (x + 1000 y), so the blend
    // of any tiles must give it back; channel 1 is constant 1.
    int64_t next_row = 0;
    bool exact = true;
    const Stitcher::RowSink sink = [&](int64_t y, const float* values) {
      CHECK(y == next_row);
      ++next_row;
      for (int64_t x = 0; x < c.width; ++x) {
        const float want = float(x + 1000 * y);
        // The weighted mean of equal values: off by a few float ulps at most.
        if (std::abs(values[2 * x] - want) > 1e-6f * want + 1e-6f) exact = false;
        if (std::abs(values[2 * x + 1] - 1.0f) > 1e-6f) exact = false;
      }
    };
    for (int64_t iy = 0; iy < plan.y.count(); ++iy) {
      CHECK(stitcher.band() == iy);
      for (int64_t ix = 0; ix < plan.x.count(); ++ix) {
        // Padded like the model's input; only the top-left tile x tile values are used.
        Tensor out = Tensor::full({1, 2, plan.y.padded, plan.x.padded}, -5.0f);
        float* p = out.data();
        for (int64_t j = 0; j < plan.y.tile; ++j)
          for (int64_t i = 0; i < plan.x.tile; ++i) {
            p[j * plan.x.padded + i] =
                float(plan.x.starts[ix] + i + 1000 * (plan.y.starts[iy] + j));
            p[(plan.y.padded + j) * plan.x.padded + i] = 1.0f;
          }
        stitcher.add(out, ix);
      }
      stitcher.finish_band(sink);
    }
    CHECK(next_row == c.height);
    CHECK(exact);
    CHECK(stitcher.accumulator_bytes() ==
          int64_t((plan.y.tile * c.width * 3 + c.width * 2) * sizeof(float)));
    CHECK_THROWS_WITH(stitcher.add(Tensor::zeros({1, 2, 16, 16}), 0),
                      names("every band is already finished"));
  }
}

TEST_CASE("Stitcher rejects misuse with clear messages", "[tiling]") {
  const TilePlan plan = plan_tiles(100, 100, {64, 16});
  Stitcher stitcher(plan, 3);
  CHECK_THROWS_WITH(stitcher.add(Tensor::zeros({1, 3, 32, 64}), 0),
                    names("does not hold a 3-channel 64x64 tile"));
  CHECK_THROWS_WITH(stitcher.add(Tensor::zeros({1, 3, 64, 64}), 2),
                    names("tile index 2 is outside a band of 2 tiles"));
  // A band with a tile missing leaves pixels no tile covered.
  stitcher.add(Tensor::zeros({1, 3, 64, 64}), 0);
  CHECK_THROWS_WITH(stitcher.finish_band([](int64_t, const float*) {}),
                    names("pixel (64, 0) was covered by no tile"));
}
