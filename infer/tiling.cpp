// Tile plan and the CPU feathered stitch (see tiling.h for the rules).
#include "infer/tiling.h"

#include <algorithm>
#include <cstring>

#include "engine/check.h"

namespace deblur {

void check_tile_options(const TileOptions& options) {
  DEBLUR_CHECK(options.tile >= 0 && options.tile % 16 == 0, "tile size ", options.tile,
               " must be 0 (the whole image) or a positive multiple of 16 (the model halves the "
               "image four times)");
  DEBLUR_CHECK(options.overlap >= 0, "tile overlap ", options.overlap, " must not be negative");
  DEBLUR_CHECK(options.tile == 0 || 2 * options.overlap < options.tile, "tile overlap ",
               options.overlap, " must be less than half the tile size ", options.tile,
               " (at most ", (options.tile - 1) / 2, ")");
}

int64_t pad_to_16(int64_t length) {
  return (length + 15) / 16 * 16;
}

int64_t reflect_index(int64_t i, int64_t n) {
  if (n == 1) return 0;
  const int64_t period = 2 * (n - 1);
  const int64_t m = i % period;
  return m < n ? m : period - m;
}

std::vector<int64_t> tile_starts(int64_t length, const TileOptions& options) {
  check_tile_options(options);
  DEBLUR_CHECK(length > 0, "cannot tile an axis of length ", length);
  if (options.tile == 0 || length <= options.tile) return {0};
  const int64_t last = length - options.tile;
  std::vector<int64_t> starts;
  for (int64_t s = 0; s < last; s += options.tile - options.overlap) starts.push_back(s);
  starts.push_back(last);
  return starts;
}

common::FeatherAxis TileAxis::feather(int64_t k, int64_t overlap) const {
  common::FeatherAxis axis;
  axis.length = tile;
  axis.overlap = overlap;
  axis.ramp_before = k > 0;
  axis.ramp_after = k + 1 < count();
  return axis;
}

namespace {
TileAxis plan_axis(int64_t length, const TileOptions& options) {
  TileAxis axis;
  axis.length = length;
  axis.tile = options.tile == 0 ? length : std::min(options.tile, length);
  axis.padded = pad_to_16(axis.tile);
  axis.starts = tile_starts(length, options);
  return axis;
}
}  // namespace

TilePlan plan_tiles(int64_t width, int64_t height, const TileOptions& options) {
  DEBLUR_CHECK(width > 0 && height > 0, "cannot tile a ", width, "x", height, " image");
  TilePlan plan;
  plan.x = plan_axis(width, options);
  plan.y = plan_axis(height, options);
  plan.overlap = options.overlap;
  return plan;
}

Stitcher::Stitcher(const TilePlan& plan, int64_t channels)
    : plan_(plan),
      channels_(channels),
      acc_(static_cast<size_t>(plan.y.tile * plan.x.length * (channels + 1)), 0.0f),
      done_(static_cast<size_t>(plan.x.length * channels)) {
  DEBLUR_CHECK(channels > 0, "Stitcher: channels must be positive, got ", channels);
}

int64_t Stitcher::accumulator_bytes() const {
  return static_cast<int64_t>((acc_.size() + done_.size()) * sizeof(float));
}

void Stitcher::add(const Tensor& out, int64_t ix) {
  DEBLUR_CHECK(band_ < plan_.y.count(), "Stitcher::add: every band is already finished");
  DEBLUR_CHECK(ix >= 0 && ix < plan_.x.count(), "Stitcher::add: tile index ", ix,
               " is outside a band of ", plan_.x.count(), " tiles");
  DEBLUR_CHECK(out.defined() && out.device() == Device::CPU, "Stitcher::add: needs a CPU tensor");
  DEBLUR_CHECK(
      out.n() == 1 && out.c() == channels_ && out.h() >= plan_.y.tile && out.w() >= plan_.x.tile,
      "Stitcher::add: tile output ", out.shape().str(), " does not hold a ", channels_, "-channel ",
      plan_.y.tile, "x", plan_.x.tile, " tile");
  const common::FeatherAxis ax = plan_.x.feather(ix, plan_.overlap);
  const common::FeatherAxis ay = plan_.y.feather(band_, plan_.overlap);
  const int64_t x0 = plan_.x.starts[ix], stride = channels_ + 1;
  const int64_t out_w = out.w(), plane = out.h() * out.w();
  const float* src = out.data();
  // Serial: a few flops per pixel, against the model's thousands; threads would only add
  // start-up cost on small tiles.
  for (int64_t j = 0; j < plan_.y.tile; ++j) {
    float* row = acc_.data() + (j * plan_.x.length + x0) * stride;
    for (int64_t i = 0; i < plan_.x.tile; ++i) {
      const float w = common::feather_weight<float>(i, j, ax, ay);
      float* px = row + i * stride;
      for (int64_t c = 0; c < channels_; ++c) px[c] += w * src[c * plane + j * out_w + i];
      px[channels_] += w;
    }
  }
}

void Stitcher::finish_band(const RowSink& sink) {
  DEBLUR_CHECK(band_ < plan_.y.count(), "Stitcher::finish_band: every band is already finished");
  const int64_t first = plan_.y.starts[band_];
  const int64_t next = band_ + 1 < plan_.y.count() ? plan_.y.starts[band_ + 1] : plan_.y.length;
  const int64_t final_rows = next - first, width = plan_.x.length, stride = channels_ + 1;
  const int64_t row_floats = width * stride;
  for (int64_t r = 0; r < final_rows; ++r) {
    const float* row = acc_.data() + r * row_floats;
    for (int64_t x = 0; x < width; ++x) {
      const float* px = row + x * stride;
      const float weight = px[channels_];
      DEBLUR_CHECK(weight > 0.0f, "Stitcher: pixel (", x, ", ", first + r,
                   ") was covered by no tile of band ", band_);
      for (int64_t c = 0; c < channels_; ++c) done_[x * channels_ + c] = px[c] / weight;
    }
    sink(first + r, done_.data());
  }
  // The rows the next band shares with this one move to the front; the rest start empty.
  const int64_t kept = plan_.y.tile - final_rows;
  if (kept > 0)
    std::memmove(acc_.data(), acc_.data() + final_rows * row_floats,
                 static_cast<size_t>(kept * row_floats) * sizeof(float));
  std::fill(acc_.begin() + kept * row_floats, acc_.end(), 0.0f);
  ++band_;
}

}  // namespace deblur
