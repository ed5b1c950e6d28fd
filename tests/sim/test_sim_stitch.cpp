// The feathered stitch CUDA kernel (kernels/cuda/stitch.cu) against the CPU Stitcher's math
// (infer/tiling.cpp: per pixel, sum(w * v) and sum(w) over the tiles in band order, then the
// division; the weights of kernels/common/feather.h), band by band as the predictor drives it,
// on plain tile placements (this file must not depend on infer/): odd sizes, edge-aligned last
// tiles stepping less than the stride, three bands over one row, overlap 0, one padded tile,
// 1, 3 and 4 channels, an accumulator ring larger than the band. Tiles are stored bigger than
// the tile with NaN in the margin (only the top-left region may be read) and the accumulator and
// outputs start as garbage (the simulator fills fresh allocations with NaN bytes), so a value
// read from the wrong place or never written shows.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "kernels/common/feather.h"
#include "kernels/cuda/stitch.cuh"
#include "tests/sim/device_testing.h"
#include "tests/testing.h"

namespace deblur {
namespace {

using cuda::DeviceBuffer;
using cuda::StitchOutput;
using testing::kUnitRoundoff;

// A tiled image as the predictor's plan would lay it out, written out by hand.
struct Layout {
  const char* name;
  int64_t width, height, channels;
  int64_t tile_w, tile_h, overlap;
  std::vector<int64_t> xs, ys;  // tile starts: regular, the last one on the image edge
  int64_t margin_w = 0, margin_h = 0;  // stored tile = tile + margin (the model's padding)
  int64_t ring_extra = 0;              // accumulator rows beyond the band's

  int64_t src_w() const { return tile_w + margin_w; }
  int64_t src_h() const { return tile_h + margin_h; }
  int64_t tile_values() const { return channels * src_h() * src_w(); }
  common::FeatherAxis fx(size_t k) const {
    return {tile_w, overlap, k > 0, k + 1 < xs.size()};
  }
  common::FeatherAxis fy(size_t k) const {
    return {tile_h, overlap, k > 0, k + 1 < ys.size()};
  }
};

// Every tile of band iy, [xs.size(), channels, src_h, src_w]: random in [-1, 1) inside the
// tile, NaN in the margin.
std::vector<float> band_tiles(const Layout& l, size_t iy) {
  std::vector<float> values = testing::random_floats(
      static_cast<int64_t>(l.xs.size()) * l.tile_values(), 1000 + iy);
  for (size_t t = 0; t < l.xs.size(); ++t)
    for (int64_t c = 0; c < l.channels; ++c)
      for (int64_t j = 0; j < l.src_h(); ++j)
        for (int64_t i = 0; i < l.src_w(); ++i)
          if (j >= l.tile_h || i >= l.tile_w)
            values[t * l.tile_values() + (c * l.src_h() + j) * l.src_w() + i] =
                std::numeric_limits<float>::quiet_NaN();
  return values;
}

// The CPU Stitcher's arithmetic over the whole image: for each pixel, its tiles in band order
// (bands top to bottom, tiles left to right) add w * v and w, then value = sum(w v) / sum(w).
// Pixel-interleaved, channels floats a pixel.
std::vector<float> reference(const Layout& l) {
  const int64_t stride = l.channels + 1;
  std::vector<float> acc(static_cast<size_t>(l.width * l.height * stride), 0.0f);
  for (size_t iy = 0; iy < l.ys.size(); ++iy) {
    const std::vector<float> tiles = band_tiles(l, iy);
    for (size_t ix = 0; ix < l.xs.size(); ++ix) {
      const float* src = tiles.data() + ix * l.tile_values();
      for (int64_t j = 0; j < l.tile_h; ++j)
        for (int64_t i = 0; i < l.tile_w; ++i) {
          const float w = common::feather_weight<float>(i, j, l.fx(ix), l.fy(iy));
          float* px = acc.data() + ((l.ys[iy] + j) * l.width + l.xs[ix] + i) * stride;
          for (int64_t c = 0; c < l.channels; ++c)
            px[c] += w * src[(c * l.src_h() + j) * l.src_w() + i];
          px[l.channels] += w;
        }
    }
  }
  std::vector<float> out(static_cast<size_t>(l.width * l.height * l.channels));
  for (int64_t p = 0; p < l.width * l.height; ++p)
    for (int64_t c = 0; c < l.channels; ++c)
      out[p * l.channels + c] = acc[p * stride + c] / acc[p * stride + l.channels];
  return out;
}

// The band's description, as the predictor fills it in.
cuda::StitchBand band_of(const Layout& l, size_t iy) {
  cuda::StitchBand b;
  b.width = l.width;
  b.channels = l.channels;
  b.rows = l.tile_h;
  b.tile_width = l.tile_w;
  b.src_h = l.src_h();
  b.src_w = l.src_w();
  b.first_row = l.ys[iy];
  b.carried_end = iy > 0 ? l.ys[iy - 1] + l.tile_h : b.first_row;
  b.finished_end = iy + 1 < l.ys.size() ? l.ys[iy + 1] : l.height;
  b.ring_rows = l.tile_h + l.ring_extra;
  return b;
}

// The whole image stitched on the device band by band: the output's bytes, rows in order.
std::vector<unsigned char> device_stitch(const Layout& l, StitchOutput format) {
  DeviceBuffer<float> accumulator(
      static_cast<size_t>(cuda::stitch_accumulator_floats(band_of(l, 0))));
  std::vector<unsigned char> image;
  for (size_t iy = 0; iy < l.ys.size(); ++iy) {
    const cuda::StitchBand band = band_of(l, iy);
    const DeviceBuffer<float> tiles(band_tiles(l, iy));
    std::vector<cuda::StitchTile> list;
    for (size_t ix = 0; ix < l.xs.size(); ++ix)
      list.push_back({tiles.data() + ix * l.tile_values(), l.xs[ix], l.fx(ix), l.fy(iy)});
    DeviceBuffer<unsigned char> workspace(cuda::stitch_workspace_bytes(int64_t(list.size())));
    // Exactly the promised size: in checked mode a write past it faults.
    DeviceBuffer<unsigned char> out(cuda::stitch_output_bytes(band, format));
    cuda::stitch_band(band, list.data(), int64_t(list.size()), accumulator.data(), out.data(),
                      format, workspace.data(), nullptr);
    const std::vector<unsigned char> rows = out.download();
    image.insert(image.end(), rows.begin(), rows.end());
  }
  return image;
}

std::vector<float> as_floats(const std::vector<unsigned char>& bytes) {
  std::vector<float> values(bytes.size() / sizeof(float));
  std::memcpy(values.data(), bytes.data(), values.size() * sizeof(float));
  return values;
}

const std::vector<Layout> kLayouts = {
    // tile 16, overlap 7 (stride 9): columns 0 9 18 21, rows 0 9 18 19: the last tiles step by 3
    // and 1, so rows 19..24 lie in three bands; the stored tiles carry a margin.
    {"3 channels, 4x4 tiles, edge tiles overlapping three bands", 37, 35, 3, 16, 16, 7,
     {0, 9, 18, 21}, {0, 9, 18, 19}, 5, 3, 0},
    // tile 16, overlap 4 (stride 12): columns 0 12 13, rows 0 12 24; ring of 21 rows.
    {"gray (1 channel), accumulator ring larger than the band", 29, 40, 1, 16, 16, 4,
     {0, 12, 13}, {0, 12, 24}, 0, 0, 5},
    // tile 16, overlap 0: tiles abut, except the edge-aligned last column of tiles.
    {"overlap 0", 40, 32, 3, 16, 16, 0, {0, 16, 24}, {0, 16}},
    // One 13x9 tile in a 16x16 array (the model's padding to 16), no feather at all.
    {"a single padded tile", 13, 9, 3, 13, 9, 8, {0}, {0}, 3, 7, 0},
    // The width fits in 20 but the tile is 16: two columns; 5 bands, the last one 4 below the 4th.
    {"4 channels, tall", 20, 50, 4, 16, 16, 6, {0, 4}, {0, 10, 20, 30, 34}, 2, 0, 0},
};

}  // namespace

TEST_CASE("cuda stitch (simulator) matches the cpu stitch's feathered mean, band by band",
          "[sim][stitch]") {
  for (const Layout& l : kLayouts) {
    INFO(l.name << ": " << l.width << "x" << l.height);
    const std::vector<float> want = reference(l);
    const std::vector<unsigned char> float_bytes = device_stitch(l, StitchOutput::Float);
    const std::vector<float> got = as_floats(float_bytes);
    REQUIRE(got.size() == want.size());
    // The same additions in the same order, products rounded before the add on both sides:
    // bitwise equal unless the host compiler contracts the reference's w * v + s into an FMA
    // (one rounding instead of two per term). That bounds the difference: at most 9 terms
    // (3 bands x 3 columns) with |v| <= 1 in each of the two sums, so under 20 u of the value's
    // scale (1) after the division; 32 u leaves room.
    CHECK(testing::expect_close(got, want, 32 * kUnitRoundoff, 0.0, l.name));
#if defined(__x86_64__) && !defined(__FMA__)
    // No FMA instructions on this host: nothing is contracted, so the bits must agree.
    CHECK(testing::expect_identical(got, want, l.name));
#endif
    // A fixed order and no atomics: a second run gives the same bits.
    CHECK(device_stitch(l, StitchOutput::Float) == float_bytes);

    // The fused conversions: exactly the shared helpers applied to the normalised values.
    const std::vector<unsigned char> unit8 = device_stitch(l, StitchOutput::Unit8);
    REQUIRE(unit8.size() == got.size());
    size_t bad = 0;
    for (size_t i = 0; i < got.size(); ++i) bad += unit8[i] != common::unit_to_8bit(got[i]);
    CHECK(bad == 0);
    if (l.channels == 3) {
      const std::vector<unsigned char> gray8 = device_stitch(l, StitchOutput::Gray8);
      REQUIRE(gray8.size() * 3 == got.size());
      bad = 0;
      for (size_t p = 0; p < gray8.size(); ++p)
        bad += gray8[p] != common::gray_to_8bit(got[3 * p], got[3 * p + 1], got[3 * p + 2]);
      CHECK(bad == 0);
    }
  }
}

TEST_CASE("cuda stitch rejects inconsistent bands and tile lists clearly", "[sim][stitch]") {
  const Layout l = kLayouts[2];  // 40 wide, 16x16 tiles at 0 16 24, overlap 0
  const DeviceBuffer<float> tiles(band_tiles(l, 0));
  std::vector<cuda::StitchTile> list;
  for (size_t ix = 0; ix < l.xs.size(); ++ix)
    list.push_back({tiles.data() + ix * l.tile_values(), l.xs[ix], l.fx(ix), l.fy(0)});
  const cuda::StitchBand band = band_of(l, 0);
  DeviceBuffer<float> accumulator(size_t(cuda::stitch_accumulator_floats(band)));
  DeviceBuffer<unsigned char> out(cuda::stitch_output_bytes(band, StitchOutput::Float));
  DeviceBuffer<unsigned char> workspace(cuda::stitch_workspace_bytes(int64_t(list.size())));
  const auto run = [&](cuda::StitchBand b, std::vector<cuda::StitchTile> t,
                       StitchOutput format = StitchOutput::Float) {
    cuda::stitch_band(b, t.data(), int64_t(t.size()), accumulator.data(), out.data(), format,
                      workspace.data(), nullptr);
  };
  CHECK_NOTHROW(run(band, list));

  CHECK_THROWS_WITH(run(band, {list[0], list[1], list[2], list[1]}),
                    Catch::Contains("tile 3 at column 16 comes after one at 24"));
  CHECK_THROWS_WITH(run(band, {list[0], list[2]}), Catch::Contains("no tile covers column 16"));
  CHECK_THROWS_WITH(run(band, {list[0], list[1]}), Catch::Contains("no tile covers column 32"));
  std::vector<cuda::StitchTile> outside = list;
  outside[2].x0 = 30;
  CHECK_THROWS_WITH(run(band, outside), Catch::Contains("reaches outside the image's 40 columns"));
  std::vector<cuda::StitchTile> short_feather = list;
  short_feather[1].fy.length = 8;
  CHECK_THROWS_WITH(run(band, short_feather), Catch::Contains("feather spans 16x8"));

  cuda::StitchBand gray = band;
  gray.channels = 1;
  CHECK_THROWS_WITH(run(gray, list, StitchOutput::Gray8),
                    Catch::Contains("gray output needs 3 channels"));
  cuda::StitchBand too_far = band;
  too_far.finished_end = band.first_row + band.rows + 1;
  CHECK_THROWS_WITH(run(too_far, list), Catch::Contains("must lie in the band's rows [0, 16)"));
  cuda::StitchBand small_ring = band;
  small_ring.ring_rows = band.rows - 1;
  CHECK_THROWS_WITH(run(small_ring, list), Catch::Contains("cannot hold a band of 16"));
  cuda::StitchBand small_tiles = band;
  small_tiles.src_w = band.tile_width - 1;
  CHECK_THROWS_WITH(run(small_tiles, list), Catch::Contains("do not hold 16x16 tiles"));
}

}  // namespace deblur
