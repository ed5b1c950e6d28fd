// Resampling CPU kernels: 2x2 max pooling and bilinear x2 upsampling (semantics in resample.h).
// Work is split over (sample, channel) planes: each plane's outputs, and in the backward each
// plane's input gradients, belong to one thread, so the scatters need no atomics.
#include "kernels/cpu/resample.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/common/bilinear.h"
#include "kernels/cpu/parallel.h"

namespace deblur::cpu {

namespace {
// Offset in the input plane of the maximum of output (oy, ox)'s window, by PyTorch's CPU rule.
template <class T>
int64_t window_argmax(const T* plane, int64_t width, int64_t oy, int64_t ox) {
  const int64_t top = 2 * oy * width + 2 * ox;
  const int64_t window[4] = {top, top + 1, top + width, top + width + 1};
  int64_t best = top;
  T max = -std::numeric_limits<T>::infinity();
  for (int64_t k : window) {
    const T v = plane[k];
    if (v > max || std::isnan(v)) {
      max = v;
      best = k;
    }
  }
  return best;
}

// The running maximum by the same rule, as a value: the forward's form, which vectorises.
template <class T>
T take_max(T max, T v) {
  return v > max || v != v ? v : max;
}

}  // namespace

// The W-axis taps, the same for every row and plane: computed once per call.
template <class T>
std::vector<common::LinearTap<T>> upsample2x_column_taps(int64_t out_w, int64_t in_w) {
  std::vector<common::LinearTap<T>> taps(out_w);
  for (int64_t ox = 0; ox < out_w; ++ox) taps[ox] = common::upsample2x_tap<T>(ox, in_w);
  return taps;
}

template <class T>
void upsample_bilinear2x_row(const T* plane, int64_t in_h, int64_t in_w, int64_t row, T* out) {
  if (in_w == 0) return;
  const auto tap = common::upsample2x_tap<T>(row, in_h);
  const T* r0 = plane + tap.i0 * in_w;
  const T* r1 = plane + tap.i1 * in_w;
  // PyTorch's order: H weights outside, W-weighted sums inside.
  const auto from_taps = [&](int64_t ox) {
    const auto col = common::upsample2x_tap<T>(ox, in_w);
    out[ox] = tap.w0 * (col.w0 * r0[col.i0] + col.w1 * r0[col.i1]) +
              tap.w1 * (col.w0 * r1[col.i0] + col.w1 * r1[col.i1]);
  };
  from_taps(0);
  // Between the borders the W taps are exact constants: output 2k + 1 reads columns k and k + 1
  // with weights 3/4 and 1/4, output 2k + 2 the same columns with 1/4 and 3/4. Written out, the
  // loop vectorises (about 3.7x the tap-table loop, the same values bit for bit).
  const T quarter = T(0.25), three_quarters = T(0.75);
  for (int64_t k = 0; k + 1 < in_w; ++k) {
    out[2 * k + 1] = tap.w0 * (three_quarters * r0[k] + quarter * r0[k + 1]) +
                     tap.w1 * (three_quarters * r1[k] + quarter * r1[k + 1]);
    out[2 * k + 2] = tap.w0 * (quarter * r0[k] + three_quarters * r0[k + 1]) +
                     tap.w1 * (quarter * r1[k] + three_quarters * r1[k + 1]);
  }
  from_taps(2 * in_w - 1);
}

template <class T>
void max_pool2d_2x2_forward(NchwView<const T> x, NchwView<T> y) {
  parallel_for(y.n * y.c, [&](int64_t p) {
    const int64_t i = p / y.c, ch = p % y.c;
    const T* in = x.channel(i, ch);
    T* out = y.channel(i, ch);
    for (int64_t oy = 0; oy < y.h; ++oy) {
      const T* top = in + 2 * oy * x.w;
      const T* bottom = top + x.w;
      T* row = out + oy * y.w;
      // window_argmax's order and rule, on values: the same result bit for bit.
      for (int64_t ox = 0; ox < y.w; ++ox) {
        T max = take_max(-std::numeric_limits<T>::infinity(), top[2 * ox]);
        max = take_max(max, top[2 * ox + 1]);
        max = take_max(max, bottom[2 * ox]);
        row[ox] = take_max(max, bottom[2 * ox + 1]);
      }
    }
  });
}

template <class T>
void max_pool2d_2x2_backward(NchwView<const T> x, NchwView<const T> grad_y, NchwView<T> grad_x) {
  parallel_for(grad_y.n * grad_y.c, [&](int64_t p) {
    const int64_t i = p / grad_y.c, ch = p % grad_y.c;
    const T* in = x.channel(i, ch);
    const T* gy = grad_y.channel(i, ch);
    T* gx = grad_x.channel(i, ch);
    std::fill(gx, gx + grad_x.plane(), T(0));
    // Windows do not overlap, so each input gets at most one gradient: assign.
    for (int64_t oy = 0; oy < grad_y.h; ++oy)
      for (int64_t ox = 0; ox < grad_y.w; ++ox)
        gx[window_argmax(in, x.w, oy, ox)] = gy[oy * grad_y.w + ox];
  });
}

template <class T>
void upsample_bilinear2x_forward(NchwView<const T> x, NchwView<T> y) {
  parallel_for(y.n * y.c, [&](int64_t p) {
    const int64_t i = p / y.c, ch = p % y.c;
    T* out = y.channel(i, ch);
    for (int64_t oy = 0; oy < y.h; ++oy)
      upsample_bilinear2x_row(x.channel(i, ch), x.h, x.w, oy, out + oy * y.w);
  });
}

template <class T>
void upsample_bilinear2x_backward(NchwView<const T> grad_y, NchwView<T> grad_x) {
  const auto cols = upsample2x_column_taps<T>(grad_y.w, grad_x.w);
  parallel_for(grad_x.n * grad_x.c, [&](int64_t p) {
    const int64_t i = p / grad_x.c, ch = p % grad_x.c;
    const T* gy = grad_y.channel(i, ch);
    T* gx = grad_x.channel(i, ch);
    std::fill(gx, gx + grad_x.plane(), T(0));
    for (int64_t oy = 0; oy < grad_y.h; ++oy) {
      const auto row = common::upsample2x_tap<T>(oy, grad_x.h);
      T* g0 = gx + row.i0 * grad_x.w;
      T* g1 = gx + row.i1 * grad_x.w;
      const T* g = gy + oy * grad_y.w;
      for (int64_t ox = 0; ox < grad_y.w; ++ox) {
        const auto& col = cols[ox];
        g0[col.i0] += row.w0 * col.w0 * g[ox];
        g0[col.i1] += row.w0 * col.w1 * g[ox];
        g1[col.i0] += row.w1 * col.w0 * g[ox];
        g1[col.i1] += row.w1 * col.w1 * g[ox];
      }
    }
  });
}

#define DEBLUR_INSTANTIATE(T)                                                                  \
  template void max_pool2d_2x2_forward<T>(NchwView<const T>, NchwView<T>);                     \
  template void max_pool2d_2x2_backward<T>(NchwView<const T>, NchwView<const T>, NchwView<T>); \
  template void upsample_bilinear2x_forward<T>(NchwView<const T>, NchwView<T>);                \
  template std::vector<common::LinearTap<T>> upsample2x_column_taps<T>(int64_t, int64_t);      \
  template void upsample_bilinear2x_row<T>(const T*, int64_t, int64_t, int64_t, T*);         \
  template void upsample_bilinear2x_backward<T>(NchwView<const T>, NchwView<T>);
DEBLUR_INSTANTIATE(float)
DEBLUR_INSTANTIATE(double)
#undef DEBLUR_INSTANTIATE

}  // namespace deblur::cpu
