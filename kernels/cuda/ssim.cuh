// SSIM and MS-SSIM CUDA kernels' host launchers: the device twins of kernels/cpu/ssim.h, with its
// semantics (pytorch_msssim 1.0.0, written out at the top of kernels/cpu/ssim.cpp) and argument
// order, float only, plus a workspace and the stream.
//
// In short: per channel, an 11-tap sigma 1.5 Gaussian applied separably (along H, then W) and
// "valid" (an H x W plane gives (H - 10) x (W - 10) maps) to X, Y, X^2, Y^2 and XY;
// cs_map = (2 sigma_xy + C2) / (sigma_x^2 + sigma_y^2 + C2), ssim_map = l_map * cs_map with
// C1 = (0.01 data_range)^2, C2 = (0.03 data_range)^2. ssim is the mean over (n, c) of the
// per-channel mean of ssim_map (no relu). ms_ssim: 5 scales weighted 0.0448, 0.2856, 0.3001,
// 0.2363, 0.1333, relu(cs) at scales 0..3 and relu(ssim) at scale 4, 2x2 average pooling between
// scales with padding (H % 2, W % 2) and count_include_pad (every window divides by 4).
//
// Reductions are deterministic: each block of the statistics kernel writes its partial sums (in
// double) to the workspace, and one block per (n, c) adds them in an order fixed by the shape.
// No float atomics anywhere: the same inputs give the same bits on every run.
//
// Results stay on the device: ssim_forward and ms_ssim_forward write one float to *out, with no
// host synchronisation. The backward launchers take the scalar's gradient as a host double (the
// engine reads it with item(), as the pixel losses do) and assign (=) grad_x and grad_y; like the
// CPU twin they recompute the statistics (and the pyramid) from x and y.
//
// Per-(n, c) arrays (ssim, cs and their gradients) are device doubles, n * c values, index
// i * C + ch. Every view has H, W >= 11; ms_ssim_* need min(H, W) >= 161. Views may be channel
// slices (batch_stride > C*H*W). The workspace (from the engine's caching allocator: a launcher
// never calls cudaMalloc) holds ssim_workspace_bytes(x) or ms_ssim_workspace_bytes(x) bytes,
// 16-byte aligned; one size serves the forward and the backward.
#pragma once

#include <cstddef>

#include "kernels/cpu/nchw.h"
#include "kernels/cuda/launch.cuh"

namespace deblur::cuda {

// The workspace ssim_level_*, ssim_forward and ssim_backward need for x's shape, in bytes.
size_t ssim_workspace_bytes(cpu::NchwView<const float> x);
// The workspace ms_ssim_forward and ms_ssim_backward need for x's shape, in bytes.
size_t ms_ssim_workspace_bytes(cpu::NchwView<const float> x);

// One scale: per-(n, c) means of ssim_map and cs_map into the device arrays ssim and cs.
void ssim_level_forward(cpu::NchwView<const float> x, cpu::NchwView<const float> y,
                        double data_range, double* ssim, double* cs, void* workspace,
                        cudaStream_t stream);
// dL/dx and dL/dy of one scale given the device arrays dL/dssim and dL/dcs per (n, c).
void ssim_level_backward(cpu::NchwView<const float> x, cpu::NchwView<const float> y,
                         double data_range, const double* grad_ssim, const double* grad_cs,
                         cpu::NchwView<float> grad_x, cpu::NchwView<float> grad_y, void* workspace,
                         cudaStream_t stream);

// avg_pool2d(kernel 2, stride 2, padding size % 2, count_include_pad=True); y's sides are
// cpu::avg_pool_padded_size of x's. The backward assigns grad_x.
void avg_pool2x2_padded_forward(cpu::NchwView<const float> x, cpu::NchwView<float> y,
                                cudaStream_t stream);
void avg_pool2x2_padded_backward(cpu::NchwView<const float> grad_y, cpu::NchwView<float> grad_x,
                                 cudaStream_t stream);

// *out = the mean over (n, c) of the per-channel SSIM.
void ssim_forward(cpu::NchwView<const float> x, cpu::NchwView<const float> y, double data_range,
                  float* out, void* workspace, cudaStream_t stream);
// grad is dL/d(ssim value).
void ssim_backward(cpu::NchwView<const float> x, cpu::NchwView<const float> y, double data_range,
                   double grad, cpu::NchwView<float> grad_x, cpu::NchwView<float> grad_y,
                   void* workspace, cudaStream_t stream);

// *out = the mean over (n, c) of the 5-scale MS-SSIM.
void ms_ssim_forward(cpu::NchwView<const float> x, cpu::NchwView<const float> y, double data_range,
                     float* out, void* workspace, cudaStream_t stream);
// grad is dL/d(ms_ssim value).
void ms_ssim_backward(cpu::NchwView<const float> x, cpu::NchwView<const float> y, double data_range,
                      double grad, cpu::NchwView<float> grad_x, cpu::NchwView<float> grad_y,
                      void* workspace, cudaStream_t stream);

}  // namespace deblur::cuda
