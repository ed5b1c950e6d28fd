// 2-D convolution CUDA kernels' host launchers: the device twins of kernels/cpu/conv2d.h, with
// its semantics (PyTorch's) and argument order, float only, plus the stream they run on.
//
// PyTorch semantics (F.conv2d): cross-correlation, stride 1, dilation 1, zero padding k/2 on
// every side (H and W are preserved), weight OIHW [O, I, k, k] with k = 1 or 3, optional bias
// [O]: y[n,o,i,j] = b[o] + sum_{c,u,v} w[o,c,u,v] * x[n,c,i+u-k/2,j+v-k/2].
//
// Gradient rules: conv2d_backward_input assigns (=) grad_x; conv2d_backward_params accumulates
// (+=) into grad_weight and grad_bias, as parameter gradients do. The parameter gradients are
// reduced over the batch and the pixels without atomics, in an order fixed by the shapes alone,
// so they are bitwise reproducible run to run. That reduction goes through a caller-provided
// device workspace of conv2d_backward_params_workspace_bytes(...) bytes (the engine's caching
// allocator owns it; a launcher never calls cudaMalloc).
// Views may be channel slices (batch_stride > C*H*W); x and y must not overlap.
#pragma once

#include <cstddef>

#include "kernels/cuda/launch.cuh"
#include "kernels/cpu/nchw.h"

namespace deblur::cuda {

// y.c is the number of output channels; bias may be null.
void conv2d_forward(cpu::NchwView<const float> x, const float* weight, const float* bias,
                    int kernel, cpu::NchwView<float> y, cudaStream_t stream);

void conv2d_backward_input(cpu::NchwView<const float> grad_y, const float* weight, int kernel,
                           cpu::NchwView<float> grad_x, cudaStream_t stream);

size_t conv2d_backward_params_workspace_bytes(cpu::NchwView<const float> x,
                                              cpu::NchwView<const float> grad_y, int kernel);

// grad_weight and grad_bias may each be null; workspace holds at least
// conv2d_backward_params_workspace_bytes(x, grad_y, kernel) bytes, 16-byte aligned.
void conv2d_backward_params(cpu::NchwView<const float> x, cpu::NchwView<const float> grad_y,
                            int kernel, float* grad_weight, float* grad_bias, void* workspace,
                            cudaStream_t stream);

// Upsample-conv: y = conv2d(upsample_bilinear2x(x_low), w) + b, with PyTorch's
// F.interpolate(x_low, scale_factor=2, mode="bilinear", align_corners=False) (border clamp) as
// the convolution's input, 3x3 only: x_low [N, I, h, w], y [N, O, 2h, 2w]. The forward and the
// parameter gradients interpolate x_low while loading their input tiles (the upsampled tensor is
// never stored); same gradient rules and determinism as above.
void upsample_conv2d_forward(cpu::NchwView<const float> x_low, const float* weight,
                             const float* bias, int kernel, cpu::NchwView<float> y,
                             cudaStream_t stream);

// grad_x_low = upsample_bilinear2x_backward(conv2d_backward_input(grad_y)), assigned (=). The
// full-resolution [N, I, 2h, 2w] input gradient goes through `workspace` (at least
// upsample_conv2d_backward_input_workspace_bytes(grad_y, I) bytes, 16-byte aligned; free it once
// the call's work is done): the upsample's adjoint gathers rows 2i-1..2i+2, across the
// convolution's pixel tiles, so it is a second pass over that transient buffer.
size_t upsample_conv2d_backward_input_workspace_bytes(cpu::NchwView<const float> grad_y,
                                                      int64_t in_channels);
void upsample_conv2d_backward_input(cpu::NchwView<const float> grad_y, const float* weight,
                                    int kernel, cpu::NchwView<float> grad_x_low, void* workspace,
                                    cudaStream_t stream);

size_t upsample_conv2d_backward_params_workspace_bytes(cpu::NchwView<const float> x_low,
                                                       cpu::NchwView<const float> grad_y,
                                                       int kernel);
// As conv2d_backward_params, for the upsample-conv: grad_y is [N, O, 2h, 2w], x_low [N, I, h, w].
void upsample_conv2d_backward_params(cpu::NchwView<const float> x_low,
                                     cpu::NchwView<const float> grad_y, int kernel,
                                     float* grad_weight, float* grad_bias, void* workspace,
                                     cudaStream_t stream);

}  // namespace deblur::cuda
