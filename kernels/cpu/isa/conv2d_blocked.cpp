// Register-blocked float32 convolution microkernels (see kernels/cpu/conv2d_blocked.h), compiled
// by CMake once per instruction set: DEBLUR_ISA names it (and this file's namespace),
// DEBLUR_VEC_FLOATS is the floats per vector register (16 for AVX-512, 8 for AVX2, 4 for the
// target's baseline: SSE2 on x86-64, NEON on AArch64). Plain C++ with GCC/Clang vector types:
// the compiler turns the same source into each instruction set.
//
// Forward: a tile is kOutBlock output channels x R rows x NV vectors of pixels, all in
// registers. For each input channel and tap, the tile's R * NV input vectors are loaded once from
// the zero-padded input (shifted by the tap: no im2col buffer) and each is used by all kOutBlock
// output channels, whose weights are packed [block][c][tap][kOutBlock] so the broadcasts are
// consecutive. Narrow rows (the U-Net's deep levels) trade vectors per row for rows per tile, so
// a 16-pixel-wide level still fills the registers.
//
// Weight gradient: grad_w[o, c, u, v] = sum over pixels of grad_y[o] * x_padded[c] shifted by
// (u, v). For kGradBlock output channels and one input channel, the k*k tap sums are vector
// accumulators over pixels; each step loads kGradBlock grad_y vectors and k*k shifted input
// vectors, each held in a register for its kGradBlock FMAs. A job sums over whole planes (small
// planes: several samples at a time), so its lanes are reduced once; float partial sums of a few
// rows go into double lanes.
#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "kernels/cpu/conv2d_blocked.h"
#include "kernels/cpu/isa/vec.h"
#include "kernels/cpu/parallel.h"

namespace deblur::cpu::DEBLUR_ISA {
namespace {

// Register budget: AVX-512 has 32 vector registers (24 accumulators, 4 inputs, broadcasts
// folded into the FMAs); AVX2 and SSE2 have 16 (12 accumulators).
constexpr int kOutBlock = kVecFloats == 16 ? 6 : 4;
constexpr int kTileVecs = kVecFloats == 16 ? 4 : 3;  // R * NV, vectors per output channel
constexpr int kGradBlock = kVecFloats == 16 ? 3 : 1;

// Samples' channels surrounded by `pad` zeros, in rows of `stride` floats (zeros past the data
// to the end of the row, zero rows below up to `rows`, zero channels up to `channels`):
// every vector load of a tile, at any tap's shift, stays inside the buffer and reads a zero
// wherever PyTorch's padding is.
class PaddedPlanes {
 public:
  // Samples [n0, n0 + samples) of v, each channel's samples one after another (`rows` rows each).
  void fill(NchwView<const float> v, int64_t n0, int64_t samples, int64_t pad, int64_t stride,
            int64_t rows, int64_t channels) {
    stride_ = stride;
    rows_ = samples * rows;
    const size_t size = size_t(channels * rows_ * stride);
    if (size > capacity_) {
      data_ = std::make_unique_for_overwrite<float[]>(size);
      capacity_ = size;
    }
    parallel_for(channels * samples, [&](int64_t job) {
      const int64_t c = job / samples, s = job % samples;
      float* dst = data_.get() + (c * rows_ + s * rows) * stride;
      if (c >= v.c) {
        std::fill(dst, dst + rows * stride, 0.0f);
        return;
      }
      const float* src = v.channel(n0 + s, c);
      for (int64_t r = 0; r < rows; ++r, dst += stride) {
        const int64_t in_row = r - pad;
        if (in_row < 0 || in_row >= v.h) {
          std::fill(dst, dst + stride, 0.0f);
          continue;
        }
        std::fill(dst, dst + pad, 0.0f);
        std::copy(src + in_row * v.w, src + (in_row + 1) * v.w, dst + pad);
        std::fill(dst + pad + v.w, dst + stride, 0.0f);
      }
    });
  }

  const float* row(int64_t c, int64_t r) const { return data_.get() + (c * rows_ + r) * stride_; }

 private:
  std::unique_ptr<float[]> data_;
  size_t capacity_ = 0;
  int64_t stride_ = 0, rows_ = 0;
};

// --- forward

// [block][c][tap][kOutBlock], zero for output channels past out_c.
std::vector<float> pack_forward_weights(const float* weight, int64_t out_c, int64_t in_c,
                                        int64_t taps) {
  std::vector<float> packed(size_t(ceil_div(out_c, kOutBlock) * kOutBlock * in_c * taps), 0.0f);
  for (int64_t o = 0; o < out_c; ++o)
    for (int64_t c = 0; c < in_c; ++c)
      for (int64_t t = 0; t < taps; ++t)
        packed[size_t(((o / kOutBlock * in_c + c) * taps + t) * kOutBlock + o % kOutBlock)] =
            weight[(o * in_c + c) * taps + t];
  return packed;
}

struct ForwardTile {
  const PaddedPlanes* in;
  int64_t in_c, width, height;
  const float* weights;          // this output block's packed weights
  const float* bias;             // kOutBlock values
  float* out[kOutBlock];         // output channel planes; null past out_c
};

// Input channels per pass over a row of tiles: their rows stay in L1 while the tiles go by,
// instead of every tile streaming all in_c channels' rows (a plane apart each) on its own.
constexpr int64_t kChannelBlock = 16;

// Input channels [c0, c1) of output rows [row0, row0 + R) and columns [x0, x0 + NV * kVecFloats)
// of one output block. The sums over earlier channel blocks are in `partial` ([o][r][column]);
// after the last block the tile goes to the output, else back to `partial`.
template <int K, int R, int NV>
void forward_tile(const ForwardTile& t, int64_t row0, int64_t x0, int64_t c0, int64_t c1,
                  float* partial) {
  constexpr int kTileFloats = NV * kVecFloats;
  Vec acc[kOutBlock][R][NV];
  if (c0 == 0) {
#pragma GCC unroll 8
    for (int o = 0; o < kOutBlock; ++o)
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) acc[o][r][j] = Vec{} + t.bias[o];
  } else {
#pragma GCC unroll 8
    for (int o = 0; o < kOutBlock; ++o)
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j)
          acc[o][r][j] = load(partial + (o * R + r) * kTileFloats + j * kVecFloats);
  }

  const float* w = t.weights + c0 * K * K * kOutBlock;
  for (int64_t c = c0; c < c1; ++c) {
    const float* rows[R + K - 1];
#pragma GCC unroll 8
    for (int r = 0; r < R + K - 1; ++r) rows[r] = t.in->row(c, row0 + r) + x0;
#pragma GCC unroll 3
    for (int u = 0; u < K; ++u)
#pragma GCC unroll 3
      for (int v = 0; v < K; ++v, w += kOutBlock) {
        Vec x[R][NV];
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
          for (int j = 0; j < NV; ++j) x[r][j] = load(rows[r + u] + v + j * kVecFloats);
#pragma GCC unroll 8
        for (int o = 0; o < kOutBlock; ++o) {
          const float wo = w[o];
#pragma GCC unroll 4
          for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
            for (int j = 0; j < NV; ++j) acc[o][r][j] += wo * x[r][j];
        }
      }
  }

  if (c1 < t.in_c) {
#pragma GCC unroll 8
    for (int o = 0; o < kOutBlock; ++o)
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j)
          store(partial + (o * R + r) * kTileFloats + j * kVecFloats, acc[o][r][j]);
    return;
  }
  const int64_t valid = std::min<int64_t>(kTileFloats, t.width - x0);
  for (int o = 0; o < kOutBlock; ++o) {
    if (!t.out[o]) continue;
    for (int r = 0; r < R && row0 + r < t.height; ++r) {
      float* dst = t.out[o] + (row0 + r) * t.width + x0;
      if (valid == kTileFloats) {
        for (int j = 0; j < NV; ++j) store(dst + j * kVecFloats, acc[o][r][j]);
      } else {
        float staged[kTileFloats];
        for (int j = 0; j < NV; ++j) store(staged + j * kVecFloats, acc[o][r][j]);
        std::memcpy(dst, staged, size_t(valid) * sizeof(float));
      }
    }
  }
}

template <int K, int NV>
void forward_sample(const ForwardTile& block, int64_t row_groups, int64_t blocks,
                    const std::vector<float>& packed, const std::vector<float>& bias,
                    NchwView<float> y, int64_t n) {
  constexpr int R = kTileVecs / NV;
  constexpr int64_t kTilePartial = int64_t(kOutBlock) * R * NV * kVecFloats;
  const int64_t per_block = block.in_c * K * K * kOutBlock;
  const int64_t tiles = ceil_div(block.width, NV * kVecFloats);
  // Each job is R output rows of one output block. Whichever of the weights and the input is
  // larger is swept once: block-major (a block's weights stay in cache over all rows) for the
  // deep levels' wide weights, row-major (a row's inputs stay in cache over all blocks) for the
  // shallow levels' large planes.
  const bool block_major = block.in_c * K * K * blocks * kOutBlock >=
                           block.in_c * row_groups * R * block.width;
  parallel_for(blocks * row_groups, [&](int64_t job) {
    const int64_t b = block_major ? job / row_groups : job % blocks;
    const int64_t row0 = (block_major ? job % row_groups : job / blocks) * R;
    const int64_t o0 = b * kOutBlock;
    ForwardTile t = block;
    t.weights = packed.data() + b * per_block;
    t.bias = bias.data() + o0;
    for (int o = 0; o < kOutBlock; ++o) t.out[o] = o0 + o < y.c ? y.channel(n, o0 + o) : nullptr;
    thread_local std::vector<float> partial;
    if (t.in_c > kChannelBlock) partial.resize(size_t(tiles * kTilePartial));
    for (int64_t c0 = 0; c0 < t.in_c; c0 += kChannelBlock) {
      const int64_t c1 = std::min(t.in_c, c0 + kChannelBlock);
      for (int64_t tile = 0; tile < tiles; ++tile)
        forward_tile<K, R, NV>(t, row0, tile * NV * kVecFloats, c0, c1,
                               partial.data() + tile * kTilePartial);
    }
  });
}

template <int K>
void forward_k(NchwView<const float> x, const float* weight, const float* bias,
               NchwView<float> y) {
  const int64_t width = x.w, height = x.h, pad = K / 2;
  const int64_t blocks = ceil_div(y.c, kOutBlock);
  const std::vector<float> packed = pack_forward_weights(weight, y.c, x.c, K * K);
  std::vector<float> bias_padded(size_t(blocks * kOutBlock), 0.0f);
  if (bias) std::copy(bias, bias + y.c, bias_padded.begin());

  // Vectors per row: enough to cover the row, at most kTileVecs; the rest of the tile is rows.
  const int nv = int(std::min<int64_t>(kTileVecs, ceil_div(width, kVecFloats)));
  const int rows_per_tile = kTileVecs / nv;
  const int64_t row_groups = ceil_div(height, rows_per_tile);
  thread_local PaddedPlanes input_scratch;  // reached by the workers through `block.in`
  PaddedPlanes& in = input_scratch;
  ForwardTile block{&in, x.c, width, height, nullptr, nullptr, {}};
  for (int64_t n = 0; n < x.n; ++n) {
    in.fill(x, n, 1, pad, round_up(width, int64_t(nv) * kVecFloats) + 2 * pad,
            row_groups * rows_per_tile + 2 * pad, x.c);
    if (nv == 1)
      forward_sample<K, 1>(block, row_groups, blocks, packed, bias_padded, y, n);
    else if (nv == 2)
      forward_sample<K, 2>(block, row_groups, blocks, packed, bias_padded, y, n);
    else if (nv == 3 && kTileVecs > 3)
      forward_sample<K, 3>(block, row_groups, blocks, packed, bias_padded, y, n);
    else
      forward_sample<K, kTileVecs>(block, row_groups, blocks, packed, bias_padded, y, n);
  }
}

void forward(NchwView<const float> x, const float* weight, const float* bias, int kernel,
             NchwView<float> y) {
  if (kernel == 3)
    forward_k<3>(x, weight, bias, y);
  else
    forward_k<1>(x, weight, bias, y);
}

// --- weight gradient

// Float partial sums are flushed into double lanes after the whole rows that make up at most
// kFlushVectors vector steps (after every row, where a row is longer): the
// weight gradient is a sum of 10^5 to 10^6 products that nearly cancel (GroupNorm's backward
// leaves grad_y with zero mean per group), so long float sums would lose digits that matter.
constexpr int64_t kFlushVectors = 64;
typedef double DVec __attribute__((vector_size(kVecFloats * sizeof(double))));

// The padded planes a weight-gradient job sums over: `samples` samples stacked, grad_y with
// `height` rows per sample, x with height + k - 1.
struct GradPlanes {
  int64_t samples, height, width;
};

template <int K>
void weight_grad_job(const PaddedPlanes& gy, const PaddedPlanes& xp, const GradPlanes& planes,
                     int64_t o0, int64_t c0, int64_t c1, int64_t in_c, double* sums) {
  constexpr int taps = K * K;
  const int64_t vectors_per_row = ceil_div(planes.width, kVecFloats);
  const int64_t rows_per_flush = std::max<int64_t>(1, kFlushVectors / vectors_per_row);
  const int64_t x_rows_per_sample = planes.height + K - 1;
  for (int64_t c = c0; c < c1; ++c) {
    DVec totals[kGradBlock][taps] = {};
    for (int64_t s = 0; s < planes.samples; ++s)
      for (int64_t i0 = 0; i0 < planes.height; i0 += rows_per_flush) {
        Vec acc[kGradBlock][taps];
#pragma GCC unroll 3
        for (int o = 0; o < kGradBlock; ++o)
#pragma GCC unroll 9
          for (int t = 0; t < taps; ++t) acc[o][t] = Vec{};
        for (int64_t i = i0; i < std::min(planes.height, i0 + rows_per_flush); ++i) {
          const float* g_rows[kGradBlock];
          for (int o = 0; o < kGradBlock; ++o) g_rows[o] = gy.row(o0 + o, s * planes.height + i);
          const float* x_rows[K];
          for (int u = 0; u < K; ++u) x_rows[u] = xp.row(c, s * x_rows_per_sample + i + u);
          for (int64_t x0 = 0; x0 < planes.width; x0 += kVecFloats) {
            Vec g[kGradBlock];
#pragma GCC unroll 3
            for (int o = 0; o < kGradBlock; ++o) g[o] = load(g_rows[o] + x0);
#pragma GCC unroll 3
            for (int u = 0; u < K; ++u)
#pragma GCC unroll 3
              for (int v = 0; v < K; ++v) {
                // Loaded once for the kGradBlock FMAs (folded into each, it would be loaded
                // kGradBlock times, mostly across cache lines: 1.3-1.6x slower on AVX-512).
                Vec xv = load(x_rows[u] + x0 + v);
                if constexpr (kGradBlock > 1) xv = in_register(xv);
#pragma GCC unroll 3
                for (int o = 0; o < kGradBlock; ++o) acc[o][u * K + v] += g[o] * xv;
              }
          }
        }
        for (int o = 0; o < kGradBlock; ++o)
          for (int t = 0; t < taps; ++t) totals[o][t] += __builtin_convertvector(acc[o][t], DVec);
      }
    for (int o = 0; o < kGradBlock; ++o)
      for (int t = 0; t < taps; ++t) {
        double lanes = 0;
        for (int l = 0; l < kVecFloats; ++l) lanes += totals[o][t][l];
        sums[((o0 + o) * in_c + c) * taps + t] += lanes;
      }
  }
}

template <int K>
void backward_weight_k(NchwView<const float> x, NchwView<const float> grad_y,
                       float* grad_weight) {
  constexpr int taps = K * K, pad = K / 2;
  const int64_t in_c = x.c, out_c = grad_y.c, width = x.w, height = x.h;
  const int64_t blocks = ceil_div(out_c, kGradBlock);
  const int64_t stride = round_up(width, kVecFloats);
  // Each job sums over whole planes, so its reduction of lanes to sums (as costly as the
  // products at 16x16) is paid once per plane, not once per band of rows: a job's rows stream
  // from L2 or L3 while its accumulators stay in registers (whole planes ran the 256x256 levels
  // 0-27% faster than 512 KB bands). Up to kStackBytes of samples' padded planes go through
  // each job at once (the deep levels' samples, 4 MB or less, stack), so the reduction is paid
  // once for them all.
  if (x.n == 0 || in_c == 0 || out_c == 0 || height == 0 || width == 0) return;  // adds nothing
  constexpr int64_t kStackBytes = int64_t(8) << 20;
  const int64_t sample_bytes =
      (in_c * (height + 2 * pad) + blocks * kGradBlock * height) * (stride + 2 * pad) * 4;
  const int64_t samples = std::clamp<int64_t>(kStackBytes / sample_bytes, 1, x.n);
  // Jobs of enough input channels to outweigh their scheduling: ~32K multiply-adds per lane.
  const int64_t per_job =
      std::clamp<int64_t>((int64_t(32) << 10) / (height * stride * samples), 1, in_c);
  const int64_t groups = ceil_div(in_c, per_job);
  // The padded sums of kGradBlock-rounded output channels (the extra ones are zero gradients).
  std::vector<double> sums(size_t(blocks * kGradBlock * in_c * taps), 0.0);
  // References, so the worker threads' lambda reaches this thread's buffers, not their own.
  thread_local PaddedPlanes gy_scratch, x_scratch;
  PaddedPlanes &gy = gy_scratch, &xp = x_scratch;
  for (int64_t n = 0; n < x.n; n += samples) {
    const int64_t count = std::min(samples, x.n - n);
    gy.fill(grad_y, n, count, 0, stride, height, blocks * kGradBlock);
    xp.fill(x, n, count, pad, stride + 2 * pad, height + 2 * pad, in_c);
    const GradPlanes planes{count, height, width};
    parallel_for(blocks * groups, [&](int64_t job) {
      const int64_t b = job / groups, c0 = job % groups * per_job;
      weight_grad_job<K>(gy, xp, planes, b * kGradBlock, c0, std::min(in_c, c0 + per_job), in_c,
                         sums.data());
    });
  }
  for (int64_t i = 0; i < out_c * in_c * taps; ++i) grad_weight[i] += float(sums[size_t(i)]);
}

void backward_weight(NchwView<const float> x, NchwView<const float> grad_y, int kernel,
                     float* grad_weight) {
  if (kernel == 3)
    backward_weight_k<3>(x, grad_y, grad_weight);
  else
    backward_weight_k<1>(x, grad_y, grad_weight);
}

}  // namespace

void winograd_forward(NchwView<const float> x, const float* weight, const float* bias,
                      NchwView<float> y, bool upsample, bool cache_weights);  // conv2d_winograd.cpp

#define DEBLUR_STRINGIFY_(name) #name
#define DEBLUR_STRINGIFY(name) DEBLUR_STRINGIFY_(name)
extern const Conv2dIsa conv2d_isa;
const Conv2dIsa conv2d_isa{DEBLUR_STRINGIFY(DEBLUR_ISA), forward, backward_weight,
                           winograd_forward};

}  // namespace deblur::cpu::DEBLUR_ISA
