// SSIM and MS-SSIM CUDA kernels (semantics in ssim.cuh: pytorch_msssim's, as kernels/cpu/ssim.h;
// the backward's derivation is at the top of kernels/cpu/ssim.cpp).
//
// One scale's forward is two launches:
//   1. stats: grid (output tiles along W, along H, n*c), 32 x 8 threads, one valid-output pixel
//      each. The block stages its 42 x 18 input tile (tile + 10-pixel halo) of X and Y in shared
//      memory, filters it along H into the five column sums (X, Y, X^2, Y^2, XY) of 8 x 42, then
//      along W at its own pixel, and forms ssim_map and cs_map there. The block's sums of both
//      (double, a fixed shared-memory tree) go to the workspace, one pair per tile.
//   2. finalize: one block per (n, c) adds its tiles' pairs in double (each thread a fixed strided
//      subset, then a fixed tree) and writes the means.
// The arithmetic per pixel is the CPU twin's, in its order (taps 0..10, products formed before
// filtering); only the order of the double sums differs.
// One scale's backward is two launches after recomputing the forward statistics:
//   1. maps: the stats kernel's tile, then the four per-pixel derivatives (wrt mu_x, mu_y,
//      E[X^2] = E[Y^2], E[XY]) of each valid output pixel into a workspace map.
//   2. adjoint: the transpose of the valid filter as a gather: input pixel (r, c) collects
//      g[a] g[b] map(r - a, c - b) over the maps' valid range. A block stages the 4 maps over its
//      32 x 8 input tile plus the 10-pixel halo above and to the left (zeros outside the maps),
//      filters along W into shared memory, then along H at its own pixel, and writes
//      dX = G^T g_mux + 2 X G^T g_xx + Y G^T g_xy (dY alike), assigning or adding.
// MS-SSIM keeps everything on the device: the pyramid and its gradient live in the workspace,
// one thread per (n, c) combines the five scales' terms (and, backward, their gradients), and one
// block adds the per-(n, c) values in a fixed order. No host synchronisation.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/common/gaussian.h"
#include "kernels/cpu/ssim.h"
#include "kernels/cuda/ssim.cuh"

namespace deblur::cuda {

namespace {

constexpr int kTaps = common::kGaussianTaps;
constexpr int kHalo = kTaps - 1;
constexpr int kTileW = 32, kTileH = 8;     // one thread per pixel of the tile
constexpr int kThreads = kTileW * kTileH;  // a power of two (the tree reductions halve it)
constexpr int kInW = kTileW + kHalo, kInH = kTileH + kHalo;
constexpr int kLevels = cpu::kMsSsimLevels;
constexpr size_t kAlign = 256;  // workspace regions start on this many bytes

enum Stat { kMuX, kMuY, kXX, kYY, kXY, kStats };
enum Grad { kGMuX, kGMuY, kGSq, kGXY, kGrads };

// The window and constants, by value to every kernel (rounded to float once, as the CPU twin).
struct SsimConstants {
  float g[kTaps];
  float c1, c2;
};
SsimConstants ssim_constants(double data_range) {
  SsimConstants k{};
  common::gaussian_window(k.g);
  k.c1 = static_cast<float>((0.01 * data_range) * (0.01 * data_range));
  k.c2 = static_cast<float>((0.03 * data_range) * (0.03 * data_range));
  return k;
}
struct MsSsimWeights {
  double w[kLevels];
};

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}
size_t align_up(size_t bytes) {
  return (bytes + kAlign - 1) / kAlign * kAlign;
}

dim3 tile_grid(int64_t h, int64_t w, int64_t planes) {
  return dim3(static_cast<unsigned>(ceil_div(w, kTileW)),
              static_cast<unsigned>(ceil_div(h, kTileH)), static_cast<unsigned>(planes));
}
// Tiles of one plane's valid output.
int64_t output_tiles(int64_t h, int64_t w) {
  return ceil_div(w - kHalo, kTileW) * ceil_div(h - kHalo, kTileH);
}

// Plane `plane` (= sample * C + channel) of a view (NchwView's own accessors are host-only).
template <class T>
__device__ __forceinline__ T* plane_of(const cpu::NchwView<T>& v, int64_t plane) {
  return v.data + plane / v.c * v.batch_stride + plane % v.c * v.h * v.w;
}

__device__ __forceinline__ unsigned thread_rank() {
  return threadIdx.y * kTileW + threadIdx.x;
}

// The five filtered statistics at this thread's output pixel (row0 + ty, col0 + tx) of the plane
// (x, y) of h x w; out-of-plane input reads as 0 (only the pixels outside the valid output, which
// the callers drop, see it). Every thread of the block must call it.
struct Stats {
  float v[kStats];
};
__device__ Stats tile_stats(const float* x, const float* y, int64_t h, int64_t w, int64_t row0,
                            int64_t col0, const SsimConstants& k) {
  __shared__ float xs[kInH * kInW], ys[kInH * kInW];
  __shared__ float column[kStats][kTileH * kInW];
  for (int i = static_cast<int>(thread_rank()); i < kInH * kInW; i += kThreads) {
    const int64_t r = row0 + i / kInW, c = col0 + i % kInW;
    const bool inside = r < h && c < w;
    xs[i] = inside ? x[r * w + c] : 0.0f;
    ys[i] = inside ? y[r * w + c] : 0.0f;
  }
  __syncthreads();
  // Along H: output row i's column sums over input rows i..i+10.
  for (int i = static_cast<int>(thread_rank()); i < kTileH * kInW; i += kThreads) {
    const int rr = i / kInW, cc = i % kInW;
    float cx = 0.0f, cy = 0.0f, cxx = 0.0f, cyy = 0.0f, cxy = 0.0f;
    for (int a = 0; a < kTaps; ++a) {
      const float xv = xs[(rr + a) * kInW + cc], yv = ys[(rr + a) * kInW + cc];
      const float ga = k.g[a];
      // Products formed first, as pytorch_msssim filters X * X, Y * Y and X * Y.
      cx += ga * xv;
      cy += ga * yv;
      cxx += ga * (xv * xv);
      cyy += ga * (yv * yv);
      cxy += ga * (xv * yv);
    }
    column[kMuX][i] = cx;
    column[kMuY][i] = cy;
    column[kXX][i] = cxx;
    column[kYY][i] = cyy;
    column[kXY][i] = cxy;
  }
  __syncthreads();
  // Along W at this thread's pixel.
  Stats s;
  const int base = static_cast<int>(threadIdx.y) * kInW + static_cast<int>(threadIdx.x);
  for (int st = 0; st < kStats; ++st) {
    float o = 0.0f;
    for (int b = 0; b < kTaps; ++b) o += k.g[b] * column[st][base + b];
    s.v[st] = o;
  }
  return s;
}

// The block's sums of a and b, in thread 0 (a fixed tree: deterministic).
__device__ void block_sum2(double& a, double& b) {
  __shared__ double sum_a[kThreads], sum_b[kThreads];
  const unsigned t = thread_rank();
  sum_a[t] = a;
  sum_b[t] = b;
  __syncthreads();
  for (unsigned half = kThreads / 2; half > 0; half /= 2) {
    if (t < half) {
      sum_a[t] += sum_a[t + half];
      sum_b[t] += sum_b[t + half];
    }
    __syncthreads();
  }
  a = sum_a[0];
  b = sum_b[0];
}

// Grid: tile_grid(ho, wo, n*c). partials[(plane * tiles + tile) * 2 + {0, 1}] = the tile's sums of
// ssim_map and cs_map.
__global__ void ssim_stats_kernel(cpu::NchwView<const float> x, cpu::NchwView<const float> y,
                                  SsimConstants k, double* partials) {
  const int64_t plane = blockIdx.z;
  const int64_t ho = x.h - kHalo, wo = x.w - kHalo;
  const int64_t row0 = static_cast<int64_t>(blockIdx.y) * kTileH;
  const int64_t col0 = static_cast<int64_t>(blockIdx.x) * kTileW;
  const Stats s = tile_stats(plane_of(x, plane), plane_of(y, plane), x.h, x.w, row0, col0, k);
  double ssim = 0.0, cs = 0.0;
  if (row0 + threadIdx.y < ho && col0 + threadIdx.x < wo) {
    const float mx = s.v[kMuX], my = s.v[kMuY];
    const float mxy = mx * my, mxx = mx * mx, myy = my * my;
    const float cs_v =
        (2.0f * (s.v[kXY] - mxy) + k.c2) / ((s.v[kXX] - mxx) + (s.v[kYY] - myy) + k.c2);
    const float l_v = (2.0f * mxy + k.c1) / (mxx + myy + k.c1);
    ssim = l_v * cs_v;
    cs = cs_v;
  }
  block_sum2(ssim, cs);
  if (thread_rank() != 0) return;
  const int64_t tiles = static_cast<int64_t>(gridDim.x) * gridDim.y;
  double* p = partials + (plane * tiles + blockIdx.y * gridDim.x + blockIdx.x) * 2;
  p[0] = ssim;
  p[1] = cs;
}

// Grid: n*c blocks of kThreads. ssim[plane] and cs[plane] = the tiles' sums / count.
__global__ void ssim_finalize_kernel(const double* partials, int64_t tiles, double count,
                                     double* ssim, double* cs) {
  const int64_t plane = blockIdx.x;
  const double* p = partials + plane * tiles * 2;
  double s = 0.0, c = 0.0;
  for (int64_t t = thread_rank(); t < tiles; t += kThreads) {
    s += p[t * 2];
    c += p[t * 2 + 1];
  }
  block_sum2(s, c);
  if (thread_rank() != 0) return;
  ssim[plane] = s / count;
  cs[plane] = c / count;
}

// Grid: tile_grid(ho, wo, n*c). maps[((plane * kGrads + g) * ho + r) * wo + c]: the derivatives of
// grad_ssim[plane] * mean(ssim_map) + grad_cs[plane] * mean(cs_map) wrt mu_x, mu_y, E[X^2] (equal
// to that wrt E[Y^2]) and E[XY] at output pixel (r, c).
__global__ void ssim_grad_maps_kernel(cpu::NchwView<const float> x, cpu::NchwView<const float> y,
                                      SsimConstants k, const double* grad_ssim,
                                      const double* grad_cs, float* maps) {
  const int64_t plane = blockIdx.z;
  const int64_t ho = x.h - kHalo, wo = x.w - kHalo;
  const int64_t row0 = static_cast<int64_t>(blockIdx.y) * kTileH;
  const int64_t col0 = static_cast<int64_t>(blockIdx.x) * kTileW;
  const Stats s = tile_stats(plane_of(x, plane), plane_of(y, plane), x.h, x.w, row0, col0, k);
  const int64_t r = row0 + threadIdx.y, c = col0 + threadIdx.x;
  if (r >= ho || c >= wo) return;
  const double count = static_cast<double>(ho * wo);
  const float gs = static_cast<float>(grad_ssim[plane] / count);
  const float gc = static_cast<float>(grad_cs[plane] / count);
  const float mx = s.v[kMuX], my = s.v[kMuY];
  const float mxy = mx * my, mxx = mx * mx, myy = my * my;
  const float a1 = 2.0f * mxy + k.c1, b1 = mxx + myy + k.c1;
  const float a2 = 2.0f * (s.v[kXY] - mxy) + k.c2, b2 = (s.v[kXX] - mxx) + (s.v[kYY] - myy) + k.c2;
  const float l_v = a1 / b1, cs_v = a2 / b2;
  const float d_l = gs * cs_v;           // dL/dl
  const float d_cs = gs * l_v + gc;      // dL/dcs
  const float d_xy = 2.0f * d_cs / b2;   // dL/dE[XY] = dL/dsigma_xy
  const float d_sq = -d_cs * cs_v / b2;  // dL/dE[X^2] = dL/dsigma_x^2, the same for Y
  const float d_l_b1 = 2.0f * d_l / b1;
  float* m = maps + plane * kGrads * ho * wo + r * wo + c;
  m[kGMuX * ho * wo] = d_l_b1 * (my - l_v * mx) - d_xy * my - 2.0f * d_sq * mx;
  m[kGMuY * ho * wo] = d_l_b1 * (mx - l_v * my) - d_xy * mx - 2.0f * d_sq * my;
  m[kGSq * ho * wo] = d_sq;
  m[kGXY * ho * wo] = d_xy;
}

// Grid: tile_grid(h, w, n*c). grad_x and grad_y at this thread's input pixel: G^T of the maps,
// combined with x and y; assigned, or added when `accumulate`.
__global__ void ssim_adjoint_kernel(cpu::NchwView<const float> x, cpu::NchwView<const float> y,
                                    SsimConstants k, const float* maps, bool accumulate,
                                    cpu::NchwView<float> grad_x, cpu::NchwView<float> grad_y) {
  // The maps over rows row0 - 10 .. row0 + 7 and columns col0 - 10 .. col0 + 31.
  __shared__ float staged[kGrads][kInH * kInW];
  __shared__ float spread[kGrads][kInH * kTileW];
  const int64_t plane = blockIdx.z;
  const int64_t ho = x.h - kHalo, wo = x.w - kHalo;
  const int64_t row0 = static_cast<int64_t>(blockIdx.y) * kTileH;
  const int64_t col0 = static_cast<int64_t>(blockIdx.x) * kTileW;
  const float* m = maps + plane * kGrads * ho * wo;
  for (int t = static_cast<int>(thread_rank()); t < kInH * kInW; t += kThreads) {
    const int64_t r = row0 - kHalo + t / kInW, c = col0 - kHalo + t % kInW;
    const bool inside = r >= 0 && r < ho && c >= 0 && c < wo;
    for (int g = 0; g < kGrads; ++g) staged[g][t] = inside ? m[g * ho * wo + r * wo + c] : 0.0f;
  }
  __syncthreads();
  // Along W: column c gathers map columns c - b, taps b = 0..10 (the CPU twin's scatter order).
  for (int t = static_cast<int>(thread_rank()); t < kInH * kTileW; t += kThreads) {
    const int rr = t / kTileW, cc = t % kTileW;
    for (int g = 0; g < kGrads; ++g) {
      float o = 0.0f;
      for (int b = 0; b < kTaps; ++b) o += k.g[b] * staged[g][rr * kInW + cc + kHalo - b];
      spread[g][t] = o;
    }
  }
  __syncthreads();
  const int64_t r = row0 + threadIdx.y, c = col0 + threadIdx.x;
  if (r >= x.h || c >= x.w) return;
  // Along H: row r gathers map rows r - 10 .. r in increasing order (tap 10 down to 0).
  float acc[kGrads];
  for (int g = 0; g < kGrads; ++g) {
    float o = 0.0f;
    for (int t = 0; t < kTaps; ++t)
      o += k.g[kHalo - t] * spread[g][(threadIdx.y + t) * kTileW + threadIdx.x];
    acc[g] = o;
  }
  const int64_t at = r * x.w + c;
  const float xv = plane_of(x, plane)[at], yv = plane_of(y, plane)[at];
  const float dx = acc[kGMuX] + 2.0f * xv * acc[kGSq] + yv * acc[kGXY];
  const float dy = acc[kGMuY] + 2.0f * yv * acc[kGSq] + xv * acc[kGXY];
  float* gx = plane_of(grad_x, plane) + at;
  float* gy = plane_of(grad_y, plane) + at;
  *gx = accumulate ? *gx + dx : dx;
  *gy = accumulate ? *gy + dy : dy;
}

// Grid: (output pixels / kThreads, n*c). Window rows 2 oh - ph .. + 1, columns 2 ow - pw .. + 1
// (padding adds zeros), always divided by 4 (count_include_pad), summed in the CPU twin's order.
__global__ void avg_pool_forward_kernel(cpu::NchwView<const float> x, cpu::NchwView<float> y) {
  const int64_t plane = blockIdx.y;
  const int64_t o = static_cast<int64_t>(blockIdx.x) * kThreads + thread_rank();
  if (o >= y.h * y.w) return;
  const int64_t oh = o / y.w, ow = o % y.w, ph = x.h % 2, pw = x.w % 2;
  const float* in = plane_of(x, plane);
  float sum = 0.0f;
  for (int64_t r = 2 * oh - ph; r < 2 * oh - ph + 2; ++r) {
    if (r < 0 || r >= x.h) continue;
    for (int64_t c = 2 * ow - pw; c < 2 * ow - pw + 2; ++c)
      if (c >= 0 && c < x.w) sum += in[r * x.w + c];
  }
  plane_of(y, plane)[o] = sum / 4.0f;
}

// Grid: (input pixels / kThreads, n*c). The windows tile the padded plane: each input pixel takes
// a quarter of its one window's gradient.
__global__ void avg_pool_backward_kernel(cpu::NchwView<const float> grad_y,
                                         cpu::NchwView<float> grad_x) {
  const int64_t plane = blockIdx.y;
  const int64_t p = static_cast<int64_t>(blockIdx.x) * kThreads + thread_rank();
  if (p >= grad_x.h * grad_x.w) return;
  const int64_t r = p / grad_x.w, c = p % grad_x.w;
  const int64_t ph = grad_x.h % 2, pw = grad_x.w % 2;
  plane_of(grad_x, plane)[p] =
      plane_of(grad_y, plane)[((r + ph) / 2) * grad_y.w + (c + pw) / 2] / 4.0f;
}

// One thread per (n, c): grad_ssim = grad / planes, grad_cs = 0 (ssim's backward).
__global__ void ssim_grad_fill_kernel(int64_t planes, double grad_plane, double* grad_ssim,
                                      double* grad_cs) {
  const int64_t p = static_cast<int64_t>(blockIdx.x) * kThreads + thread_rank();
  if (p >= planes) return;
  grad_ssim[p] = grad_plane;
  grad_cs[p] = 0.0;
}

// Scale `level`'s term before relu: the mean cs at scales 0..3, the mean ssim at scale 4.
__device__ __forceinline__ double ms_term(const double* ssim, const double* cs, int64_t planes,
                                          int level, int64_t p) {
  return level == kLevels - 1 ? ssim[level * planes + p] : cs[level * planes + p];
}

// std::max(t, 0.0) as the CPU twin: NaN stays NaN (fmax would turn it into 0, hiding a
// non-finite MS-SSIM from the loss's fallback).
__device__ __forceinline__ double relu(double t) {
  return t < 0.0 ? 0.0 : t;
}

// One thread per (n, c): grad_ssim / grad_cs [level * planes + p] = grad_plane * d value / d term
// of its scale (the ssim slot at scale 4, the cs slot below), as the CPU twin: 0 where relu clips,
// and the other factors multiplied out rather than divided out (no 0 / 0).
__global__ void ms_ssim_grad_terms_kernel(const double* ssim, const double* cs, int64_t planes,
                                          MsSsimWeights weights, double grad_plane,
                                          double* grad_ssim, double* grad_cs) {
  const int64_t p = static_cast<int64_t>(blockIdx.x) * kThreads + thread_rank();
  if (p >= planes) return;
  double term[kLevels], factor[kLevels];
  for (int l = 0; l < kLevels; ++l) {
    term[l] = ms_term(ssim, cs, planes, l, p);
    factor[l] = pow(relu(term[l]), weights.w[l]);
  }
  for (int l = 0; l < kLevels; ++l) {
    double g = 0.0;
    if (!(term[l] <= 0.0)) {  // a NaN term passes its NaN on, as the CPU twin
      double others = 1.0;
      for (int o = 0; o < kLevels; ++o)
        if (o != l) others *= factor[o];
      g = grad_plane * weights.w[l] * pow(term[l], weights.w[l] - 1.0) * others;
    }
    const bool last = l == kLevels - 1;
    grad_ssim[l * planes + p] = last ? g : 0.0;
    grad_cs[l * planes + p] = last ? 0.0 : g;
  }
}

// One block: *out = the mean over planes of ssim[p] (levels == 0) or of the MS-SSIM value
// prod_l relu(term_l)^w_l (levels == kLevels), added in an order fixed by `planes`.
__global__ void similarity_mean_kernel(const double* ssim, const double* cs, int64_t planes,
                                       int levels, MsSsimWeights weights, float* out) {
  double total = 0.0, unused = 0.0;
  for (int64_t p = thread_rank(); p < planes; p += kThreads) {
    double value = ssim[p];
    if (levels == kLevels) {
      value = 1.0;
      for (int l = 0; l < kLevels; ++l)
        value *= pow(relu(ms_term(ssim, cs, planes, l, p)), weights.w[l]);
    }
    total += value;
  }
  block_sum2(total, unused);
  if (thread_rank() == 0) *out = static_cast<float>(total / static_cast<double>(planes));
}

MsSsimWeights ms_ssim_weights() {
  MsSsimWeights w{};
  for (int l = 0; l < kLevels; ++l) w.w[l] = cpu::kMsSsimWeights[l];
  return w;
}

void check_level(const char* name, cpu::NchwView<const float> x) {
  DEBLUR_CHECK(x.h >= kTaps && x.w >= kTaps, name, ": a ", x.h, " x ", x.w,
               " plane is smaller than the ", kTaps, "-pixel window");
  DEBLUR_CHECK(x.n * x.c >= 1 && x.n * x.c <= 65535, name, ": ", x.n * x.c,
               " planes (n * c) must be 1..65535 (the grid's z)");
}

int64_t planes_of(cpu::NchwView<const float> x) {
  return x.n * x.c;
}

// The scratch one scale needs: the stats partials (forward) or the gradient maps (backward),
// never both at once.
size_t level_scratch_bytes(cpu::NchwView<const float> x) {
  const int64_t planes = planes_of(x), ho = x.h - kHalo, wo = x.w - kHalo;
  const size_t partials = static_cast<size_t>(planes * output_tiles(x.h, x.w) * 2) * sizeof(double);
  const size_t maps = static_cast<size_t>(planes * kGrads * ho * wo) * sizeof(float);
  return align_up(std::max(partials, maps));
}

size_t plane_doubles_bytes(cpu::NchwView<const float> x, int count) {
  return align_up(static_cast<size_t>(planes_of(x) * count) * sizeof(double));
}

void level_forward(cpu::NchwView<const float> x, cpu::NchwView<const float> y,
                   const SsimConstants& k, double* ssim, double* cs, void* scratch,
                   cudaStream_t stream) {
  const int64_t ho = x.h - kHalo, wo = x.w - kHalo, planes = planes_of(x);
  auto* partials = static_cast<double*>(scratch);
  launch("ssim_stats", ssim_stats_kernel, tile_grid(ho, wo, planes), dim3(kTileW, kTileH), 0,
         stream, x, y, k, partials);
  launch("ssim_finalize", ssim_finalize_kernel, dim3(static_cast<unsigned>(planes)),
         dim3(kTileW, kTileH), 0, stream, static_cast<const double*>(partials),
         output_tiles(x.h, x.w), static_cast<double>(ho * wo), ssim, cs);
}

void level_backward(cpu::NchwView<const float> x, cpu::NchwView<const float> y,
                    const SsimConstants& k, const double* grad_ssim, const double* grad_cs,
                    bool accumulate, cpu::NchwView<float> grad_x, cpu::NchwView<float> grad_y,
                    void* scratch, cudaStream_t stream) {
  const int64_t ho = x.h - kHalo, wo = x.w - kHalo, planes = planes_of(x);
  auto* maps = static_cast<float*>(scratch);
  launch("ssim_grad_maps", ssim_grad_maps_kernel, tile_grid(ho, wo, planes), dim3(kTileW, kTileH),
         0, stream, x, y, k, grad_ssim, grad_cs, maps);
  launch("ssim_adjoint", ssim_adjoint_kernel, tile_grid(x.h, x.w, planes), dim3(kTileW, kTileH), 0,
         stream, x, y, k, static_cast<const float*>(maps), accumulate, grad_x, grad_y);
}

dim3 pool_grid(int64_t pixels, int64_t planes) {
  return dim3(static_cast<unsigned>(ceil_div(pixels, kThreads)), static_cast<unsigned>(planes));
}

// Workspace of ms_ssim_*: per scale 1..4 the pooled x and y and their gradients (contiguous
// planes), one scale's scratch (sized for scale 0), then the per-(n, c) doubles of every scale:
// ssim, cs and their gradients.
struct MsLayout {
  int64_t h[kLevels], w[kLevels];
  size_t pyramid[kLevels] = {};  // bytes of one pooled tensor at each scale (0 for scale 0)
  size_t bytes = 0;
  explicit MsLayout(cpu::NchwView<const float> x) {
    h[0] = x.h;
    w[0] = x.w;
    for (int l = 1; l < kLevels; ++l) {
      h[l] = cpu::avg_pool_padded_size(h[l - 1]);
      w[l] = cpu::avg_pool_padded_size(w[l - 1]);
      pyramid[l] = align_up(static_cast<size_t>(planes_of(x) * h[l] * w[l]) * sizeof(float));
      bytes += 4 * pyramid[l];  // x, y, grad_x, grad_y
    }
    bytes += level_scratch_bytes(x) + 4 * plane_doubles_bytes(x, kLevels);
  }
};

}  // namespace

size_t ssim_workspace_bytes(cpu::NchwView<const float> x) {
  check_level("ssim_workspace_bytes", x);
  return level_scratch_bytes(x) + 2 * plane_doubles_bytes(x, 1);
}

size_t ms_ssim_workspace_bytes(cpu::NchwView<const float> x) {
  check_level("ms_ssim_workspace_bytes", x);
  return MsLayout(x).bytes;
}

void ssim_level_forward(cpu::NchwView<const float> x, cpu::NchwView<const float> y,
                        double data_range, double* ssim, double* cs, void* workspace,
                        cudaStream_t stream) {
  check_level("ssim_level_forward", x);
  level_forward(x, y, ssim_constants(data_range), ssim, cs, workspace, stream);
}

void ssim_level_backward(cpu::NchwView<const float> x, cpu::NchwView<const float> y,
                         double data_range, const double* grad_ssim, const double* grad_cs,
                         cpu::NchwView<float> grad_x, cpu::NchwView<float> grad_y, void* workspace,
                         cudaStream_t stream) {
  check_level("ssim_level_backward", x);
  level_backward(x, y, ssim_constants(data_range), grad_ssim, grad_cs, false, grad_x, grad_y,
                 workspace, stream);
}

void avg_pool2x2_padded_forward(cpu::NchwView<const float> x, cpu::NchwView<float> y,
                                cudaStream_t stream) {
  DEBLUR_CHECK(y.n == x.n && y.c == x.c && y.h == cpu::avg_pool_padded_size(x.h) &&
                   y.w == cpu::avg_pool_padded_size(x.w),
               "avg_pool2x2_padded_forward: output ", y.h, " x ", y.w, " for input ", x.h, " x ",
               x.w);
  if (x.n * x.c == 0 || y.h * y.w == 0) return;
  DEBLUR_CHECK(x.n * x.c <= 65535, "avg_pool2x2_padded_forward: ", x.n * x.c,
               " planes exceed the grid's 65535");
  launch("avg_pool2x2_padded_forward", avg_pool_forward_kernel, pool_grid(y.h * y.w, planes_of(x)),
         dim3(kTileW, kTileH), 0, stream, x, y);
}

void avg_pool2x2_padded_backward(cpu::NchwView<const float> grad_y, cpu::NchwView<float> grad_x,
                                 cudaStream_t stream) {
  DEBLUR_CHECK(grad_y.n == grad_x.n && grad_y.c == grad_x.c &&
                   grad_y.h == cpu::avg_pool_padded_size(grad_x.h) &&
                   grad_y.w == cpu::avg_pool_padded_size(grad_x.w),
               "avg_pool2x2_padded_backward: output gradient ", grad_y.h, " x ", grad_y.w,
               " for input ", grad_x.h, " x ", grad_x.w);
  if (grad_x.n * grad_x.c == 0 || grad_x.h * grad_x.w == 0) return;
  DEBLUR_CHECK(grad_x.n * grad_x.c <= 65535, "avg_pool2x2_padded_backward: ", grad_x.n * grad_x.c,
               " planes exceed the grid's 65535");
  launch("avg_pool2x2_padded_backward", avg_pool_backward_kernel,
         pool_grid(grad_x.h * grad_x.w, grad_x.n * grad_x.c), dim3(kTileW, kTileH), 0, stream,
         grad_y, grad_x);
}

void ssim_forward(cpu::NchwView<const float> x, cpu::NchwView<const float> y, double data_range,
                  float* out, void* workspace, cudaStream_t stream) {
  check_level("ssim_forward", x);
  const size_t scratch = level_scratch_bytes(x);
  auto* ssim = reinterpret_cast<double*>(static_cast<char*>(workspace) + scratch);
  double* cs = ssim + plane_doubles_bytes(x, 1) / sizeof(double);
  level_forward(x, y, ssim_constants(data_range), ssim, cs, workspace, stream);
  launch("ssim_mean", similarity_mean_kernel, dim3(1), dim3(kTileW, kTileH), 0, stream,
         static_cast<const double*>(ssim), static_cast<const double*>(cs), planes_of(x), 0,
         ms_ssim_weights(), out);
}

void ssim_backward(cpu::NchwView<const float> x, cpu::NchwView<const float> y, double data_range,
                   double grad, cpu::NchwView<float> grad_x, cpu::NchwView<float> grad_y,
                   void* workspace, cudaStream_t stream) {
  check_level("ssim_backward", x);
  const int64_t planes = planes_of(x);
  const size_t scratch = level_scratch_bytes(x);
  auto* grad_ssim = reinterpret_cast<double*>(static_cast<char*>(workspace) + scratch);
  double* grad_cs = grad_ssim + plane_doubles_bytes(x, 1) / sizeof(double);
  launch("ssim_grad_fill", ssim_grad_fill_kernel, pool_grid(planes, 1), dim3(kTileW, kTileH), 0,
         stream, planes, grad / static_cast<double>(planes), grad_ssim, grad_cs);
  level_backward(x, y, ssim_constants(data_range), grad_ssim, grad_cs, false, grad_x, grad_y,
                 workspace, stream);
}

namespace {

// The pyramid, its gradient and the per-(n, c) arrays, carved out of an ms_ssim workspace.
struct MsBuffers {
  cpu::NchwView<const float> x[kLevels], y[kLevels];
  cpu::NchwView<float> pooled_x[kLevels], pooled_y[kLevels];  // scales 1..4: x[l], y[l] writable
  cpu::NchwView<float> gx[kLevels], gy[kLevels];
  void* scratch;
  double *ssim, *cs, *grad_ssim, *grad_cs;

  MsBuffers(cpu::NchwView<const float> x0, cpu::NchwView<const float> y0, void* workspace) {
    const MsLayout layout(x0);
    char* at = static_cast<char*>(workspace);
    x[0] = x0;
    y[0] = y0;
    for (int l = 1; l < kLevels; ++l) {
      float* planes[4];
      for (float*& p : planes) {
        p = reinterpret_cast<float*>(at);
        at += layout.pyramid[l];
      }
      pooled_x[l] = cpu::contiguous_view(planes[0], x0.n, x0.c, layout.h[l], layout.w[l]);
      pooled_y[l] = cpu::contiguous_view(planes[1], x0.n, x0.c, layout.h[l], layout.w[l]);
      x[l] = pooled_x[l];
      y[l] = pooled_y[l];
      gx[l] = cpu::contiguous_view(planes[2], x0.n, x0.c, layout.h[l], layout.w[l]);
      gy[l] = cpu::contiguous_view(planes[3], x0.n, x0.c, layout.h[l], layout.w[l]);
    }
    scratch = at;
    at += level_scratch_bytes(x0);
    double* arrays[4];
    for (double*& a : arrays) {
      a = reinterpret_cast<double*>(at);
      at += plane_doubles_bytes(x0, kLevels);
    }
    ssim = arrays[0];
    cs = arrays[1];
    grad_ssim = arrays[2];
    grad_cs = arrays[3];
  }
};

void check_ms_ssim(const char* name, cpu::NchwView<const float> x) {
  check_level(name, x);
  DEBLUR_CHECK(std::min(x.h, x.w) >= common::kMsSsimMinSide, name, ": a ", x.h, " x ", x.w,
               " plane is too small: the smaller side must be at least ", common::kMsSsimMinSide);
}

// The pyramid of x and y, then each scale's per-(n, c) ssim and cs.
void ms_ssim_terms(const MsBuffers& b, const SsimConstants& k, cudaStream_t stream) {
  const int64_t planes = b.x[0].n * b.x[0].c;
  for (int l = 1; l < kLevels; ++l) {
    avg_pool2x2_padded_forward(b.x[l - 1], b.pooled_x[l], stream);
    avg_pool2x2_padded_forward(b.y[l - 1], b.pooled_y[l], stream);
  }
  for (int l = 0; l < kLevels; ++l)
    level_forward(b.x[l], b.y[l], k, b.ssim + l * planes, b.cs + l * planes, b.scratch, stream);
}

}  // namespace

void ms_ssim_forward(cpu::NchwView<const float> x, cpu::NchwView<const float> y, double data_range,
                     float* out, void* workspace, cudaStream_t stream) {
  check_ms_ssim("ms_ssim_forward", x);
  MsBuffers b(x, y, workspace);
  ms_ssim_terms(b, ssim_constants(data_range), stream);
  launch("ms_ssim_mean", similarity_mean_kernel, dim3(1), dim3(kTileW, kTileH), 0, stream,
         static_cast<const double*>(b.ssim), static_cast<const double*>(b.cs), planes_of(x),
         kLevels, ms_ssim_weights(), out);
}

void ms_ssim_backward(cpu::NchwView<const float> x, cpu::NchwView<const float> y, double data_range,
                      double grad, cpu::NchwView<float> grad_x, cpu::NchwView<float> grad_y,
                      void* workspace, cudaStream_t stream) {
  check_ms_ssim("ms_ssim_backward", x);
  const int64_t planes = planes_of(x);
  const SsimConstants k = ssim_constants(data_range);
  MsBuffers b(x, y, workspace);
  b.gx[0] = grad_x;
  b.gy[0] = grad_y;
  ms_ssim_terms(b, k, stream);
  launch("ms_ssim_grad_terms", ms_ssim_grad_terms_kernel, pool_grid(planes, 1),
         dim3(kTileW, kTileH), 0, stream, static_cast<const double*>(b.ssim),
         static_cast<const double*>(b.cs), planes, ms_ssim_weights(),
         grad / static_cast<double>(planes), b.grad_ssim, b.grad_cs);
  // From the coarsest scale down: each scale's gradient is its pooled share of the coarser
  // scale's plus its own term's (the CPU twin's order).
  const int last = kLevels - 1;
  level_backward(b.x[last], b.y[last], k, b.grad_ssim + last * planes, b.grad_cs + last * planes,
                 false, b.gx[last], b.gy[last], b.scratch, stream);
  for (int l = last - 1; l >= 0; --l) {
    avg_pool2x2_padded_backward(b.gx[l + 1], b.gx[l], stream);
    avg_pool2x2_padded_backward(b.gy[l + 1], b.gy[l], stream);
    level_backward(b.x[l], b.y[l], k, b.grad_ssim + l * planes, b.grad_cs + l * planes, true,
                   b.gx[l], b.gy[l], b.scratch, stream);
  }
}

}  // namespace deblur::cuda
