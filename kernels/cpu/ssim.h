// SSIM and MS-SSIM CPU kernels, forward and backward, float and double: the pytorch_msssim
// 1.0.0 semantics are written at the top of kernels/cpu/ssim.cpp.
//
// Per-(n, c) arrays (ssim, cs and their gradients) hold n * c values, index i * C + ch.
// Backward kernels assign (=) grad_x and grad_y; they recompute the filtered statistics (and
// the MS-SSIM pyramid) from x and y rather than keep per-pixel maps from the forward.
// Every view has H, W >= 11 (the valid window); ms_ssim_* need min(H, W) > 160.
#pragma once

#include <cstdint>

#include "kernels/cpu/nchw.h"

namespace deblur::cpu {

inline constexpr int kMsSsimLevels = 5;
inline constexpr double kMsSsimWeights[kMsSsimLevels] = {0.0448, 0.2856, 0.3001, 0.2363, 0.1333};

// One scale: per-(n, c) means of ssim_map and cs_map, accumulated in double.
template <class T>
void ssim_level_forward(NchwView<const T> x, NchwView<const T> y, double data_range, double* ssim,
                        double* cs);
// dL/dx and dL/dy of one scale given dL/dssim and dL/dcs per (n, c).
template <class T>
void ssim_level_backward(NchwView<const T> x, NchwView<const T> y, double data_range,
                         const double* grad_ssim, const double* grad_cs, NchwView<T> grad_x,
                         NchwView<T> grad_y);

// avg_pool2d(kernel 2, stride 2, padding size % 2, count_include_pad=True) along one side.
inline int64_t avg_pool_padded_size(int64_t size) {
  return size / 2 + size % 2;
}
// y has H and W equal to avg_pool_padded_size of x's.
template <class T>
void avg_pool2x2_padded_forward(NchwView<const T> x, NchwView<T> y);
template <class T>
void avg_pool2x2_padded_backward(NchwView<const T> grad_y, NchwView<T> grad_x);

// Mean over (n, c) of the per-channel SSIM (no relu).
template <class T>
double ssim_forward(NchwView<const T> x, NchwView<const T> y, double data_range);
// grad is dL/d(ssim value).
template <class T>
void ssim_backward(NchwView<const T> x, NchwView<const T> y, double data_range, double grad,
                   NchwView<T> grad_x, NchwView<T> grad_y);

// Mean over (n, c) of the 5-scale MS-SSIM.
template <class T>
double ms_ssim_forward(NchwView<const T> x, NchwView<const T> y, double data_range);
// grad is dL/d(ms_ssim value).
template <class T>
void ms_ssim_backward(NchwView<const T> x, NchwView<const T> y, double data_range, double grad,
                      NchwView<T> grad_x, NchwView<T> grad_y);

}  // namespace deblur::cpu
