// Convolution CUDA kernels (semantics in conv2d.cuh: PyTorch's F.conv2d, stride 1, zero padding
// k/2, as kernels/cpu/conv2d.h).
//
// Forward: an implicit GEMM (M = output pixels, N = output channels, K = input channels x taps)
// with no im2col buffer. A block owns a kTileH x kTileW tile of output pixels (one per thread)
// for kTileO output channels (kTileO accumulators per thread). It walks the input channels in
// chunks of kChunkC: the chunk's input patch (the tile plus a k/2 halo, zeros outside the
// image) and the chunk's weights are staged in shared memory, then every thread does its
// kChunkC * k * k * kTileO multiply-adds out of shared memory. Channel counts need not be
// multiples of the tiles: missing channels load as zeros and are never written. A tensor-core
// version (WMMA/mma.sync on TF32 or BF16) keeps this block tile and K-chunk staging and replaces
// the inner product over the staged tiles (and their shared-memory layout) with fragments.
//
// Input gradient: the same kernel with the weights transposed and flipped while they are
// staged (w'[c][o][t] = w[o][c][k*k-1-t]), exact for stride 1 and "same" padding with odd k;
// no flipped copy is made.
//
// Parameter gradients: dW[o][c][t] = sum over n and pixels p of dy[n,o,p] * x[n,c,p+shift(t)],
// a GEMM whose K is the batch times the pixels. A block owns kWTileO x kWTileC (o, c) pairs, one
// per thread with its k*k taps, and a fixed, strided subset of the (sample, pixel tile) units:
// per unit it stages the dy tile and the x patch in shared memory, sums the tile in float, and
// adds that to a double total. Each block writes its partial dW (and, in the blocks of the
// first channel tile, partial db) to the workspace; a finalize kernel sums the partials in
// split order and adds them (+=) to grad_weight and grad_bias. No atomics: deterministic.
//
// Upsample-conv (conv of a bilinear x2 upsample, align_corners=False): the same kernels with
// another input-load policy (Load::Upsample2x). Where the direct loader copies x[c][row][col]
// into the shared patch, it computes the upsampled value at full-resolution (row, col) from
// four values of x_low, with the expression and order of the upsample kernels; each tile's
// source rows, columns and weights (kernels/common/bilinear.h) are built once into shared
// memory, and zero padding applies outside the 2h x 2w plane. So the forward and the weight
// gradient read x_low (4x smaller; neighbouring threads share its values through the cache)
// and no upsampled tensor exists. The input gradient is the transposed conv into a
// full-resolution workspace, reduced by the upsample's adjoint (upsample_bilinear2x_backward):
// the adjoint's outputs straddle the pixel tiles (an x_low pixel gathers full-resolution rows
// 2i-1..2i+2), so fusing it into the store would need atomics (not deterministic) or
// recomputed halos (~1.4x the transposed conv's work for 8x16 tiles); the workspace is
// transient (conv2d.cuh).
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "kernels/common/bilinear.h"
#include "kernels/cuda/conv2d.cuh"
#include "kernels/cuda/resample.cuh"

namespace deblur::cuda {

namespace {

constexpr int kTileH = 8, kTileW = 16;     // output pixels per block
constexpr int kThreads = kTileH * kTileW;  // one output pixel per thread
constexpr int kTileO = 16;                 // output channels per block (forward)
constexpr int kChunkC = 8;                 // input channels staged per step (forward)
constexpr int kWTileO = 16, kWTileC = 8;   // (o, c) pairs per block (weight gradient)
static_assert(kWTileO * kWTileC == kThreads, "one (o, c) pair per thread");
constexpr int64_t kTargetBlocks = 1024;   // weight-gradient blocks to aim for (fills a GPU)
constexpr int64_t kMinUnitsPerSplit = 4;  // so a partial's write is amortised over some work
constexpr unsigned kFinalizeThreads = 256;

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

void check_kernel(int kernel) {
  DEBLUR_CHECK(kernel == 1 || kernel == 3, "cuda conv2d: kernel size ", kernel,
               " (supported: 1 and 3)");
}

// The image tiles and, for the weight gradient, how many blocks share the (sample, tile) units.
struct Tiling {
  int64_t tiles_w, tiles, o_tiles, c_tiles, splits;
};

// The pixel tiles cover grad_y's plane (x's, or twice x's for the upsample-conv).
Tiling weight_grad_tiling(cpu::NchwView<const float> x, cpu::NchwView<const float> grad_y) {
  Tiling t{};
  t.tiles_w = ceil_div(grad_y.w, kTileW);
  t.tiles = ceil_div(grad_y.h, kTileH) * t.tiles_w;
  t.o_tiles = ceil_div(grad_y.c, kWTileO);
  t.c_tiles = ceil_div(x.c, kWTileC);
  const int64_t units = grad_y.n * t.tiles;
  t.splits = std::max<int64_t>(1, std::min(ceil_div(kTargetBlocks, t.o_tiles * t.c_tiles),
                                           ceil_div(units, kMinUnitsPerSplit)));
  return t;
}

// Stages channels [c0, c0 + Channels) of sample `in` around the tile at (row0, col0) with a
// `halo` border: patch[c][r][s] = x[c0 + c][row0 + r - halo][col0 + s - halo], 0 outside.
template <int Channels, int PatchH, int PatchW>
__device__ __forceinline__ void stage_patch(float (*patch)[PatchH][PatchW], const float* in,
                                            int64_t channels, int64_t height, int64_t width,
                                            int64_t c0, int64_t row0, int64_t col0, int halo) {
  for (int i = threadIdx.x; i < Channels * PatchH * PatchW; i += kThreads) {
    const int c = i / (PatchH * PatchW), r = i / PatchW % PatchH, s = i % PatchW;
    const int64_t row = row0 + r - halo, col = col0 + s - halo;
    const bool inside = c0 + c < channels && row >= 0 && row < height && col >= 0 && col < width;
    patch[c][r][s] = inside ? in[(c0 + c) * height * width + row * width + col] : 0.0f;
  }
}

// How a kernel fills its input patch from x: one implicit GEMM, two load policies.
enum class Load {
  Direct,      // x itself
  Upsample2x,  // the bilinear x2 upsample of x (align_corners=False), interpolated while loaded
};

// The upsample policy's taps for one pixel tile's patch, built once per tile (kernels/common/
// bilinear.h, as the upsample kernels): for each patch row, the offsets in x_low's plane of its
// two source rows and their weights; for each column, its two source columns and weights. An
// offset of -1 marks a row or column outside the 2h x 2w plane (the conv's zero padding).
template <int PatchH, int PatchW>
struct UpsampleTaps {
  int64_t row0[PatchH], row1[PatchH], col0[PatchW], col1[PatchW];
  float row_w0[PatchH], row_w1[PatchH], col_w0[PatchW], col_w1[PatchW];
};
struct NoTaps {};  // the direct policy's: nothing

// Fills taps for the patch around the tile at (row0, col0) with a `halo` border, one row or
// column per thread; the caller synchronises before use.
template <int PatchH, int PatchW>
__device__ __forceinline__ void build_upsample_taps(UpsampleTaps<PatchH, PatchW>& taps,
                                                    int64_t low_h, int64_t low_w, int64_t row0,
                                                    int64_t col0, int halo) {
  const int t = threadIdx.x;
  if (t < PatchH) {
    const int64_t row = row0 + t - halo;
    const bool inside = row >= 0 && row < 2 * low_h;
    const auto tap = common::upsample2x_tap<float>(inside ? row : 0, low_h);
    taps.row0[t] = inside ? tap.i0 * low_w : -1;
    taps.row1[t] = tap.i1 * low_w;
    taps.row_w0[t] = tap.w0;
    taps.row_w1[t] = tap.w1;
  } else if (t < PatchH + PatchW) {
    const int s = t - PatchH;
    const int64_t col = col0 + s - halo;
    const bool inside = col >= 0 && col < 2 * low_w;
    const auto tap = common::upsample2x_tap<float>(inside ? col : 0, low_w);
    taps.col0[s] = inside ? tap.i0 : -1;
    taps.col1[s] = tap.i1;
    taps.col_w0[s] = tap.w0;
    taps.col_w1[s] = tap.w1;
  }
}

// As stage_patch, from the bilinear x2 upsample of x_low (a [channels, low_plane] plane stack)
// through the tile's taps: patch[c][r][s] = up(x_low)[c0 + c][row0 + r - halo][col0 + s - halo],
// 0 outside.
template <int Channels, int PatchH, int PatchW>
__device__ __forceinline__ void stage_upsampled_patch(float (*patch)[PatchH][PatchW],
                                                      const float* in, int64_t channels,
                                                      int64_t low_plane, int64_t c0,
                                                      const UpsampleTaps<PatchH, PatchW>& taps) {
  for (int i = threadIdx.x; i < Channels * PatchH * PatchW; i += kThreads) {
    const int c = i / (PatchH * PatchW), r = i / PatchW % PatchH, s = i % PatchW;
    float v = 0.0f;
    if (c0 + c < channels && taps.row0[r] >= 0 && taps.col0[s] >= 0) {
      const float* plane = in + (c0 + c) * low_plane;
      const float* r0 = plane + taps.row0[r];
      const float* r1 = plane + taps.row1[r];
      const int64_t i0 = taps.col0[s], i1 = taps.col1[s];
      const float w0 = taps.col_w0[s], w1 = taps.col_w1[s];
      // The upsample kernels' order: H weights outside, W-weighted sums inside.
      v = taps.row_w0[r] * (w0 * r0[i0] + w1 * r0[i1]) +
          taps.row_w1[r] * (w0 * r1[i0] + w1 * r1[i1]);
    }
    patch[c][r][s] = v;
  }
}

// The per-tile tap state of policy L.
template <Load L, int PatchH, int PatchW>
using TapsOf = std::conditional_t<L == Load::Upsample2x, UpsampleTaps<PatchH, PatchW>, NoTaps>;

// Prepares policy L for the tile at (row0, col0): the upsample builds its taps (and returns after
// a barrier, so every thread of the block must call it); the direct load needs nothing.
template <Load L, int PatchH, int PatchW>
__device__ __forceinline__ void prepare_input(TapsOf<L, PatchH, PatchW>& taps, int64_t in_h,
                                              int64_t in_w, int64_t row0, int64_t col0, int halo) {
  if constexpr (L == Load::Upsample2x) {
    build_upsample_taps(taps, in_h, in_w, row0, col0, halo);
    __syncthreads();
  } else {
    (void)taps, (void)in_h, (void)in_w, (void)row0, (void)col0, (void)halo;
  }
}

// Stages the input patch by policy L; in_h x in_w is x's plane (x_low's for Upsample2x).
template <Load L, int Channels, int PatchH, int PatchW>
__device__ __forceinline__ void stage_input(float (*patch)[PatchH][PatchW], const float* in,
                                            int64_t channels, int64_t in_h, int64_t in_w,
                                            int64_t c0, int64_t row0, int64_t col0, int halo,
                                            const TapsOf<L, PatchH, PatchW>& taps) {
  if constexpr (L == Load::Direct) {
    (void)taps;
    stage_patch<Channels>(patch, in, channels, in_h, in_w, c0, row0, col0, halo);
  } else {
    (void)row0, (void)col0, (void)halo;
    stage_upsampled_patch<Channels>(patch, in, channels, in_h * in_w, c0, taps);
  }
}

// y = conv(x, w) + bias, x loaded by policy L (x_low for Upsample2x). Transposed: x is grad_y, y is
// grad_x and the weight OIHW [x.c, y.c] is read transposed and flipped. Grid: (pixel tiles, output
// channel tiles, samples).
template <int K, bool Transposed, Load L>
__global__ void conv_kernel(cpu::NchwView<const float> x, const float* weight, const float* bias,
                            cpu::NchwView<float> y, int64_t tiles_w) {
  constexpr int kTaps = K * K, kPad = K / 2;
  constexpr int kPatchH = kTileH + K - 1, kPatchW = kTileW + K - 1;
  __shared__ float patch[kChunkC][kPatchH][kPatchW];
  __shared__ float w_tile[kChunkC][kTaps][kTileO];

  const int64_t in_c = x.c, out_c = y.c, height = y.h, width = y.w;
  // x's plane (the same as y's when loaded directly, so that instance is the plain conv).
  const int64_t in_h = L == Load::Direct ? height : x.h, in_w = L == Load::Direct ? width : x.w;
  const int64_t row0 = blockIdx.x / tiles_w * kTileH, col0 = blockIdx.x % tiles_w * kTileW;
  const int64_t o0 = static_cast<int64_t>(blockIdx.y) * kTileO;
  const int ty = threadIdx.x / kTileW, tx = threadIdx.x % kTileW;
  const float* in = x.data + blockIdx.z * x.batch_stride;

  __shared__ TapsOf<L, kPatchH, kPatchW> taps;
  prepare_input<L, kPatchH, kPatchW>(taps, in_h, in_w, row0, col0, kPad);

  float acc[kTileO];
  for (int o = 0; o < kTileO; ++o) acc[o] = bias && o0 + o < out_c ? bias[o0 + o] : 0.0f;

  for (int64_t c0 = 0; c0 < in_c; c0 += kChunkC) {
    stage_input<L, kChunkC>(patch, in, in_c, in_h, in_w, c0, row0, col0, kPad, taps);
    // The fastest index follows the weight's memory order, so global reads are coalesced.
    for (int i = threadIdx.x; i < kChunkC * kTaps * kTileO; i += kThreads) {
      const int t = i % kTaps;
      const int c = Transposed ? i / (kTaps * kTileO) : i / kTaps % kChunkC;
      const int o = Transposed ? i / kTaps % kTileO : i / (kTaps * kChunkC);
      float v = 0.0f;
      if (c0 + c < in_c && o0 + o < out_c)
        v = Transposed ? weight[((c0 + c) * out_c + o0 + o) * kTaps + (kTaps - 1 - t)]
                       : weight[((o0 + o) * in_c + c0 + c) * kTaps + t];
      w_tile[c][t][o] = v;
    }
    __syncthreads();
    for (int c = 0; c < kChunkC; ++c)
      for (int u = 0; u < K; ++u)
        for (int v = 0; v < K; ++v) {
          const float xv = patch[c][ty + u][tx + v];
          const float* w = w_tile[c][u * K + v];
          for (int o = 0; o < kTileO; ++o) acc[o] += xv * w[o];
        }
    __syncthreads();  // before the next chunk overwrites the tiles
  }

  const int64_t row = row0 + ty, col = col0 + tx;
  if (row >= height || col >= width) return;
  float* out = y.data + blockIdx.z * y.batch_stride + row * width + col;
  for (int o = 0; o < kTileO; ++o)
    if (o0 + o < out_c) out[(o0 + o) * height * width] = acc[o];
}

// Partial dW and db of split blockIdx.x into partials[split][o][c][t] (then [split][O][C][T] +
// o for db), x loaded by policy L. Grid: (splits, input channel tiles, output channel tiles).
template <int K, Load L>
__global__ void weight_grad_kernel(cpu::NchwView<const float> x, cpu::NchwView<const float> grad_y,
                                   int64_t tiles_w, int64_t tiles, float* partials) {
  constexpr int kTaps = K * K, kPad = K / 2;
  constexpr int kPatchH = kTileH + K - 1, kPatchW = kTileW + K - 1;
  __shared__ float gy_tile[kWTileO][kTileH][kTileW];
  __shared__ float patch[kWTileC][kPatchH][kPatchW];
  __shared__ TapsOf<L, kPatchH, kPatchW> taps;

  const int64_t in_c = x.c, out_c = grad_y.c, height = grad_y.h, width = grad_y.w;
  const int64_t in_h = L == Load::Direct ? height : x.h, in_w = L == Load::Direct ? width : x.w;
  const int64_t c0 = static_cast<int64_t>(blockIdx.y) * kWTileC;
  const int64_t o0 = static_cast<int64_t>(blockIdx.z) * kWTileO;
  const int o = threadIdx.x / kWTileC, c = threadIdx.x % kWTileC;
  // Only the first channel tile's blocks write db, one thread per output channel.
  const bool sums_bias = blockIdx.y == 0 && c == 0;

  double total[kTaps] = {}, bias_total = 0.0;
  for (int64_t unit = blockIdx.x; unit < grad_y.n * tiles; unit += gridDim.x) {
    const int64_t n = unit / tiles, tile = unit % tiles;
    const int64_t row0 = tile / tiles_w * kTileH, col0 = tile % tiles_w * kTileW;
    prepare_input<L, kPatchH, kPatchW>(taps, in_h, in_w, row0, col0, kPad);
    stage_patch<kWTileO>(gy_tile, grad_y.data + n * grad_y.batch_stride, out_c, height, width, o0,
                         row0, col0, 0);
    stage_input<L, kWTileC>(patch, x.data + n * x.batch_stride, in_c, in_h, in_w, c0, row0, col0,
                            kPad, taps);
    __syncthreads();
    float sum[kTaps] = {}, bias_sum = 0.0f;
    for (int r = 0; r < kTileH; ++r)
      for (int s = 0; s < kTileW; ++s) {
        const float g = gy_tile[o][r][s];  // 0 outside the image
        bias_sum += g;
        for (int u = 0; u < K; ++u)
          for (int v = 0; v < K; ++v) sum[u * K + v] += g * patch[c][r + u][s + v];
      }
    for (int t = 0; t < kTaps; ++t) total[t] += sum[t];
    bias_total += bias_sum;
    __syncthreads();  // before the next unit overwrites the tiles
  }

  if (o0 + o >= out_c) return;
  const int64_t weights = out_c * in_c * kTaps;
  float* part = partials + blockIdx.x * (weights + out_c);
  if (c0 + c < in_c)
    for (int t = 0; t < kTaps; ++t)
      part[((o0 + o) * in_c + c0 + c) * kTaps + t] = static_cast<float>(total[t]);
  if (sums_bias) part[weights + o0 + o] = static_cast<float>(bias_total);
}

// grad_weight[i] += the sum of the splits' partials (and grad_bias after the weights), each
// summed in split order in double and rounded once, as the CPU twin rounds its double sums.
__global__ void weight_grad_finalize_kernel(const float* partials, int64_t weights, int64_t out_c,
                                            int64_t splits, float* grad_weight, float* grad_bias) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t per_split = weights + out_c;
  if (i >= per_split) return;
  double s = 0.0;
  for (int64_t k = 0; k < splits; ++k) s += partials[k * per_split + i];
  if (i < weights) {
    if (grad_weight) grad_weight[i] += static_cast<float>(s);
  } else if (grad_bias) {
    grad_bias[i - weights] += static_cast<float>(s);
  }
}

// The plane factor of a load policy: y's plane is `scale` times x's along each axis.
constexpr int64_t plane_scale(Load load) {
  return load == Load::Upsample2x ? 2 : 1;
}

// y = conv(x, w) + b, or its transposed form: the grid and kernel choice common to both.
template <bool Transposed, Load L = Load::Direct>
void convolve(const char* name, cpu::NchwView<const float> x, const float* weight,
              const float* bias, int kernel, cpu::NchwView<float> y, cudaStream_t stream) {
  check_kernel(kernel);
  constexpr int64_t scale = plane_scale(L);
  DEBLUR_CHECK(x.n == y.n && scale * x.h == y.h && scale * x.w == y.w, name, ": input [", x.n, ", ",
               x.c, ", ", x.h, ", ", x.w, "] and output [", y.n, ", ", y.c, ", ", y.h, ", ", y.w,
               "] differ in batch or plane", scale == 1 ? "" : " (output: twice the input)");
  if (y.n == 0 || y.c == 0 || y.h * y.w == 0) return;
  const int64_t tiles_w = ceil_div(y.w, kTileW), o_tiles = ceil_div(y.c, kTileO);
  DEBLUR_CHECK(o_tiles <= 65535 && y.n <= 65535, name, ": ", y.c, " output channels and batch ",
               y.n, " exceed the grid");
  const dim3 grid(static_cast<unsigned>(ceil_div(y.h, kTileH) * tiles_w),
                  static_cast<unsigned>(o_tiles), static_cast<unsigned>(y.n));
  if constexpr (L == Load::Direct) {
    if (kernel == 3)
      launch(name, conv_kernel<3, Transposed, L>, grid, dim3(kThreads), 0, stream, x, weight, bias,
             y, tiles_w);
    else
      launch(name, conv_kernel<1, Transposed, L>, grid, dim3(kThreads), 0, stream, x, weight, bias,
             y, tiles_w);
  } else {  // the upsample-conv is 3x3 only (checked by its launchers)
    launch(name, conv_kernel<3, Transposed, L>, grid, dim3(kThreads), 0, stream, x, weight, bias, y,
           tiles_w);
  }
}

// Adds (+=) the parameter gradients of y = conv(x loaded by L, w) + b; see conv2d.cuh.
template <Load L = Load::Direct>
void weight_grads(const char* name, cpu::NchwView<const float> x, cpu::NchwView<const float> grad_y,
                  int kernel, float* grad_weight, float* grad_bias, void* workspace,
                  cudaStream_t stream) {
  check_kernel(kernel);
  constexpr int64_t scale = plane_scale(L);
  DEBLUR_CHECK(x.n == grad_y.n && scale * x.h == grad_y.h && scale * x.w == grad_y.w, name,
               ": x and grad_y differ in batch or plane");
  // An empty batch or plane adds nothing.
  if (x.n == 0 || x.c == 0 || grad_y.c == 0 || x.h * x.w == 0 || (!grad_weight && !grad_bias))
    return;
  const int64_t weights = grad_y.c * x.c * kernel * kernel;
  auto* partials = static_cast<float*>(workspace);
  const Tiling t = weight_grad_tiling(x, grad_y);
  DEBLUR_CHECK(t.c_tiles <= 65535 && t.o_tiles <= 65535, name, ": channels exceed the grid");
  const dim3 grid(static_cast<unsigned>(t.splits), static_cast<unsigned>(t.c_tiles),
                  static_cast<unsigned>(t.o_tiles));
  if constexpr (L == Load::Direct) {
    if (kernel == 3)
      launch("conv2d_weight_grad", weight_grad_kernel<3, L>, grid, dim3(kThreads), 0, stream, x,
             grad_y, t.tiles_w, t.tiles, partials);
    else
      launch("conv2d_weight_grad", weight_grad_kernel<1, L>, grid, dim3(kThreads), 0, stream, x,
             grad_y, t.tiles_w, t.tiles, partials);
  } else {
    launch("upsample_conv2d_weight_grad", weight_grad_kernel<3, L>, grid, dim3(kThreads), 0, stream,
           x, grad_y, t.tiles_w, t.tiles, partials);
  }
  launch("conv2d_weight_grad_finalize", weight_grad_finalize_kernel,
         dim3(static_cast<unsigned>(ceil_div(weights + grad_y.c, kFinalizeThreads))),
         dim3(kFinalizeThreads), 0, stream, partials, weights, grad_y.c, t.splits, grad_weight,
         grad_bias);
}

size_t weight_grad_workspace_bytes(cpu::NchwView<const float> x, cpu::NchwView<const float> grad_y,
                                   int kernel) {
  check_kernel(kernel);
  const Tiling t = weight_grad_tiling(x, grad_y);
  const int64_t per_split = grad_y.c * x.c * kernel * kernel + grad_y.c;
  return static_cast<size_t>(t.splits * per_split) * sizeof(float);
}

void check_upsample_kernel(int kernel) {
  DEBLUR_CHECK(kernel == 3, "cuda upsample_conv2d: kernel size ", kernel, " (supported: 3)");
}

}  // namespace

void conv2d_forward(cpu::NchwView<const float> x, const float* weight, const float* bias,
                    int kernel, cpu::NchwView<float> y, cudaStream_t stream) {
  convolve<false>("conv2d_forward", x, weight, bias, kernel, y, stream);
}

void conv2d_backward_input(cpu::NchwView<const float> grad_y, const float* weight, int kernel,
                           cpu::NchwView<float> grad_x, cudaStream_t stream) {
  convolve<true>("conv2d_backward_input", grad_y, weight, nullptr, kernel, grad_x, stream);
}

size_t conv2d_backward_params_workspace_bytes(cpu::NchwView<const float> x,
                                              cpu::NchwView<const float> grad_y, int kernel) {
  return weight_grad_workspace_bytes(x, grad_y, kernel);
}

void conv2d_backward_params(cpu::NchwView<const float> x, cpu::NchwView<const float> grad_y,
                            int kernel, float* grad_weight, float* grad_bias, void* workspace,
                            cudaStream_t stream) {
  weight_grads("conv2d_backward_params", x, grad_y, kernel, grad_weight, grad_bias, workspace,
               stream);
}

void upsample_conv2d_forward(cpu::NchwView<const float> x_low, const float* weight,
                             const float* bias, int kernel, cpu::NchwView<float> y,
                             cudaStream_t stream) {
  check_upsample_kernel(kernel);
  convolve<false, Load::Upsample2x>("upsample_conv2d_forward", x_low, weight, bias, kernel, y,
                                    stream);
}

size_t upsample_conv2d_backward_input_workspace_bytes(cpu::NchwView<const float> grad_y,
                                                      int64_t in_channels) {
  return static_cast<size_t>(grad_y.n * in_channels * grad_y.h * grad_y.w) * sizeof(float);
}

void upsample_conv2d_backward_input(cpu::NchwView<const float> grad_y, const float* weight,
                                    int kernel, cpu::NchwView<float> grad_x_low, void* workspace,
                                    cudaStream_t stream) {
  check_upsample_kernel(kernel);
  DEBLUR_CHECK(
      grad_y.n == grad_x_low.n && grad_y.h == 2 * grad_x_low.h && grad_y.w == 2 * grad_x_low.w,
      "upsample_conv2d_backward_input: grad_y [", grad_y.n, ", ", grad_y.c, ", ", grad_y.h, ", ",
      grad_y.w, "] is not twice grad_x_low [", grad_x_low.n, ", ", grad_x_low.c, ", ", grad_x_low.h,
      ", ", grad_x_low.w, "]");
  // The full-resolution input gradient, in the workspace, then the upsample's adjoint.
  const cpu::NchwView<float> grad_up = cpu::contiguous_view(
      static_cast<float*>(workspace), grad_y.n, grad_x_low.c, grad_y.h, grad_y.w);
  convolve<true>("upsample_conv2d_backward_input", grad_y, weight, nullptr, kernel, grad_up,
                 stream);
  upsample_bilinear2x_backward(grad_up, grad_x_low, stream);
}

size_t upsample_conv2d_backward_params_workspace_bytes(cpu::NchwView<const float> x_low,
                                                       cpu::NchwView<const float> grad_y,
                                                       int kernel) {
  check_upsample_kernel(kernel);
  return weight_grad_workspace_bytes(x_low, grad_y, kernel);
}

void upsample_conv2d_backward_params(cpu::NchwView<const float> x_low,
                                     cpu::NchwView<const float> grad_y, int kernel,
                                     float* grad_weight, float* grad_bias, void* workspace,
                                     cudaStream_t stream) {
  check_upsample_kernel(kernel);
  weight_grads<Load::Upsample2x>("upsample_conv2d_backward_params", x_low, grad_y, kernel,
                                 grad_weight, grad_bias, workspace, stream);
}

}  // namespace deblur::cuda
