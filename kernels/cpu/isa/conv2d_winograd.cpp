// Winograd F(4x4, 3x3) float32 forward convolution (Lavin and Gray 2016), compiled once per
// instruction set as conv2d_blocked.cpp is: 36 multiplications per 4x4 output tile and channel
// pair instead of 144, at the cost of three transforms and ~10x the rounding error of the direct
// sum (still ~1e-5 relative for the U-Net's values). Same semantics as conv2d_forward (3x3,
// stride 1, zero padding 1); conv2d_forward_inference uses it where no gradient follows.
//
// With d a 6x6 input patch, g a 3x3 filter and (B^T, G, A^T) the F(4x4, 3x3) matrices for the
// points 0, +-1, +-2 and infinity, the 4x4 outputs are A^T [(G g G^T) . (B^T d B)] A.
//
// Per slab of tile rows (a thread's own where there are enough slabs to go round, else shared
// by the threads step by step):
//  1. the input, zero-padded, moves to channels-last (HWC, channels rounded up to a vector),
//     in blocks of a vector's width of channels and columns transposed in registers;
//  2. input transform, vectorised over channels: V[p][tile][c] for the 36 positions p;
//  3. 36 GEMMs, vectorised over output channels: M[p][tile][o] = sum_c V[p][tile][c] U[p][c][o],
//     U = G g G^T packed as [p][c][o], kept for as long as the weights are unchanged;
//  4. output transform A^T M A plus the bias, written back to NCHW through the same transpose.
#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "kernels/cpu/conv2d_blocked.h"
#include "kernels/cpu/isa/vec.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/resample.h"

namespace deblur::cpu::DEBLUR_ISA {
namespace {

constexpr int kPoints = 36;  // 6x6 transform positions
// GEMM register tile: kAccumulators = rows (tiles) x vectors (output channels); AVX-512 has 32
// vector registers, the others 16.
constexpr int kAccumulators = kVecFloats == 16 ? 24 : 12;
// Shared bands hold V and M for this many bytes or less, so that they stay in L2 from transform
// to GEMM to transform, while the transformed weights U are read once per band from L3. Where U
// is too large to stay in L3 beside everything else (512 input channels), bands are larger, so
// that U is read fewer times. Measured on a Zen 4 VM (1 MiB L2 per core, 32 MiB L3): 1.5 MiB
// bands took 128->64 channels at 256x256 from 30 to 27 ms and 256->256 at 64x64 from 17 to 10
// ms against 8 MiB ones, while 512->256 at 64x64 went from 24 to 29-31 ms.
constexpr int64_t kBandBytes = int64_t(3) << 19;
constexpr int64_t kLargeWeightBytes = int64_t(12) << 20;
constexpr int64_t kLargeWeightBandBytes = int64_t(16) << 20;
// A slab that one thread takes through all four steps holds V and M for this many bytes (at
// least one tile row), or for a quarter of U's bytes where that is more: each slab reads all of
// U, so slabs grow with it (512->256 channels at 64x64: 21 ms with slabs of 4 tile rows, 29 ms
// with slabs of one). Measured on the Zen 4 VM, 2 threads: slabs of 4 MiB at the full-resolution
// layers cost 1.3-1.5x those of 1 MiB, 256 KiB ones within 5%.
constexpr int64_t kPrivateSlabBytes = int64_t(1) << 20;
constexpr int64_t kPrivateSlabWeightShare = 4;

// r[0 .. kVecFloats) transposed in registers (r[i][k] <-> r[k][i]): log2(kVecFloats) stages, each
// swapping the off-diagonal h x h blocks of every 2h x 2h block with two-input shuffles.
typedef int32_t IVec __attribute__((vector_size(kVecFloats * sizeof(int32_t))));

template <int h>
inline void swap_blocks(Vec r[kVecFloats]) {
  IVec low, high;  // lanes for the first and second row of each pair (constant after inlining)
  for (int k = 0; k < kVecFloats; ++k) {
    low[k] = (k & h) == 0 ? k : kVecFloats + k - h;
    high[k] = (k & h) == 0 ? k + h : kVecFloats + k;
  }
  for (int i = 0; i < kVecFloats; ++i)
    if ((i & h) == 0) {
      const Vec a = r[i], b = r[i + h];
      r[i] = __builtin_shuffle(a, b, low);
      r[i + h] = __builtin_shuffle(a, b, high);
    }
}

inline void transpose(Vec r[kVecFloats]) {
  if constexpr (kVecFloats >= 16) swap_blocks<8>(r);
  if constexpr (kVecFloats >= 8) swap_blocks<4>(r);
  if constexpr (kVecFloats >= 4) swap_blocks<2>(r);
  if constexpr (kVecFloats >= 2) swap_blocks<1>(r);
}

// B^T applied to six values (one row or column of a patch).
inline void input_transform_1d(const Vec d[6], Vec r[6]) {
  r[0] = 4.0f * d[0] - 5.0f * d[2] + d[4];
  r[1] = -4.0f * d[1] - 4.0f * d[2] + d[3] + d[4];
  r[2] = 4.0f * d[1] - 4.0f * d[2] - d[3] + d[4];
  r[3] = -2.0f * d[1] - d[2] + 2.0f * d[3] + d[4];
  r[4] = 2.0f * d[1] - d[2] - 2.0f * d[3] + d[4];
  r[5] = 4.0f * d[1] - 5.0f * d[3] + d[5];
}

// A^T applied to six values.
inline void output_transform_1d(const Vec m[6], Vec r[4]) {
  const Vec a = m[1] + m[2], b = m[1] - m[2], c = m[3] + m[4], e = m[3] - m[4];
  r[0] = m[0] + a + c;
  r[1] = b + 2.0f * e;
  r[2] = a + 4.0f * c;
  r[3] = b + 8.0f * e + m[5];
}

// U[p][c][o] = (G g G^T)[p] for every filter, in double then rounded; zero where c >= in_c or
// o >= out_c. A job per input channel, the output channels innermost and contiguous, so the
// compiler vectorises the products (the filter-at-a-time loop took ~10 ms for 256 x 256 filters).
void transform_weights(const float* weight, int64_t in_c, int64_t out_c, int64_t cp, int64_t op,
                       float* u) {
  static const double G[6][3] = {{1.0 / 4, 0, 0},
                                 {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                 {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                 {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                 {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                 {0, 0, 1}};
  parallel_for(cp, [&](int64_t c) {
    if (c >= in_c) {
      for (int p = 0; p < kPoints; ++p) std::fill_n(u + (p * cp + c) * op, op, 0.0f);
      return;
    }
    thread_local std::vector<double> taps, gg;  // taps[t][o] = g[o][c][t]; gg[k][j][o] = (G g)
    taps.resize(size_t(9 * out_c));
    gg.resize(size_t(18 * out_c));
    for (int64_t o = 0; o < out_c; ++o)
      for (int t = 0; t < 9; ++t) taps[size_t(t * out_c + o)] = weight[(o * in_c + c) * 9 + t];
    for (int k = 0; k < 6; ++k)
      for (int j = 0; j < 3; ++j) {
        const double* g0 = taps.data() + j * out_c;
        const double* g1 = taps.data() + (3 + j) * out_c;
        const double* g2 = taps.data() + (6 + j) * out_c;
        double* out = gg.data() + (k * 3 + j) * out_c;
        for (int64_t o = 0; o < out_c; ++o)
          out[o] = G[k][0] * g0[o] + G[k][1] * g1[o] + G[k][2] * g2[o];
      }
    for (int k = 0; k < 6; ++k)
      for (int l = 0; l < 6; ++l) {
        const double* a = gg.data() + k * 3 * out_c;
        float* row = u + ((k * 6 + l) * cp + c) * op;
        for (int64_t o = 0; o < out_c; ++o)
          row[o] = float(a[o] * G[l][0] + a[out_c + o] * G[l][1] + a[2 * out_c + o] * G[l][2]);
        std::fill(row + out_c, row + op, 0.0f);
      }
  });
}

// Every float of the weights, hashed (FNV-1a over 64-bit words): transformed weights are reused
// while the weights at an address are unchanged, and recomputed after any change (an optimizer
// step between two validations, a model loaded at a freed model's address).
uint64_t fingerprint(const float* data, int64_t count) {
  uint64_t hash = 1469598103934665603ull;
  int64_t i = 0;
  for (; i + 2 <= count; i += 2) {
    uint64_t word;
    std::memcpy(&word, data + i, sizeof word);
    hash = (hash ^ word) * 1099511628211ull;
  }
  if (i < count) {
    uint32_t last;
    std::memcpy(&last, data + i, sizeof last);
    hash = (hash ^ last) * 1099511628211ull;
  }
  return hash;
}

// The transformed weights of the convolutions seen last (a model's are all kept), by address.
std::shared_ptr<const std::vector<float>> cached_transform(const float* weight, int64_t in_c,
                                                           int64_t out_c, int64_t cp,
                                                           int64_t op) {
  struct Entry {
    int64_t in_c, out_c, cp, op;
    uint64_t hash;
    std::shared_ptr<const std::vector<float>> u;
  };
  static std::mutex mutex;
  static std::map<const float*, Entry> cache;
  constexpr size_t kMaxEntries = 64;  // DeblurUNet has 18 3x3 convolutions
  const uint64_t hash = fingerprint(weight, out_c * in_c * 9);
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = cache.find(weight);
    if (it != cache.end() && it->second.in_c == in_c && it->second.out_c == out_c &&
        it->second.cp == cp && it->second.op == op && it->second.hash == hash)
      return it->second.u;
  }
  auto transformed = std::make_shared<std::vector<float>>(size_t(kPoints * cp * op));
  transform_weights(weight, in_c, out_c, cp, op, transformed->data());
  std::shared_ptr<const std::vector<float>> u = std::move(transformed);
  std::lock_guard<std::mutex> lock(mutex);
  if (cache.size() >= kMaxEntries) cache.clear();
  cache[weight] = Entry{in_c, out_c, cp, op, hash, u};
  return u;
}

struct Geometry {
  int64_t in_c, out_c, cp, op, height, width;
  int64_t tiles_x, tiles_y;
  int64_t padded_w;  // columns of the channels-last input: 4 * tiles_x + 2
};

// One slab of tile rows [ty0, ty1) on its way through the four steps: the channels-last input
// rows it reads, V and M (tile_stride rows per position, a whole number of GEMM row groups).
struct Slab {
  int64_t n, ty0, ty1, tiles, tile_stride;
  float *band, *v, *m;
};

// Row r of the slab's band: input row 4 * ty0 + r - 1 of the zero-padded input, channels-last.
// With `upsample`, the input is x's bilinear x2 upsample, the row made as it is packed.
void pack_row(NchwView<const float> x, const Geometry& g, const Slab& s, bool upsample,
              int64_t r) {
  float* dst = s.band + r * g.padded_w * g.cp;
  const int64_t in_row = 4 * s.ty0 + r - 1;
  if (in_row < 0 || in_row >= g.height) {
    std::fill(dst, dst + g.padded_w * g.cp, 0.0f);
    return;
  }
  std::fill(dst, dst + g.cp, 0.0f);  // the left padding column
  const float* src;  // the row's first channel; channel c at src + c * plane
  int64_t plane;
  if (upsample) {
    thread_local std::vector<float> up;
    up.resize(size_t(g.in_c * g.width));
    // resample.cpp's own row function, not a copy: compiled once, so the values are the
    // upsample kernel's bit for bit (a copy here would be compiled with FMA contraction).
    for (int64_t c = 0; c < g.in_c; ++c)
      upsample_bilinear2x_row(x.channel(s.n, c), x.h, x.w, in_row, up.data() + c * g.width);
    src = up.data();
    plane = g.width;
  } else {
    src = x.channel(s.n, 0) + in_row * g.width;
    plane = x.h * x.w;
  }
  // Blocks of kVecFloats channels x kVecFloats columns, transposed in registers; a block of
  // channels at a time along the row, so that kVecFloats input rows stream at once (all of the
  // channels at once is too many streams for the prefetchers: 0.8x the time at 128 channels).
  const int64_t whole = g.width / kVecFloats * kVecFloats;
  for (int64_t c0 = 0; c0 < g.cp; c0 += kVecFloats)
    for (int64_t q0 = 0; q0 < whole; q0 += kVecFloats) {
      Vec block[kVecFloats];
      for (int i = 0; i < kVecFloats; ++i)
        block[i] = c0 + i < g.in_c ? load(src + (c0 + i) * plane + q0) : Vec{};
      transpose(block);
      for (int k = 0; k < kVecFloats; ++k) store(dst + (q0 + k + 1) * g.cp + c0, block[k]);
    }
  for (int64_t q = whole; q < g.width; ++q) {  // the last columns, one at a time
    float* column = dst + (q + 1) * g.cp;
    for (int64_t c = 0; c < g.in_c; ++c) column[c] = src[c * plane + q];
    std::fill(column + g.in_c, column + g.cp, 0.0f);
  }
  std::fill(dst + (g.width + 1) * g.cp, dst + g.padded_w * g.cp, 0.0f);
}

int64_t band_rows(const Slab& s) {
  return 4 * (s.ty1 - s.ty0) + 2;
}

// V[p][t] = (B^T d B)[p] for the slab's tile t, vectorised over channels.
void input_transform(const Geometry& g, const Slab& s, int64_t t) {
  const int64_t ty = t / g.tiles_x, tx = t % g.tiles_x;
  const float* base = s.band + (4 * ty * g.padded_w + 4 * tx) * g.cp;
  for (int64_t c0 = 0; c0 < g.cp; c0 += kVecFloats) {
    Vec rows[6][6];
    for (int i = 0; i < 6; ++i) {
      Vec d[6];
      for (int j = 0; j < 6; ++j) d[j] = load(base + (i * g.padded_w + j) * g.cp + c0);
      input_transform_1d(d, rows[i]);  // rows[i][l] = (d B)[i][l]
    }
    for (int l = 0; l < 6; ++l) {
      const Vec col[6] = {rows[0][l], rows[1][l], rows[2][l], rows[3][l], rows[4][l], rows[5][l]};
      Vec r[6];
      input_transform_1d(col, r);  // r[k] = (B^T d B)[k][l]
      for (int k = 0; k < 6; ++k) store(s.v + ((k * 6 + l) * s.tile_stride + t) * g.cp + c0, r[k]);
    }
  }
}

// V's rows past the slab's tiles read zero: the GEMM's last row group reads them.
void zero_v_tail(const Geometry& g, const Slab& s) {
  for (int p = 0; p < kPoints; ++p)
    std::fill(s.v + (p * s.tile_stride + s.tiles) * g.cp, s.v + (p + 1) * s.tile_stride * g.cp,
              0.0f);
}

// M[t][o0 .. o0 + OV vectors) for RT consecutive tiles: sum over c of V[t][c] U[c][o].
template <int RT, int OV>
void gemm_tile(const float* v, const float* u, float* m, int64_t cp, int64_t op) {
  Vec acc[RT][OV] = {};
  for (int64_t c = 0; c < cp; ++c) {
    Vec w[OV];
#pragma GCC unroll 4
    for (int j = 0; j < OV; ++j) w[j] = load(u + c * op + j * kVecFloats);
#pragma GCC unroll 24
    for (int r = 0; r < RT; ++r) {
      const float vr = v[r * cp + c];
#pragma GCC unroll 4
      for (int j = 0; j < OV; ++j) acc[r][j] += vr * w[j];
    }
  }
  for (int r = 0; r < RT; ++r)
    for (int j = 0; j < OV; ++j) store(m + r * op + j * kVecFloats, acc[r][j]);
}

// The GEMM of position p and output-channel chunk `chunk` (OV vectors) over every tile of the
// slab: U[p]'s chunk stays in cache while the row groups pass.
template <int OV>
void gemm(const float* u, const Geometry& g, const Slab& s, int64_t p, int64_t chunk) {
  constexpr int RT = kAccumulators / OV;
  const int64_t o0 = chunk * OV * kVecFloats;
  const float* vp = s.v + p * s.tile_stride * g.cp;
  const float* up = u + p * g.cp * g.op + o0;
  float* mp = s.m + p * s.tile_stride * g.op + o0;
  for (int64_t rg = 0; rg < s.tile_stride / RT; ++rg)
    gemm_tile<RT, OV>(vp + rg * RT * g.cp, up, mp + rg * RT * g.op, g.cp, g.op);
}

void gemm(int ov, const float* u, const Geometry& g, const Slab& s, int64_t p, int64_t chunk) {
  switch (ov) {
    case 1: gemm<1>(u, g, s, p, chunk); break;
    case 2: gemm<2>(u, g, s, p, chunk); break;
    case 3: gemm<3>(u, g, s, p, chunk); break;
    default: gemm<4>(u, g, s, p, chunk); break;
  }
}

// A^T M A plus the bias for the slab's tile t, written to y's NCHW planes.
void output_transform(const float* bias, const Geometry& g, const Slab& s, NchwView<float> y,
                      int64_t t) {
  const int64_t ty = s.ty0 + t / g.tiles_x, tx = t % g.tiles_x;
  const int64_t n = s.n, tile_stride = s.tile_stride;
  const float* m = s.m;
  const int64_t rows = std::min<int64_t>(4, g.height - 4 * ty);
  const int64_t cols = std::min<int64_t>(4, g.width - 4 * tx);
  for (int64_t o0 = 0; o0 < g.out_c; o0 += kVecFloats) {
    Vec half[6][4];  // (A^T M)[.][l] per column l, then rows
    for (int l = 0; l < 6; ++l) {
      Vec col[6];
      for (int k = 0; k < 6; ++k) col[k] = load(m + ((k * 6 + l) * tile_stride + t) * g.op + o0);
      Vec r[4];
      output_transform_1d(col, r);
      for (int i = 0; i < 4; ++i) half[l][i] = r[i];
    }
    Vec out[16];  // out[4 * i + j]: the output at tile row i, column j, over the channels
    for (int i = 0; i < 4; ++i) {
      const Vec row[6] = {half[0][i], half[1][i], half[2][i], half[3][i], half[4][i], half[5][i]};
      output_transform_1d(row, out + 4 * i);
    }
    const int64_t outs = std::min<int64_t>(kVecFloats, g.out_c - o0);
    if (rows == 4 && cols == 4 && outs == kVecFloats) {
      // A whole tile: blocks of kVecFloats positions transposed to one vector per channel,
      // its positions written a tile row (4 floats) at a time.
      static_assert(16 % kVecFloats == 0, "a tile's 16 outputs in whole vectors");
      constexpr int kBlocks = 16 / kVecFloats;
      for (int block = 0; block < kBlocks; ++block) {
        Vec lanes[kVecFloats];
        for (int k = 0; k < kVecFloats; ++k) lanes[k] = out[block * kVecFloats + k];
        transpose(lanes);
        for (int lane = 0; lane < kVecFloats; ++lane) {
          const Vec values = lanes[lane] + (bias ? bias[o0 + lane] : 0.0f);
          float* plane = y.channel(n, o0 + lane) + 4 * ty * g.width + 4 * tx;
          for (int p = 0; p < kVecFloats; p += 4)
            std::memcpy(plane + (block * kVecFloats + p) / 4 * g.width,
                        reinterpret_cast<const float*>(&values) + p, 4 * sizeof(float));
        }
      }
      continue;
    }
    float staged[4][4][kVecFloats];
    for (int k = 0; k < 16; ++k) store(staged[k / 4][k % 4], out[k]);
    for (int64_t lane = 0; lane < outs; ++lane) {
      const float b = bias ? bias[o0 + lane] : 0.0f;
      float* plane = y.channel(n, o0 + lane) + 4 * ty * g.width + 4 * tx;
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j) plane[i * g.width + j] = staged[i][j][lane] + b;
    }
  }
}

// fn(t) for every tile t < tiles, in jobs of kTileRun consecutive tiles: a job's outputs fill
// whole cache lines of NCHW rows (4 tiles are 16 floats), so no line is written by two threads.
constexpr int64_t kTileRun = 8;
template <class Fn>
void for_each_tile_run(int64_t tiles, Fn&& fn) {
  parallel_for(ceil_div(tiles, kTileRun), [&](int64_t job) {
    for (int64_t t = job * kTileRun; t < std::min(tiles, (job + 1) * kTileRun); ++t) fn(t);
  });
}

}  // namespace

void winograd_forward(NchwView<const float> x, const float* weight, const float* bias,
                      NchwView<float> y, bool upsample, bool cache_weights) {
  Geometry g{};
  g.in_c = x.c;
  g.out_c = y.c;
  g.cp = round_up(x.c, kVecFloats);
  g.height = y.h;  // x's, or twice x's when upsampling
  g.width = y.w;
  g.tiles_x = ceil_div(g.width, 4);
  g.tiles_y = ceil_div(g.height, 4);
  g.padded_w = 4 * g.tiles_x + 2;
  // Output channels in whole GEMM chunks of OV vectors.
  const int64_t out_vectors = ceil_div(y.c, kVecFloats);
  const int ov = int(std::min<int64_t>(out_vectors, 4));
  g.op = round_up(y.c, int64_t(ov) * kVecFloats);
  const int64_t chunks = g.op / (ov * kVecFloats);
  // Uncached, the transform goes into this thread's buffer, kept from call to call (a fresh one
  // of up to 38 MB would page-fault in on every training step).
  std::shared_ptr<const std::vector<float>> u_cached;
  thread_local std::vector<float> u_transient;
  const float* u;
  if (cache_weights) {
    u_cached = cached_transform(weight, x.c, y.c, g.cp, g.op);
    u = u_cached->data();
  } else {
    u_transient.resize(size_t(kPoints * g.cp * g.op));
    transform_weights(weight, x.c, y.c, g.cp, g.op, u_transient.data());
    u = u_transient.data();
  }
  const int64_t u_bytes = kPoints * g.cp * g.op * int64_t(sizeof(float));

  const int rt = kAccumulators / ov;
  const int64_t row_bytes = kPoints * g.tiles_x * std::max(g.cp, g.op) * int64_t(sizeof(float));
  const auto rows_for = [&](int64_t bytes) {
    return std::clamp<int64_t>(bytes / row_bytes, 1, g.tiles_y);
  };
  // Scratch kept from call to call (thread_local): fresh buffers would page-fault on first touch.
  const auto scratch = [&](int64_t n, int64_t ty0, int64_t rows) {
    thread_local std::vector<float> band, v, m;
    const int64_t tile_stride = round_up(rows * g.tiles_x, rt);
    band.resize(size_t((4 * rows + 2) * g.padded_w * g.cp));
    v.resize(size_t(kPoints * tile_stride * g.cp));
    m.resize(size_t(kPoints * tile_stride * g.op));
    const int64_t ty1 = std::min(g.tiles_y, ty0 + rows);
    return Slab{n, ty0, ty1, (ty1 - ty0) * g.tiles_x, tile_stride, band.data(), v.data(),
                m.data()};
  };

  const int64_t private_rows =
      rows_for(std::max(kPrivateSlabBytes, u_bytes / kPrivateSlabWeightShare));
  const int64_t slabs_per_image = ceil_div(g.tiles_y, private_rows);
  if (x.n * slabs_per_image >= 2 * num_threads()) {
    // Each job takes a slab through all four steps on one thread, so that its band, V and M
    // never move between cores, and a layer opens one parallel region instead of four a band.
    // Measured against the shared bands below (same process, interleaved, 2 threads on the Zen 4
    // VM): 0.52-0.56x the time at 512x512 (32 and 64 channels in), 0.65x at 128->64 channels,
    // 0.61x at 512->256; the shared bands' time also swings up to 2.7x between runs minutes
    // apart where the slabs' stays put (cores that pass lines back and forth; on a VM, maybe on
    // different core complexes).
    parallel_for(x.n * slabs_per_image, [&](int64_t job) {
      const Slab s =
          scratch(job / slabs_per_image, job % slabs_per_image * private_rows, private_rows);
      for (int64_t r = 0; r < band_rows(s); ++r) pack_row(x, g, s, upsample, r);
      for (int64_t t = 0; t < s.tiles; ++t) input_transform(g, s, t);
      zero_v_tail(g, s);
      for (int64_t p = 0; p < kPoints; ++p)
        for (int64_t chunk = 0; chunk < chunks; ++chunk) gemm(ov, u, g, s, p, chunk);
      for (int64_t t = 0; t < s.tiles; ++t) output_transform(bias, g, s, y, t);
    });
    return;
  }
  // Too few slabs to share out (the bottleneck's 32x32, whose U is 38 MB): the threads share
  // each band, every step split over them, and U is read once a band (the 36 x chunks GEMMs
  // are the jobs).
  const int64_t rows = rows_for(u_bytes > kLargeWeightBytes ? kLargeWeightBandBytes : kBandBytes);
  for (int64_t n = 0; n < x.n; ++n)
    for (int64_t ty0 = 0; ty0 < g.tiles_y; ty0 += rows) {
      const Slab s = scratch(n, ty0, rows);
      parallel_for(band_rows(s), [&](int64_t r) { pack_row(x, g, s, upsample, r); });
      for_each_tile_run(s.tiles, [&](int64_t t) { input_transform(g, s, t); });
      zero_v_tail(g, s);
      parallel_for(kPoints * chunks, [&](int64_t job) {
        gemm(ov, u, g, s, job / chunks, job % chunks);
      });
      for_each_tile_run(s.tiles, [&](int64_t t) { output_transform(bias, g, s, y, t); });
    }
}

}  // namespace deblur::cpu::DEBLUR_ISA
