// The feathered stitch CUDA kernel (semantics in stitch.cuh: the CPU Stitcher's, infer/tiling.h).
// One launch per band: threads along x (one per column), the band's rows along grid.y (a
// grid-stride loop past 65535). A thread finds the tiles covering its column by a binary search
// in the x0-sorted list (those with x - tile_width < x0 <= x, a contiguous run) and adds them in
// list order; with the channel count a template parameter the running sums stay in registers.
// Reads and writes of tiles, accumulator planes and output rows are consecutive along x.
#include <algorithm>
#include <cstdint>

#include "kernels/cuda/stitch.cuh"

namespace deblur::cuda {

namespace {

constexpr unsigned kThreads = 128;
constexpr int64_t kMaxGridY = 65535;

// a * b rounded to float before any add, as the CPU computes it: nvcc would otherwise fuse
// `s + a * b` into one FMA (one rounding) and the backends would differ in the last bit.
__device__ __forceinline__ float product(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

// The first tile with x0 > limit, in tiles sorted by x0.
__device__ __forceinline__ int64_t first_after(const StitchTile* tiles, int64_t count,
                                               int64_t limit) {
  int64_t lo = 0, hi = count;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (tiles[mid].x0 > limit)
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo;
}

template <int kChannels, StitchOutput kOut>
__global__ void stitch_band_kernel(StitchBand band, const StitchTile* tiles, int64_t count,
                                   float* accumulator, void* out) {
  const int64_t x = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (x >= band.width) return;
  const int64_t first_tile = first_after(tiles, count, x - band.tile_width);
  const int64_t plane = band.src_h * band.src_w;
  for (int64_t r = blockIdx.y; r < band.rows; r += gridDim.y) {
    const int64_t y = band.first_row + r;
    float* cell = accumulator + (y % band.ring_rows) * (kChannels + 1) * band.width + x;
    float sums[kChannels + 1];
    const bool carried = y < band.carried_end;
#pragma unroll
    for (int c = 0; c <= kChannels; ++c) sums[c] = carried ? cell[c * band.width] : 0.0f;
    for (int64_t k = first_tile; k < count && tiles[k].x0 <= x; ++k) {
      const StitchTile& tile = tiles[k];
      const int64_t i = x - tile.x0;
      // feather_weight's product, rounded as on the CPU.
      const float w = product(common::feather_weight_1d<float>(i, tile.fx),
                              common::feather_weight_1d<float>(r, tile.fy));
      const float* src = tile.data + r * band.src_w + i;
#pragma unroll
      for (int c = 0; c < kChannels; ++c) sums[c] += product(w, src[c * plane]);
      sums[kChannels] += w;
    }
    if (y < band.finished_end) {
      const int64_t pixel = r * band.width + x;  // finished rows start at first_row
      const float weight = sums[kChannels];
      if constexpr (kOut == StitchOutput::Float) {
        float* o = static_cast<float*>(out) + pixel * kChannels;
#pragma unroll
        for (int c = 0; c < kChannels; ++c) o[c] = sums[c] / weight;
      } else if constexpr (kOut == StitchOutput::Unit8) {
        uint8_t* o = static_cast<uint8_t*>(out) + pixel * kChannels;
#pragma unroll
        for (int c = 0; c < kChannels; ++c) o[c] = common::unit_to_8bit(sums[c] / weight);
      } else {
        static_assert(kChannels == 3, "gray output is the mean of three channels");
        static_cast<uint8_t*>(out)[pixel] = common::gray_to_8bit(
            sums[0] / weight, sums[1] / weight, sums[2] / weight);
      }
    } else {
#pragma unroll
      for (int c = 0; c <= kChannels; ++c) cell[c * band.width] = sums[c];
    }
  }
}

template <int kChannels, StitchOutput kOut>
void launch_band(const StitchBand& band, const StitchTile* tiles, int64_t count,
                 float* accumulator, void* out, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((band.width + kThreads - 1) / kThreads),
                  static_cast<unsigned>(std::min(band.rows, kMaxGridY)));
  launch("stitch_band", stitch_band_kernel<kChannels, kOut>, grid, dim3(kThreads), 0, stream,
         band, tiles, count, accumulator, out);
}

template <int kChannels>
void launch_band(const StitchBand& band, const StitchTile* tiles, int64_t count,
                 float* accumulator, void* out, StitchOutput format, cudaStream_t stream) {
  if (format == StitchOutput::Float)
    launch_band<kChannels, StitchOutput::Float>(band, tiles, count, accumulator, out, stream);
  else
    launch_band<kChannels, StitchOutput::Unit8>(band, tiles, count, accumulator, out, stream);
}

int64_t output_channels(const StitchBand& band, StitchOutput format) {
  return format == StitchOutput::Gray8 ? 1 : band.channels;
}

void check_band(const StitchBand& b, const StitchTile* tiles, int64_t count, StitchOutput format) {
  DEBLUR_CHECK(b.channels >= 1 && b.channels <= 4, "stitch_band: ", b.channels,
               " channels (1 to 4 are supported)");
  DEBLUR_CHECK(format != StitchOutput::Gray8 || b.channels == 3,
               "stitch_band: gray output needs 3 channels, got ", b.channels);
  DEBLUR_CHECK(b.width > 0 && b.rows > 0 && b.tile_width > 0 && b.tile_width <= b.width,
               "stitch_band: a band of ", b.rows, " rows of ", b.tile_width,
               "-wide tiles does not fit an image ", b.width, " wide");
  DEBLUR_CHECK(b.src_h >= b.rows && b.src_w >= b.tile_width, "stitch_band: tile arrays of ",
               b.src_h, "x", b.src_w, " do not hold ", b.rows, "x", b.tile_width, " tiles");
  DEBLUR_CHECK(b.ring_rows >= b.rows, "stitch_band: an accumulator of ", b.ring_rows,
               " rows cannot hold a band of ", b.rows);
  DEBLUR_CHECK(b.first_row >= 0 && b.carried_end >= b.first_row &&
                   b.carried_end <= b.first_row + b.rows && b.finished_end >= b.first_row &&
                   b.finished_end <= b.first_row + b.rows,
               "stitch_band: carried rows up to ", b.carried_end, " and finished rows up to ",
               b.finished_end, " must lie in the band's rows [", b.first_row, ", ",
               b.first_row + b.rows, ")");
  DEBLUR_CHECK(count > 0 && tiles, "stitch_band: no tiles");
  // Sorted and covering every column: every pixel then has a positive weight.
  int64_t covered = 0;
  for (int64_t k = 0; k < count; ++k) {
    const StitchTile& t = tiles[k];
    DEBLUR_CHECK(t.data, "stitch_band: tile ", k, " has no data");
    DEBLUR_CHECK(t.x0 >= 0 && t.x0 + b.tile_width <= b.width, "stitch_band: tile ", k,
                 " at column ", t.x0, " reaches outside the image's ", b.width, " columns");
    DEBLUR_CHECK(k == 0 || t.x0 >= tiles[k - 1].x0, "stitch_band: tile ", k, " at column ", t.x0,
                 " comes after one at ", tiles[k - 1].x0, " (tiles must be sorted by column)");
    DEBLUR_CHECK(t.fx.length == b.tile_width && t.fy.length == b.rows, "stitch_band: tile ", k,
                 "'s feather spans ", t.fx.length, "x", t.fy.length, ", not the tile's ",
                 b.tile_width, "x", b.rows);
    DEBLUR_CHECK(t.x0 <= covered, "stitch_band: no tile covers column ", covered);
    covered = std::max(covered, t.x0 + b.tile_width);
  }
  DEBLUR_CHECK(covered == b.width, "stitch_band: no tile covers column ", covered);
}

}  // namespace

int64_t stitch_accumulator_floats(const StitchBand& band) {
  return band.ring_rows * band.width * (band.channels + 1);
}

size_t stitch_output_bytes(const StitchBand& band, StitchOutput format) {
  const int64_t values = (band.finished_end - band.first_row) * band.width *
                         output_channels(band, format);
  return static_cast<size_t>(values) * (format == StitchOutput::Float ? sizeof(float) : 1);
}

size_t stitch_workspace_bytes(int64_t count) {
  return static_cast<size_t>(count) * sizeof(StitchTile);
}

void stitch_band(const StitchBand& band, const StitchTile* tiles, int64_t count, float* accumulator,
                 void* out, StitchOutput format, void* workspace, cudaStream_t stream) {
  check_band(band, tiles, count, format);
  auto* device_tiles = static_cast<StitchTile*>(workspace);
  detail::check(cudaMemcpy(device_tiles, tiles, stitch_workspace_bytes(count),
                           cudaMemcpyHostToDevice),
                "cudaMemcpy", __FILE__, __LINE__);
  switch (band.channels) {
    case 1:
      launch_band<1>(band, device_tiles, count, accumulator, out, format, stream);
      break;
    case 2:
      launch_band<2>(band, device_tiles, count, accumulator, out, format, stream);
      break;
    case 3:
      if (format == StitchOutput::Gray8)
        launch_band<3, StitchOutput::Gray8>(band, device_tiles, count, accumulator, out, stream);
      else
        launch_band<3>(band, device_tiles, count, accumulator, out, format, stream);
      break;
    default:
      launch_band<4>(band, device_tiles, count, accumulator, out, format, stream);
      break;
  }
}

}  // namespace deblur::cuda
