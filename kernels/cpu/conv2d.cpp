// CPU convolution. float32 runs the kernels of conv2d_blocked.h (the widest instruction set the
// CPU has): Winograd where conv2d.h's rules say it pays, else the register-blocked direct
// kernel; double, which the gradchecks use, runs the direct loops below, which are also the
// reference those kernels are tested against.
//
// Direct convolution, with no im2col buffer: the forward keeps a block of output rows for
// several output channels in a small accumulator and streams each input row past it, so every
// input row loaded is used by kOutBlock channels and 9 taps; the inner loop runs along a row and
// vectorises. The input gradient is the same convolution with the weights transposed and
// flipped (exact for stride 1 and "same" padding with odd k).
#include "kernels/cpu/conv2d.h"

#include <algorithm>
#include <type_traits>
#include <vector>

#include "kernels/cpu/conv2d_blocked.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/resample.h"

namespace deblur::cpu {

namespace {
constexpr int64_t kOutBlock = 8;  // output channels sharing one pass over the input rows

// acc[x] += w * in[x + shift] for the x where x + shift lies inside the row.
template <class T>
inline void axpy_shifted(T* acc, const T* in, T w, int64_t width, int64_t shift) {
  const int64_t begin = std::max<int64_t>(0, -shift);
  const int64_t end = std::min<int64_t>(width, width - shift);
  const T* src = in + shift;
  for (int64_t x = begin; x < end; ++x) acc[x] += w * src[x];
}

// sum over x of a[x] * in[x + shift], for x + shift inside the row.
template <class T>
inline T dot_shifted(const T* a, const T* in, int64_t width, int64_t shift) {
  const int64_t begin = std::max<int64_t>(0, -shift);
  const int64_t end = std::min<int64_t>(width, width - shift);
  const T* src = in + shift;
  T s = 0;
  for (int64_t x = begin; x < end; ++x) s += a[x] * src[x];
  return s;
}

template <class T>
void direct_forward(NchwView<const T> x, const T* weight, const T* bias, int kernel,
                    NchwView<T> y) {
  const int64_t in_c = x.c, out_c = y.c, height = x.h, width = x.w;
  const int64_t taps = int64_t(kernel) * kernel, pad = kernel / 2;
  const int64_t blocks = (out_c + kOutBlock - 1) / kOutBlock;
  parallel_for(x.n * blocks * height, [&](int64_t job) {
    const int64_t row = job % height;
    const int64_t o0 = (job / height) % blocks * kOutBlock;
    const int64_t n = job / (height * blocks);
    const int64_t count = std::min(kOutBlock, out_c - o0);
    thread_local std::vector<T> scratch;
    scratch.resize(size_t(count * width));
    T* rows[kOutBlock];
    for (int64_t b = 0; b < count; ++b) {
      rows[b] = scratch.data() + b * width;
      std::fill(rows[b], rows[b] + width, bias ? bias[o0 + b] : T(0));
    }
    for (int64_t c = 0; c < in_c; ++c) {
      const T* plane = x.channel(n, c);
      for (int64_t u = 0; u < kernel; ++u) {
        const int64_t in_row = row + u - pad;
        if (in_row < 0 || in_row >= height) continue;
        const T* src = plane + in_row * width;
        for (int64_t v = 0; v < kernel; ++v) {
          const T* w = weight + (o0 * in_c + c) * taps + u * kernel + v;
          for (int64_t b = 0; b < count; ++b)
            axpy_shifted(rows[b], src, w[b * in_c * taps], width, v - pad);
        }
      }
    }
    for (int64_t b = 0; b < count; ++b)
      std::copy(rows[b], rows[b] + width, y.channel(n, o0 + b) + row * width);
  });
}

// grad_weight += the direct sums; one job per (o, c) owns grad_weight[o, c, :, :].
template <class T>
void direct_backward_weight(NchwView<const T> x, NchwView<const T> grad_y, int kernel,
                            T* grad_weight) {
  const int64_t in_c = x.c, out_c = grad_y.c, height = x.h, width = x.w;
  const int64_t taps = int64_t(kernel) * kernel, pad = kernel / 2;
  parallel_for(out_c * in_c, [&](int64_t job) {
    const int64_t o = job / in_c, c = job % in_c;
    double sums[9] = {};  // per tap; row partial sums in T, totals in double
    for (int64_t n = 0; n < x.n; ++n) {
      const T* gy_plane = grad_y.channel(n, o);
      const T* x_plane = x.channel(n, c);
      for (int64_t row = 0; row < height; ++row) {
        const T* gy = gy_plane + row * width;
        for (int64_t u = 0; u < kernel; ++u) {
          const int64_t in_row = row + u - pad;
          if (in_row < 0 || in_row >= height) continue;
          const T* src = x_plane + in_row * width;
          for (int64_t v = 0; v < kernel; ++v)
            sums[u * kernel + v] += dot_shifted(gy, src, width, v - pad);
        }
      }
    }
    T* gw = grad_weight + (o * in_c + c) * taps;
    for (int64_t t = 0; t < taps; ++t) gw[t] += T(sums[t]);
  });
}
}  // namespace

template <class T>
void conv2d_forward(NchwView<const T> x, const T* weight, const T* bias, int kernel,
                    NchwView<T> y) {
  if constexpr (std::is_same_v<T, float>) {
    if (kernel == 3 && x.c >= kWinogradMinChannels && x.n * x.h * x.w >= kWinogradMinPixels &&
        x.c * y.c <= kWinogradMaxChannelProduct)
      active_conv2d_isa().forward_winograd(x, weight, bias, y, /*upsample=*/false,
                                           /*cache_weights=*/false);
    else
      active_conv2d_isa().forward(x, weight, bias, kernel, y);
  } else {
    direct_forward(x, weight, bias, kernel, y);
  }
}

void conv2d_forward_inference(NchwView<const float> x, const float* weight, const float* bias,
                              int kernel, NchwView<float> y) {
  if (kernel == 3 && x.c >= kWinogradMinChannels)
    active_conv2d_isa().forward_winograd(x, weight, bias, y, /*upsample=*/false,
                                         /*cache_weights=*/true);
  else
    conv2d_forward<float>(x, weight, bias, kernel, y);
}

void conv2d_forward_inference_upsampled(NchwView<const float> x_low, const float* weight,
                                        const float* bias, int kernel, NchwView<float> y) {
  if (kernel == 3 && x_low.c >= kWinogradMinChannels) {
    active_conv2d_isa().forward_winograd(x_low, weight, bias, y, /*upsample=*/true,
                                         /*cache_weights=*/true);
    return;
  }
  std::vector<float> up(size_t(x_low.n * x_low.c * y.h * y.w));
  const auto up_view = contiguous_view<float>(up.data(), x_low.n, x_low.c, y.h, y.w);
  upsample_bilinear2x_forward<float>(x_low, up_view);
  conv2d_forward_inference(up_view, weight, bias, kernel, y);
}

template <class T>
void conv2d_backward_input(NchwView<const T> grad_y, const T* weight, int kernel,
                           NchwView<T> grad_x) {
  const int64_t out_c = grad_y.c, in_c = grad_x.c, taps = int64_t(kernel) * kernel;
  // flipped[c][o][u][v] = weight[o][c][k-1-u][k-1-v]
  std::vector<T> flipped(size_t(out_c * in_c * taps));
  for (int64_t o = 0; o < out_c; ++o)
    for (int64_t c = 0; c < in_c; ++c)
      for (int64_t t = 0; t < taps; ++t)
        flipped[(c * out_c + o) * taps + (taps - 1 - t)] = weight[(o * in_c + c) * taps + t];
  conv2d_forward<T>(grad_y, flipped.data(), nullptr, kernel, grad_x);
}

template <class T>
void conv2d_backward_params(NchwView<const T> x, NchwView<const T> grad_y, int kernel,
                            T* grad_weight, T* grad_bias) {
  if (grad_weight) {
    if constexpr (std::is_same_v<T, float>)
      active_conv2d_isa().backward_weight(x, grad_y, kernel, grad_weight);
    else
      direct_backward_weight(x, grad_y, kernel, grad_weight);
  }
  if (!grad_bias) return;
  parallel_for(grad_y.c, [&](int64_t o) {
    double s = 0;
    for (int64_t n = 0; n < grad_y.n; ++n) {
      const T* gy = grad_y.channel(n, o);
      for (int64_t i = 0; i < grad_y.plane(); ++i) s += gy[i];
    }
    grad_bias[o] += T(s);
  });
}

#define DEBLUR_INSTANTIATE(T)                                                               \
  template void conv2d_forward<T>(NchwView<const T>, const T*, const T*, int, NchwView<T>); \
  template void conv2d_backward_input<T>(NchwView<const T>, const T*, int, NchwView<T>);    \
  template void conv2d_backward_params<T>(NchwView<const T>, NchwView<const T>, int, T*, T*);
DEBLUR_INSTANTIATE(float)
DEBLUR_INSTANTIATE(double)
#undef DEBLUR_INSTANTIATE

}  // namespace deblur::cpu
