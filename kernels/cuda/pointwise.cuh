// Pointwise CUDA kernels' host launchers: the device twins of kernels/cpu/pointwise.h, with the
// same semantics (PyTorch's) and argument order, float only, plus the stream they run on.
//   relu:  y = max(x, 0), NaN kept; dx = dy where y > 0
//   add:   y = a + b
//   scale: y = factor * x + shift
//   clamp: y = min(max(x, lo), hi); dx = dy where lo <= x <= hi
//   sum:   *out (one device float) = the sum of all elements, reduced in float per block and
//          across blocks with atomics (the CPU twin accumulates in double; the order of the
//          atomics, and so the last bits, vary from run to run on the GPU)
//   fill:  y = value
//   accumulate: dst += src
//   lerp:  y += weight * (x - y)
// Views may be channel slices (batch_stride > C*H*W) and in-place (y aliasing x) calls work.
// Backward kernels assign (=) their outputs.
#pragma once

#include "kernels/cuda/launch.cuh"
#include "kernels/cpu/nchw.h"

namespace deblur::cuda {

void relu_forward(cpu::NchwView<const float> x, cpu::NchwView<float> y, cudaStream_t stream);
void relu_backward(cpu::NchwView<const float> y, cpu::NchwView<const float> grad_y,
                   cpu::NchwView<float> grad_x, cudaStream_t stream);

void add_forward(cpu::NchwView<const float> a, cpu::NchwView<const float> b, cpu::NchwView<float> y,
                 cudaStream_t stream);
void scale_forward(cpu::NchwView<const float> x, float factor, float shift, cpu::NchwView<float> y,
                   cudaStream_t stream);
void clamp_forward(cpu::NchwView<const float> x, float lo, float hi, cpu::NchwView<float> y,
                   cudaStream_t stream);
void clamp_backward(cpu::NchwView<const float> x, float lo, float hi,
                    cpu::NchwView<const float> grad_y, cpu::NchwView<float> grad_x,
                    cudaStream_t stream);
void sum(cpu::NchwView<const float> x, float* out, cudaStream_t stream);
void fill(cpu::NchwView<float> y, float value, cudaStream_t stream);
void accumulate(cpu::NchwView<float> dst, cpu::NchwView<const float> src, cudaStream_t stream);
void lerp(cpu::NchwView<float> y, cpu::NchwView<const float> x, float weight, cudaStream_t stream);

}  // namespace deblur::cuda
