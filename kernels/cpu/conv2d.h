// 2-D convolution on the CPU, forward and backward, float and double.
//
// PyTorch semantics (F.conv2d): cross-correlation, stride 1, dilation 1, zero padding k/2 on
// every side (so H and W are preserved), weight OIHW [O, I, k, k] with k = 1 or 3, optional bias
// [O]: y[n,o,i,j] = b[o] + sum_{c,u,v} w[o,c,u,v] * x[n,c,i+u-k/2,j+v-k/2].
//
// Gradient rules: conv2d_backward_input assigns (=) grad_x; conv2d_backward_params accumulates
// (+=) into grad_weight and grad_bias, as parameter gradients do.
#pragma once

#include "kernels/cpu/nchw.h"

namespace deblur::cpu {

// y.c is the number of output channels; bias may be null. In float, 3x3 convolutions of at
// least kWinogradMinChannels input channels, kWinogradMinPixels pixels over the batch and at
// most kWinogradMaxChannelProduct input x output channels go through Winograd F(4x4, 3x3),
// their weights transformed on every call (training's forward and, through it,
// conv2d_backward_input); the rest, and double, are direct sums. Measured at the training
// batch (4 x 256x256, 2 threads, the transform included): 0.39-0.52x the direct kernel's time
// from 16 channels and 64x64 pixels a sample, 0.46x at 256->256 channels of 32x32 and 0.44x
// at 512->256; 512->512 of 16x16 only breaks even (38 MB of transformed weights made a call).
template <class T>
void conv2d_forward(NchwView<const T> x, const T* weight, const T* bias, int kernel, NchwView<T> y);

// The forward where no gradient follows (inference): 3x3 convolutions with at least
// kWinogradMinChannels input channels go through Winograd F(4x4, 3x3) (4x fewer multiplications;
// float error a few 1e-5 of the output's scale instead of ~1e-6), the rest as conv2d_forward.
// From 16 input channels Winograd is faster (32->32 at 512x512: 0.57x the direct kernel's
// time; 16->16: 0.65x); the first layer's 3 channels, padded to a vector, are not
// (deblur_bench_cpu, conv/infer_1x512/*/forward_inference against */forward_direct:
// docs/benchmarks.md).
constexpr int64_t kWinogradMinChannels = 16;
constexpr int64_t kWinogradMinPixels = 4096;
constexpr int64_t kWinogradMaxChannelProduct = 512 * 256;
void conv2d_forward_inference(NchwView<const float> x, const float* weight, const float* bias,
                              int kernel, NchwView<float> y);
// conv2d_forward_inference of upsample_bilinear2x_forward(x_low) (y is 2x x_low's height and
// width), the same values bit for bit. Through Winograd the upsampled input is never stored:
// the band packing upsamples each row it packs. Below Winograd's threshold it is upsampled
// into a temporary first.
void conv2d_forward_inference_upsampled(NchwView<const float> x_low, const float* weight,
                                        const float* bias, int kernel, NchwView<float> y);

template <class T>
void conv2d_backward_input(NchwView<const T> grad_y, const T* weight, int kernel,
                           NchwView<T> grad_x);

// grad_weight and grad_bias may each be null.
template <class T>
void conv2d_backward_params(NchwView<const T> x, NchwView<const T> grad_y, int kernel,
                            T* grad_weight, T* grad_bias);

}  // namespace deblur::cpu
