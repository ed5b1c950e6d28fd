// Channel concat CUDA kernel's host launcher: the device twin of kernels/cpu/concat.h, with its
// semantics (PyTorch's) and argument order, float only, plus the stream it runs on.
//   concat_forward: torch.cat([a, b], dim=1): y[:, :Ca] = a, y[:, Ca:] = b, with a [N, Ca, H, W],
//     b [N, Cb, H, W], y [N, Ca + Cb, H, W].
// No backward kernel: the gradients of a and b are the channel ranges of dy, which the engine
// hands on as zero-copy channel-slice views.
// Views may be channel slices (batch_stride > C*H*W); y must not overlap a or b.
#pragma once

#include "kernels/cpu/nchw.h"
#include "kernels/cuda/launch.cuh"

namespace deblur::cuda {

void concat_forward(cpu::NchwView<const float> a, cpu::NchwView<const float> b,
                    cpu::NchwView<float> y, cudaStream_t stream);

}  // namespace deblur::cuda
