// Predictor: image in, tiles through the model, feathered stitch, 8-bit image out.
#include "infer/predictor.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "engine/autograd.h"
#include "engine/check.h"

namespace deblur {

namespace {
void check_image(const Image& in) {
  DEBLUR_CHECK(in.width > 0 && in.height > 0, "cannot deblur an empty ", in.width, "x", in.height,
               " image");
  DEBLUR_CHECK(in.channels >= 1 && in.channels <= 4, "cannot deblur an image of ", in.channels,
               " channels (1 to 4 are supported)");
  DEBLUR_CHECK(in.bits == 8 || in.bits == 16, "cannot deblur a ", in.bits,
               "-bit image (8 or 16 are supported)");
  const size_t values = static_cast<size_t>(in.width * in.height * in.channels);
  const size_t held = in.bits == 8 ? in.data8.size() : in.data16.size();
  DEBLUR_CHECK(held == values, "image data holds ", held, " values, but a ", in.width, "x",
               in.height, "x", in.channels, " image needs ", values);
}

// Tile (ix, iy) of `in` as the model's [1, 3, padded h, padded w] input in [-1, 1], reflection-
// padded at its far end; gray fills all three channels.
Tensor tile_input(const Image& in, const TilePlan& plan, int64_t ix, int64_t iy) {
  const int64_t pw = plan.x.padded, ph = plan.y.padded;
  const int64_t x0 = plan.x.starts[ix], y0 = plan.y.starts[iy];
  std::vector<int64_t> xs(static_cast<size_t>(pw));
  for (int64_t i = 0; i < pw; ++i) xs[i] = x0 + reflect_index(i, plan.x.tile);
  Tensor t = Tensor::empty({1, 3, ph, pw});
  float* dst = t.data();
  const bool gray = in.color_channels() == 1;
  for (int64_t j = 0; j < ph; ++j) {
    const int64_t y = y0 + reflect_index(j, plan.y.tile);
    for (int c = 0; c < 3; ++c) {
      float* row = dst + (c * ph + j) * pw;
      for (int64_t i = 0; i < pw; ++i) row[i] = in.unit(xs[i], y, gray ? 0 : c);
    }
  }
  return t;
}

uint8_t to_8bit(float y) {
  return static_cast<uint8_t>(std::lround((std::clamp(y, -1.0f, 1.0f) + 1.0f) * 127.5f));
}
}  // namespace

Predictor::Predictor(TileFn model, TileOptions options)
    : model_(std::move(model)), options_(options) {
  DEBLUR_CHECK(model_, "Predictor: the tile function is empty");
  check_tile_options(options_);
}

Predictor::Predictor(const DeblurUNet& model, TileOptions options)
    : Predictor(
          [&model](const Tensor& x) {
            NoGradGuard no_grad;
            // Tiles go where the model's parameters are (after model.to(Device::CUDA), the GPU);
            // run() brings each result back to the host.
            const Device device = model.parameter_values().device();
            return model.forward(x.device() == device ? x : x.to(device));
          },
          options) {}

Image Predictor::run(const Image& in, const ProgressFn& progress, RunStats* stats) const {
  check_image(in);
  const TilePlan plan = plan_tiles(in.width, in.height, options_);
  Stitcher stitcher(plan, 3);
  Image out = make_image(in.width, in.height, in.channels, 8);

  const int channels = in.channels;
  const bool gray = in.color_channels() == 1, alpha = in.has_alpha();
  const Stitcher::RowSink write_row = [&](int64_t y, const float* rgb) {
    uint8_t* row = out.data8.data() + y * in.width * channels;
    for (int64_t x = 0; x < in.width; ++x, rgb += 3) {
      uint8_t* px = row + x * channels;
      if (gray) {
        const float sum = std::clamp(rgb[0], -1.0f, 1.0f) + std::clamp(rgb[1], -1.0f, 1.0f) +
                          std::clamp(rgb[2], -1.0f, 1.0f);
        px[0] = to_8bit(sum / 3.0f);
      } else {
        for (int c = 0; c < 3; ++c) px[c] = to_8bit(rgb[c]);
      }
      if (alpha) {
        const int64_t i = (y * in.width + x) * channels + channels - 1;
        // round(q / 257) without ties: 257 is odd, so q / 257 never ends in exactly .5.
        px[channels - 1] =
            in.bits == 8 ? in.data8[i] : static_cast<uint8_t>((in.data16[i] + 128) / 257);
      }
    }
  };

  int64_t done = 0;
  for (int64_t iy = 0; iy < plan.y.count(); ++iy) {
    for (int64_t ix = 0; ix < plan.x.count(); ++ix) {
      const Tensor x = tile_input(in, plan, ix, iy);
      Tensor y = model_(x);
      DEBLUR_CHECK(y.defined() && y.shape() == x.shape(), "the tile function returned ",
                   y.defined() ? y.shape().str() : "nothing", " for a ", x.shape().str(),
                   " tile (it must keep the shape)");
      if (y.device() != Device::CPU) y = y.to(Device::CPU);
      stitcher.add(y, ix);
      ++done;
      if (progress) progress(done, plan.count());
    }
    stitcher.finish_band(write_row);
  }

  if (stats) {
    stats->tiles = plan.count();
    stats->tiles_x = plan.x.count();
    stats->tiles_y = plan.y.count();
    stats->tile_width = plan.x.padded;
    stats->tile_height = plan.y.padded;
    stats->peak_accumulator_bytes = stitcher.accumulator_bytes();
  }
  return out;
}

}  // namespace deblur
