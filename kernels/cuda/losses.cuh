// Pixel loss CUDA kernels' host launchers: the device twins of kernels/cpu/losses.h, with its
// semantics (PyTorch's) and argument order, float only, plus a workspace and the stream.
//
// PyTorch semantics, with d = pred - target:
//   charbonnier: mean(sqrt(d^2 + eps^2)) (the seed's loss, eps 1e-3); d loss / d d =
//     d / sqrt(d^2 + eps^2) / numel
//   l1:          F.l1_loss(pred, target) = mean(|d|); d loss / d d = sign(d) / numel, 0 at
//     d == 0 and at NaN (as torch.sign gives 0 there)
// The *_sum launchers write the SUM over all elements to *out (one device float; the op divides
// by numel). Deterministic: each block writes its partial sum to a caller-provided workspace of
// loss_sum_workspace_bytes(pred) bytes (the engine's caching allocator owns it; a launcher never
// calls cudaMalloc), then one block adds the partials in double in a fixed order, so the result
// depends on the shape alone, never on scheduling. The result stays on the device: no host
// synchronisation.
// The backward launchers take scale = dL/dloss / numel and assign (=) grad_pred =
// scale * dloss/dd and, in the same pass, grad_target = -grad_pred; grad_target may be an empty
// view (data null) when not needed.
// Views may be channel slices (batch_stride > C*H*W).
#pragma once

#include <cstddef>

#include "kernels/cpu/nchw.h"
#include "kernels/cuda/launch.cuh"

namespace deblur::cuda {

// The workspace charbonnier_sum and l1_sum need for pred's shape, in bytes.
size_t loss_sum_workspace_bytes(cpu::NchwView<const float> pred);

void charbonnier_sum(cpu::NchwView<const float> pred, cpu::NchwView<const float> target, float eps,
                     float* out, void* workspace, cudaStream_t stream);
void charbonnier_backward(cpu::NchwView<const float> pred, cpu::NchwView<const float> target,
                          float eps, float scale, cpu::NchwView<float> grad_pred,
                          cpu::NchwView<float> grad_target, cudaStream_t stream);

void l1_sum(cpu::NchwView<const float> pred, cpu::NchwView<const float> target, float* out,
            void* workspace, cudaStream_t stream);
void l1_backward(cpu::NchwView<const float> pred, cpu::NchwView<const float> target, float scale,
                 cpu::NchwView<float> grad_pred, cpu::NchwView<float> grad_target,
                 cudaStream_t stream);

}  // namespace deblur::cuda
