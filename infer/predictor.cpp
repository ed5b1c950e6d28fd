// Predictor: image in, tiles through the model, feathered stitch, 8-bit image out.
#include "infer/predictor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <utility>
#include <vector>

#include "engine/autograd.h"
#include "engine/check.h"
#include "engine/cuda_allocator.h"  // DEBLUR_HAS_CUDA_KERNELS where the CUDA stitch exists
#include "kernels/common/feather.h"
#if defined(DEBLUR_HAS_CUDA_KERNELS)
#include "kernels/cuda/stitch.cuh"
#endif

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

#if defined(DEBLUR_HAS_CUDA_KERNELS)
// The stitch on the device, for tiles the model leaves there (kernels/cuda/stitch.cuh): a band's
// tile outputs stay on the device until the band is complete, one stitch_band launch blends them
// with the rows earlier bands left in the device accumulator and turns the finished rows into
// 8-bit pixels (gray: one byte, the mean of the three channels), and one copy per band brings
// those rows to the host. The same feather, sums and division as the CPU Stitcher.
class DeviceStitcher {
 public:
  DeviceStitcher(const TilePlan& plan, bool gray)
      : plan_(plan),
        format_(gray ? cuda::StitchOutput::Gray8 : cuda::StitchOutput::Unit8),
        accumulator_(static_cast<size_t>(cuda::stitch_accumulator_floats(band(0))) *
                     sizeof(float)),
        // A band finishes at most plan.y.tile rows (the last band exactly that many).
        out_bytes_(static_cast<size_t>(plan.y.tile * plan.x.length * (gray ? 1 : 3))),
        out_(out_bytes_),
        tile_list_(cuda::stitch_workspace_bytes(plan.x.count())) {}

  // Tile ix of the current band: out is [1, 3, plan.y.padded, plan.x.padded] on the device.
  void add(const Tensor& out, int64_t ix) {
    cuda::StitchTile tile;
    tile.data = out.data();
    tile.x0 = plan_.x.starts[ix];
    tile.fx = plan_.x.feather(ix, plan_.overlap);
    tile.fy = plan_.y.feather(band_, plan_.overlap);
    tiles_.push_back(tile);
    held_.push_back(out);  // its memory must outlive the launch
  }

  // Ends the current band: its finished rows, as 8-bit pixels (1 or 3 bytes each), go to `rows`
  // on the host; returns the first of them and sets `count`.
  int64_t finish_band(std::vector<uint8_t>& rows, int64_t& count) {
    const cuda::StitchBand b = band(band_);
    cuda::stitch_band(b, tiles_.data(), static_cast<int64_t>(tiles_.size()),
                      static_cast<float*>(accumulator_.data()), out_.data(), format_,
                      tile_list_.data(), cuda_stream());
    const size_t bytes = cuda::stitch_output_bytes(b, format_);
    rows.resize(bytes);
    // cudaMemcpy waits for the launch (same stream): the band's tiles can go after it.
    DEBLUR_CUDA_CHECK(cudaMemcpy(rows.data(), out_.data(), bytes, cudaMemcpyDeviceToHost));
    tiles_.clear();
    held_.clear();
    ++band_;
    count = b.finished_end - b.first_row;
    return b.first_row;
  }

  int64_t accumulator_bytes() const {
    return cuda::stitch_accumulator_floats(band(0)) * static_cast<int64_t>(sizeof(float)) +
           static_cast<int64_t>(out_bytes_);
  }

 private:
  cuda::StitchBand band(int64_t iy) const {
    const std::vector<int64_t>& starts = plan_.y.starts;
    cuda::StitchBand b;
    b.width = plan_.x.length;
    b.channels = 3;
    b.rows = plan_.y.tile;
    b.tile_width = plan_.x.tile;
    b.src_h = plan_.y.padded;
    b.src_w = plan_.x.padded;
    b.first_row = starts[iy];
    b.carried_end = iy > 0 ? starts[iy - 1] + plan_.y.tile : b.first_row;
    b.finished_end = iy + 1 < plan_.y.count() ? starts[iy + 1] : plan_.y.length;
    b.ring_rows = plan_.y.tile;
    return b;
  }

  TilePlan plan_;
  cuda::StitchOutput format_;
  CudaWorkspace accumulator_;  // the band's value and weight sums (a ring of plan.y.tile rows)
  size_t out_bytes_;
  CudaWorkspace out_;        // the finished rows' pixels
  CudaWorkspace tile_list_;  // the band's StitchTile list
  int64_t band_ = 0;
  std::vector<cuda::StitchTile> tiles_;
  std::vector<Tensor> held_;
};
#endif
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
            // run() stitches their outputs there and brings back only finished 8-bit rows.
            const Device device = model.parameter_values().device();
            return model.forward(x.device() == device ? x : x.to(device));
          },
          options) {}

Image Predictor::run(const Image& in, const ProgressFn& progress, RunStats* stats) const {
  check_image(in);
  const TilePlan plan = plan_tiles(in.width, in.height, options_);
  Image out = make_image(in.width, in.height, in.channels, 8);

  const int channels = in.channels;
  const bool gray = in.color_channels() == 1, alpha = in.has_alpha();
  // round(q / 257) without ties: 257 is odd, so q / 257 never ends in exactly .5.
  const auto alpha_8bit = [&](int64_t x, int64_t y) {
    const int64_t i = (y * in.width + x) * channels + channels - 1;
    return in.bits == 8 ? in.data8[i] : static_cast<uint8_t>((in.data16[i] + 128) / 257);
  };
  const Stitcher::RowSink write_row = [&](int64_t y, const float* rgb) {
    uint8_t* row = out.data8.data() + y * in.width * channels;
    for (int64_t x = 0; x < in.width; ++x, rgb += 3) {
      uint8_t* px = row + x * channels;
      if (gray) {
        px[0] = common::gray_to_8bit(rgb[0], rgb[1], rgb[2]);
      } else {
        for (int c = 0; c < 3; ++c) px[c] = common::unit_to_8bit(rgb[c]);
      }
      if (alpha) px[channels - 1] = alpha_8bit(x, y);
    }
  };

  // Where the stitch runs is decided by the first tile: on the CPU for tiles that come back to
  // the host, on the device for tiles the model leaves there (when this build has the kernels).
  std::optional<Stitcher> stitcher;
#if defined(DEBLUR_HAS_CUDA_KERNELS)
  std::optional<DeviceStitcher> device_stitcher;
  std::vector<uint8_t> band_pixels;  // a band's finished rows from the device
  // Rows of 8-bit color (1 byte a pixel for gray, else 3) into the image, alpha beside them.
  const auto write_rows = [&](int64_t first, int64_t count) {
    const int64_t color = gray ? 1 : 3;
    if (!alpha) {  // the image's own layout: one copy
      std::memcpy(out.data8.data() + first * in.width * channels, band_pixels.data(),
                  band_pixels.size());
      return;
    }
    for (int64_t r = 0; r < count; ++r)
      for (int64_t x = 0; x < in.width; ++x) {
        const int64_t y = first + r;
        uint8_t* px = out.data8.data() + (y * in.width + x) * channels;
        std::memcpy(px, band_pixels.data() + (r * in.width + x) * color, color);
        px[channels - 1] = alpha_8bit(x, y);
      }
  };
#endif

  int64_t done = 0, peak_bytes = 0;
  for (int64_t iy = 0; iy < plan.y.count(); ++iy) {
    for (int64_t ix = 0; ix < plan.x.count(); ++ix) {
      const Tensor x = tile_input(in, plan, ix, iy);
      Tensor y = model_(x);
      DEBLUR_CHECK(y.defined() && y.shape() == x.shape(), "the tile function returned ",
                   y.defined() ? y.shape().str() : "nothing", " for a ", x.shape().str(),
                   " tile (it must keep the shape)");
      ++done;
      if (progress) progress(done, plan.count());
#if defined(DEBLUR_HAS_CUDA_KERNELS)
      if (done == 1 && y.device() == Device::CUDA) {
        device_stitcher.emplace(plan, gray);
        peak_bytes = device_stitcher->accumulator_bytes();
      }
      if (device_stitcher) {
        device_stitcher->add(y.device() == Device::CUDA ? y : y.to(Device::CUDA), ix);
        continue;
      }
#endif
      if (!stitcher) {
        stitcher.emplace(plan, 3);
        peak_bytes = stitcher->accumulator_bytes();
      }
      stitcher->add(y.device() == Device::CPU ? y : y.to(Device::CPU), ix);
    }
#if defined(DEBLUR_HAS_CUDA_KERNELS)
    if (device_stitcher) {
      int64_t count = 0;
      const int64_t first = device_stitcher->finish_band(band_pixels, count);
      write_rows(first, count);
      continue;
    }
#endif
    stitcher->finish_band(write_row);
  }

  if (stats) {
    stats->tiles = plan.count();
    stats->tiles_x = plan.x.count();
    stats->tiles_y = plan.y.count();
    stats->tile_width = plan.x.padded;
    stats->tile_height = plan.y.padded;
    stats->peak_accumulator_bytes = peak_bytes;
  }
  return out;
}

}  // namespace deblur
