// SSIM and MS-SSIM CPU kernels: the reference for the CUDA ones and the CPU loss path.
//
// Semantics: pytorch_msssim 1.0.0 (ssim.py), alpha = beta = gamma = 1, K = (0.01, 0.03):
//   - window: 1-D Gaussian, 11 taps, sigma 1.5, normalised to sum 1 (kernels/common/gaussian.h);
//     applied per channel, separably, first along H then along W, "valid" (no padding), so a
//     H x W plane gives (H - 10) x (W - 10) maps.
//   - mu_x = G*X, mu_y = G*Y, sigma_x^2 = G*(X^2) - mu_x^2, sigma_y^2 = G*(Y^2) - mu_y^2,
//     sigma_xy = G*(XY) - mu_x mu_y; C1 = (0.01 data_range)^2, C2 = (0.03 data_range)^2;
//     cs_map = (2 sigma_xy + C2) / (sigma_x^2 + sigma_y^2 + C2);
//     ssim_map = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1) * cs_map.
//   - per-(n, c) ssim and cs are the means of the maps. ssim() is the mean over n and c of the
//     per-channel ssim, with no relu (nonnegative_ssim=False, size_average=True).
//   - ms_ssim(): 5 scales weighted 0.0448, 0.2856, 0.3001, 0.2363, 0.1333. Scales 0..3 keep
//     relu(cs) and then downsample X and Y with avg_pool2d(kernel 2, stride 2,
//     padding (H % 2, W % 2), count_include_pad=True, ceil_mode=False): an odd side is padded
//     with a zero on both ends, so the first window holds one real row (or column) and the
//     padding, and every window divides by 4. The last scale keeps relu(ssim). Per (n, c):
//     prod_i relu(cs_i)^w_i * relu(ssim_4)^w_4; the result is the mean over n and c.
//     pytorch_msssim asserts min(H, W) > 160 so the last scale is still >= 11 pixels.
//
// Backward (derived by hand): with l = A1 / B1 and cs = A2 / B2 at each pixel,
//   dL/dl = g_ssim cs,  dL/dcs = g_ssim l + g_cs  (g_* = per-channel gradient / map size),
//   dL/dE[XY] = 2 dL/dcs / B2,  dL/dE[X^2] = dL/dE[Y^2] = -dL/dcs cs / B2,
//   dL/dmu_x = dL/dl 2 (mu_y - l mu_x) / B1 - dL/dE[XY] mu_y - 2 dL/dE[X^2] mu_x (mu_y alike),
// then through the transpose of the valid filter (a "full" scatter, G^T):
//   dX = G^T g_mux + 2 X G^T g_xx + Y G^T g_xy,  dY = G^T g_muy + 2 Y G^T g_yy + X G^T g_xy.
// The avg-pool backward gives each input pixel a quarter of its one window's gradient, and the
// product's gradient is zero wherever relu clips (PyTorch's threshold_backward masks it).
//
// Each (n, c) plane is one parallel_for job (for MS-SSIM, its whole pyramid); a scale streams
// over output rows with O(W) scratch: the forward never forms the maps, the backward scatters
// G^T into an 11-row ring buffer.
#include "kernels/cpu/ssim.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "kernels/common/gaussian.h"
#include "kernels/cpu/parallel.h"

namespace deblur::cpu {

namespace {

constexpr int kTaps = common::kGaussianTaps;

template <class T>
struct SsimConstants {
  std::array<T, kTaps> g;
  T c1, c2;
  explicit SsimConstants(double data_range)
      : c1(static_cast<T>((0.01 * data_range) * (0.01 * data_range))),
        c2(static_cast<T>((0.03 * data_range) * (0.03 * data_range))) {
    common::gaussian_window(g.data());
  }
};

// The five filtered statistics of one output row, each wo long: mu_x, mu_y, E[X^2], E[Y^2],
// E[XY].
enum Stat { kMuX, kMuY, kXX, kYY, kXY, kStats };

// Filters input rows i..i+10 of the planes x and y (width w) into `out` (kStats arrays of
// w - 10), along H into `column` (kStats arrays of w) first, then along W.
template <class T>
void filter_row(const T* x, const T* y, int64_t w, int64_t i, const T* g, T* column, T* out) {
  const int64_t wo = w - (kTaps - 1);
  std::fill(column, column + kStats * w, T(0));
  T *cx = column + kMuX * w, *cy = column + kMuY * w, *cxx = column + kXX * w,
    *cyy = column + kYY * w, *cxy = column + kXY * w;
  for (int a = 0; a < kTaps; ++a) {
    const T* xr = x + (i + a) * w;
    const T* yr = y + (i + a) * w;
    const T ga = g[a];
    for (int64_t j = 0; j < w; ++j) {
      const T xv = xr[j], yv = yr[j];
      // Products formed first, as pytorch_msssim filters X * X, Y * Y and X * Y.
      cx[j] += ga * xv;
      cy[j] += ga * yv;
      cxx[j] += ga * (xv * xv);
      cyy[j] += ga * (yv * yv);
      cxy[j] += ga * (xv * yv);
    }
  }
  std::fill(out, out + kStats * wo, T(0));
  for (int s = 0; s < kStats; ++s) {
    const T* in = column + s * w;
    T* o = out + s * wo;
    for (int b = 0; b < kTaps; ++b) {
      const T gb = g[b];
      for (int64_t j = 0; j < wo; ++j) o[j] += gb * in[j + b];
    }
  }
}

// Means of ssim_map and cs_map over one h x w plane.
template <class T>
void plane_forward(const T* x, const T* y, int64_t h, int64_t w, const SsimConstants<T>& k,
                   double& ssim, double& cs) {
  const int64_t ho = h - (kTaps - 1), wo = w - (kTaps - 1);
  std::vector<T> column(kStats * w), stats(kStats * wo);
  double ssim_sum = 0.0, cs_sum = 0.0;
  for (int64_t i = 0; i < ho; ++i) {
    filter_row(x, y, w, i, k.g.data(), column.data(), stats.data());
    const T *mx = &stats[kMuX * wo], *my = &stats[kMuY * wo], *exx = &stats[kXX * wo],
            *eyy = &stats[kYY * wo], *exy = &stats[kXY * wo];
    for (int64_t j = 0; j < wo; ++j) {
      const T mxy = mx[j] * my[j], mxx = mx[j] * mx[j], myy = my[j] * my[j];
      const T cs_v = (T(2) * (exy[j] - mxy) + k.c2) / ((exx[j] - mxx) + (eyy[j] - myy) + k.c2);
      const T l_v = (T(2) * mxy + k.c1) / (mxx + myy + k.c1);
      ssim_sum += l_v * cs_v;
      cs_sum += cs_v;
    }
  }
  const double count = static_cast<double>(ho * wo);
  ssim = ssim_sum / count;
  cs = cs_sum / count;
}

// Gradient of grad_ssim * mean(ssim_map) + grad_cs * mean(cs_map) over one plane into gx, gy
// (row stride w); assigns, or adds when `accumulate`.
template <class T>
void plane_backward(const T* x, const T* y, int64_t h, int64_t w, const SsimConstants<T>& k,
                    double grad_ssim, double grad_cs, T* gx, T* gy, bool accumulate) {
  const int64_t ho = h - (kTaps - 1), wo = w - (kTaps - 1);
  const double count = static_cast<double>(ho * wo);
  const T gs = static_cast<T>(grad_ssim / count), gc = static_cast<T>(grad_cs / count);
  // Per-pixel gradients wrt mu_x, mu_y, E[X^2] (= that wrt E[Y^2]) and E[XY].
  enum Grad { kGMuX, kGMuY, kGSq, kGXY, kGrads };
  std::vector<T> column(kStats * w), stats(kStats * wo), grads(kGrads * wo), spread(kGrads * w);
  // G^T along H: output row i scatters into input rows i..i+10; row r lives in slot r % 11.
  std::vector<T> ring(static_cast<size_t>(kGrads) * kTaps * w, T(0));
  auto slot = [&](int g, int64_t r) { return ring.data() + (g * kTaps + r % kTaps) * w; };

  auto finish_row = [&](int64_t r) {
    T *rmx = slot(kGMuX, r), *rmy = slot(kGMuY, r), *rsq = slot(kGSq, r), *rxy = slot(kGXY, r);
    const T* xr = x + r * w;
    const T* yr = y + r * w;
    T* gxr = gx + r * w;
    T* gyr = gy + r * w;
    for (int64_t j = 0; j < w; ++j) {
      const T dx = rmx[j] + T(2) * xr[j] * rsq[j] + yr[j] * rxy[j];
      const T dy = rmy[j] + T(2) * yr[j] * rsq[j] + xr[j] * rxy[j];
      gxr[j] = accumulate ? gxr[j] + dx : dx;
      gyr[j] = accumulate ? gyr[j] + dy : dy;
      rmx[j] = rmy[j] = rsq[j] = rxy[j] = T(0);  // the slot is reused by row r + 11
    }
  };

  for (int64_t i = 0; i < ho; ++i) {
    filter_row(x, y, w, i, k.g.data(), column.data(), stats.data());
    const T *mx = &stats[kMuX * wo], *my = &stats[kMuY * wo], *exx = &stats[kXX * wo],
            *eyy = &stats[kYY * wo], *exy = &stats[kXY * wo];
    T *gmx = &grads[kGMuX * wo], *gmy = &grads[kGMuY * wo], *gsq = &grads[kGSq * wo],
      *gxy = &grads[kGXY * wo];
    for (int64_t j = 0; j < wo; ++j) {
      const T mxy = mx[j] * my[j], mxx = mx[j] * mx[j], myy = my[j] * my[j];
      const T a1 = T(2) * mxy + k.c1, b1 = mxx + myy + k.c1;
      const T a2 = T(2) * (exy[j] - mxy) + k.c2, b2 = (exx[j] - mxx) + (eyy[j] - myy) + k.c2;
      const T l_v = a1 / b1, cs_v = a2 / b2;
      const T d_l = gs * cs_v;           // dL/dl
      const T d_cs = gs * l_v + gc;      // dL/dcs
      const T d_xy = T(2) * d_cs / b2;   // dL/dE[XY] = dL/dsigma_xy
      const T d_sq = -d_cs * cs_v / b2;  // dL/dE[X^2] = dL/dsigma_x^2, the same for Y
      const T d_l_b1 = T(2) * d_l / b1;
      gmx[j] = d_l_b1 * (my[j] - l_v * mx[j]) - d_xy * my[j] - T(2) * d_sq * mx[j];
      gmy[j] = d_l_b1 * (mx[j] - l_v * my[j]) - d_xy * mx[j] - T(2) * d_sq * my[j];
      gsq[j] = d_sq;
      gxy[j] = d_xy;
    }
    // G^T along W: each of the wo values spreads over 11 of the w columns.
    std::fill(spread.begin(), spread.end(), T(0));
    for (int s = 0; s < kGrads; ++s) {
      const T* in = &grads[s * wo];
      T* o = &spread[s * w];
      for (int b = 0; b < kTaps; ++b) {
        const T gb = k.g[b];
        for (int64_t j = 0; j < wo; ++j) o[j + b] += gb * in[j];
      }
    }
    // G^T along H into rows i..i+10.
    for (int s = 0; s < kGrads; ++s) {
      const T* in = &spread[s * w];
      for (int a = 0; a < kTaps; ++a) {
        T* o = slot(s, i + a);
        const T ga = k.g[a];
        for (int64_t j = 0; j < w; ++j) o[j] += ga * in[j];
      }
    }
    finish_row(i);  // no later output row reaches input row i
  }
  for (int64_t r = ho; r < h; ++r) finish_row(r);
}

// 2x2 average of one h x w plane into its avg_pool_padded_size(h) x (w) output.
template <class T>
void pool_plane_forward(const T* in, int64_t h, int64_t w, T* out) {
  const int64_t ph = h % 2, pw = w % 2;
  const int64_t oh_count = avg_pool_padded_size(h), ow_count = avg_pool_padded_size(w);
  for (int64_t oh = 0; oh < oh_count; ++oh) {
    for (int64_t ow = 0; ow < ow_count; ++ow) {
      // Window rows 2 oh - ph .. + 1 and columns 2 ow - pw .. + 1; padding adds zeros.
      T sum = T(0);
      for (int64_t r = 2 * oh - ph; r < 2 * oh - ph + 2; ++r) {
        if (r < 0 || r >= h) continue;
        for (int64_t c = 2 * ow - pw; c < 2 * ow - pw + 2; ++c)
          if (c >= 0 && c < w) sum += in[r * w + c];
      }
      out[oh * ow_count + ow] = sum / T(4);  // count_include_pad: always 4
    }
  }
}

// Transpose of pool_plane_forward; assigns the h x w input gradient.
template <class T>
void pool_plane_backward(const T* grad_out, int64_t h, int64_t w, T* grad_in) {
  const int64_t ph = h % 2, pw = w % 2, ow_count = avg_pool_padded_size(w);
  // Windows tile the padded plane, so each input pixel lies in exactly one.
  for (int64_t r = 0; r < h; ++r) {
    const T* gr = grad_out + ((r + ph) / 2) * ow_count;
    for (int64_t c = 0; c < w; ++c) grad_in[r * w + c] = gr[(c + pw) / 2] / T(4);
  }
}

// One plane's MS-SSIM pyramid: scale 0 is the input, scales 1..4 own pooled copies.
template <class T>
struct PlanePyramid {
  std::array<const T*, kMsSsimLevels> x, y;
  std::array<int64_t, kMsSsimLevels> h, w;
  std::array<std::vector<T>, kMsSsimLevels> x_store, y_store;

  PlanePyramid(const T* x0, const T* y0, int64_t h0, int64_t w0) {
    x[0] = x0;
    y[0] = y0;
    h[0] = h0;
    w[0] = w0;
    for (int level = 1; level < kMsSsimLevels; ++level) {
      h[level] = avg_pool_padded_size(h[level - 1]);
      w[level] = avg_pool_padded_size(w[level - 1]);
      x_store[level].resize(h[level] * w[level]);
      y_store[level].resize(h[level] * w[level]);
      pool_plane_forward(x[level - 1], h[level - 1], w[level - 1], x_store[level].data());
      pool_plane_forward(y[level - 1], h[level - 1], w[level - 1], y_store[level].data());
      x[level] = x_store[level].data();
      y[level] = y_store[level].data();
    }
  }
  PlanePyramid(const PlanePyramid&) = delete;  // x and y point into this object's storage
};

// Each scale's term before relu: the mean cs at scales 0..3, the mean ssim at scale 4.
template <class T>
std::array<double, kMsSsimLevels> ms_ssim_terms(const PlanePyramid<T>& pyr,
                                                const SsimConstants<T>& k) {
  std::array<double, kMsSsimLevels> terms;
  for (int level = 0; level < kMsSsimLevels; ++level) {
    double ssim = 0.0, cs = 0.0;
    plane_forward(pyr.x[level], pyr.y[level], pyr.h[level], pyr.w[level], k, ssim, cs);
    terms[level] = level == kMsSsimLevels - 1 ? ssim : cs;
  }
  return terms;
}

double ms_ssim_value(const std::array<double, kMsSsimLevels>& terms) {
  double value = 1.0;
  for (int level = 0; level < kMsSsimLevels; ++level)
    value *= std::pow(std::max(terms[level], 0.0), kMsSsimWeights[level]);
  return value;
}

// grad * d(plane's MS-SSIM)/dx and /dy into gx, gy (assigned).
template <class T>
void ms_ssim_plane_backward(const T* x, const T* y, int64_t h, int64_t w, const SsimConstants<T>& k,
                            double grad, T* gx, T* gy) {
  const PlanePyramid<T> pyr(x, y, h, w);
  const std::array<double, kMsSsimLevels> terms = ms_ssim_terms(pyr, k);

  // d value / d term_i = w_i term_i^(w_i - 1) prod_{k != i} relu(term_k)^w_k where term_i > 0,
  // else 0 (relu). The other factors are multiplied out, not divided out of the product, so a
  // zero factor elsewhere gives 0 rather than 0 / 0.
  std::array<double, kMsSsimLevels> factor, grad_term{};
  for (int level = 0; level < kMsSsimLevels; ++level)
    factor[level] = std::pow(std::max(terms[level], 0.0), kMsSsimWeights[level]);
  for (int level = 0; level < kMsSsimLevels; ++level) {
    if (terms[level] <= 0.0) continue;
    double others = 1.0;
    for (int o = 0; o < kMsSsimLevels; ++o)
      if (o != level) others *= factor[o];
    grad_term[level] =
        grad * kMsSsimWeights[level] * std::pow(terms[level], kMsSsimWeights[level] - 1.0) * others;
  }

  // From the coarsest scale down: each scale's gradient is its pooled share of the coarser
  // scale's gradient plus its own cs term's. Scale 0 writes straight into gx and gy.
  std::array<std::vector<T>, kMsSsimLevels> gx_store, gy_store;
  std::array<T*, kMsSsimLevels> gxl, gyl;
  gxl[0] = gx;
  gyl[0] = gy;
  for (int level = 1; level < kMsSsimLevels; ++level) {
    gx_store[level].resize(pyr.h[level] * pyr.w[level]);
    gy_store[level].resize(pyr.h[level] * pyr.w[level]);
    gxl[level] = gx_store[level].data();
    gyl[level] = gy_store[level].data();
  }
  const int last = kMsSsimLevels - 1;
  plane_backward(pyr.x[last], pyr.y[last], pyr.h[last], pyr.w[last], k, grad_term[last], 0.0,
                 gxl[last], gyl[last], false);
  for (int level = last - 1; level >= 0; --level) {
    pool_plane_backward(gxl[level + 1], pyr.h[level], pyr.w[level], gxl[level]);
    pool_plane_backward(gyl[level + 1], pyr.h[level], pyr.w[level], gyl[level]);
    plane_backward(pyr.x[level], pyr.y[level], pyr.h[level], pyr.w[level], k, 0.0, grad_term[level],
                   gxl[level], gyl[level], true);
  }
}

}  // namespace

template <class T>
void ssim_level_forward(NchwView<const T> x, NchwView<const T> y, double data_range, double* ssim,
                        double* cs) {
  const SsimConstants<T> k(data_range);
  parallel_for(x.n * x.c, [&](int64_t p) {
    const int64_t i = p / x.c, ch = p % x.c;
    plane_forward(x.channel(i, ch), y.channel(i, ch), x.h, x.w, k, ssim[p], cs[p]);
  });
}

template <class T>
void ssim_level_backward(NchwView<const T> x, NchwView<const T> y, double data_range,
                         const double* grad_ssim, const double* grad_cs, NchwView<T> grad_x,
                         NchwView<T> grad_y) {
  const SsimConstants<T> k(data_range);
  parallel_for(x.n * x.c, [&](int64_t p) {
    const int64_t i = p / x.c, ch = p % x.c;
    plane_backward(x.channel(i, ch), y.channel(i, ch), x.h, x.w, k, grad_ssim[p], grad_cs[p],
                   grad_x.channel(i, ch), grad_y.channel(i, ch), false);
  });
}

template <class T>
void avg_pool2x2_padded_forward(NchwView<const T> x, NchwView<T> y) {
  parallel_for(x.n * x.c, [&](int64_t p) {
    const int64_t i = p / x.c, ch = p % x.c;
    pool_plane_forward(x.channel(i, ch), x.h, x.w, y.channel(i, ch));
  });
}

template <class T>
void avg_pool2x2_padded_backward(NchwView<const T> grad_y, NchwView<T> grad_x) {
  parallel_for(grad_x.n * grad_x.c, [&](int64_t p) {
    const int64_t i = p / grad_x.c, ch = p % grad_x.c;
    pool_plane_backward(grad_y.channel(i, ch), grad_x.h, grad_x.w, grad_x.channel(i, ch));
  });
}

template <class T>
double ssim_forward(NchwView<const T> x, NchwView<const T> y, double data_range) {
  const int64_t planes = x.n * x.c;
  std::vector<double> ssim(planes), cs(planes);
  ssim_level_forward<T>(x, y, data_range, ssim.data(), cs.data());
  double total = 0.0;
  for (double v : ssim) total += v;
  return total / static_cast<double>(planes);
}

template <class T>
void ssim_backward(NchwView<const T> x, NchwView<const T> y, double data_range, double grad,
                   NchwView<T> grad_x, NchwView<T> grad_y) {
  const int64_t planes = x.n * x.c;
  const std::vector<double> grad_ssim(planes, grad / static_cast<double>(planes)),
      grad_cs(planes, 0.0);
  ssim_level_backward<T>(x, y, data_range, grad_ssim.data(), grad_cs.data(), grad_x, grad_y);
}

// MS-SSIM is independent per (n, c) plane: one parallel_for job runs a plane's whole pyramid,
// which stays in that thread's cache.
template <class T>
double ms_ssim_forward(NchwView<const T> x, NchwView<const T> y, double data_range) {
  const SsimConstants<T> k(data_range);
  const int64_t planes = x.n * x.c;
  std::vector<double> values(planes);
  parallel_for(planes, [&](int64_t p) {
    const int64_t i = p / x.c, ch = p % x.c;
    const PlanePyramid<T> pyr(x.channel(i, ch), y.channel(i, ch), x.h, x.w);
    values[p] = ms_ssim_value(ms_ssim_terms(pyr, k));
  });
  double total = 0.0;  // fixed order: deterministic for any thread count
  for (double v : values) total += v;
  return total / static_cast<double>(planes);
}

template <class T>
void ms_ssim_backward(NchwView<const T> x, NchwView<const T> y, double data_range, double grad,
                      NchwView<T> grad_x, NchwView<T> grad_y) {
  const SsimConstants<T> k(data_range);
  const int64_t planes = x.n * x.c;
  const double grad_plane = grad / static_cast<double>(planes);
  parallel_for(planes, [&](int64_t p) {
    const int64_t i = p / x.c, ch = p % x.c;
    ms_ssim_plane_backward(x.channel(i, ch), y.channel(i, ch), x.h, x.w, k, grad_plane,
                           grad_x.channel(i, ch), grad_y.channel(i, ch));
  });
}

#define DEBLUR_INSTANTIATE(T)                                                                   \
  template void ssim_level_forward<T>(NchwView<const T>, NchwView<const T>, double, double*,    \
                                      double*);                                                 \
  template void ssim_level_backward<T>(NchwView<const T>, NchwView<const T>, double,            \
                                       const double*, const double*, NchwView<T>, NchwView<T>); \
  template void avg_pool2x2_padded_forward<T>(NchwView<const T>, NchwView<T>);                  \
  template void avg_pool2x2_padded_backward<T>(NchwView<const T>, NchwView<T>);                 \
  template double ssim_forward<T>(NchwView<const T>, NchwView<const T>, double);                \
  template void ssim_backward<T>(NchwView<const T>, NchwView<const T>, double, double,          \
                                 NchwView<T>, NchwView<T>);                                     \
  template double ms_ssim_forward<T>(NchwView<const T>, NchwView<const T>, double);             \
  template void ms_ssim_backward<T>(NchwView<const T>, NchwView<const T>, double, double,       \
                                    NchwView<T>, NchwView<T>);
DEBLUR_INSTANTIATE(float)
DEBLUR_INSTANTIATE(double)
#undef DEBLUR_INSTANTIATE

}  // namespace deblur::cpu
