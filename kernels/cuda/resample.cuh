// Resampling CUDA kernels' host launchers: the device twins of kernels/cpu/resample.h, with its
// semantics (PyTorch's) and argument order, float only, plus the stream they run on.
//   max_pool2d_2x2: F.max_pool2d(x, 2): y is [N, C, H/2, W/2], an odd trailing row or column is
//     dropped (gradient 0). The window's maximum is picked by PyTorch's CPU rule, as the CPU twin
//     does (row-major scan, `v > max || isnan(v)`: the first maximum wins ties, a NaN wins), and
//     the backward recomputes it from x, so both backends route each dy to the same element.
//   upsample_bilinear2x: F.interpolate(x, scale_factor=2, mode="bilinear",
//     align_corners=False): y is [N, C, 2H, 2W], taps from kernels/common/bilinear.h.
// Views may be channel slices (batch_stride > C*H*W). Backward kernels assign (=) every element
// of their output, including those no output reads.
#pragma once

#include "kernels/cuda/launch.cuh"
#include "kernels/cpu/nchw.h"

namespace deblur::cuda {

void max_pool2d_2x2_forward(cpu::NchwView<const float> x, cpu::NchwView<float> y,
                            cudaStream_t stream);
void max_pool2d_2x2_backward(cpu::NchwView<const float> x, cpu::NchwView<const float> grad_y,
                             cpu::NchwView<float> grad_x, cudaStream_t stream);

void upsample_bilinear2x_forward(cpu::NchwView<const float> x, cpu::NchwView<float> y,
                                 cudaStream_t stream);
void upsample_bilinear2x_backward(cpu::NchwView<const float> grad_y, cpu::NchwView<float> grad_x,
                                  cudaStream_t stream);

}  // namespace deblur::cuda
