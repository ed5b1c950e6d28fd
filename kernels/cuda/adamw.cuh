// AdamW with global-norm gradient clipping, CUDA kernels' host launchers: the device twins of
// kernels/cpu/adamw.h, float only, over one contiguous slab (the engine keeps all parameters,
// gradients and moments in slabs, so one launch covers every tensor). The per-element math and
// its PyTorch semantics (torch.optim.AdamW, torch.nn.utils.clip_grad_norm_) are
// kernels/common/adamw.h, shared with the CPU.
//
// A training step is two calls and never synchronises with the host:
//   clip_grad_norm_scale(grads, n, h.max_norm, clip_scale, grad_norm, workspace, stream);
//   adamw_step(params, grads, m, v, n, h, lr, step, clip_scale, stream);
// clip_scale, grad_norm, lr and step are device memory: the scale is produced on the device and
// consumed there, and the trainer updates lr (the cosine schedule) and step (1 for the first)
// with asynchronous copies or kernels of its own, so the loop never waits for a value.
// The squared norm is reduced in double without atomics, in an order fixed by n alone (bitwise
// reproducible), through a caller-provided workspace of clip_grad_norm_workspace_bytes(n) bytes
// (the engine's caching allocator owns it; a launcher never calls cudaMalloc).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/common/adamw.h"
#include "kernels/cuda/launch.cuh"

namespace deblur::cuda {

using common::AdamWHyper;

size_t clip_grad_norm_workspace_bytes(int64_t n);

// *lr = lr_value, *step = step_value on the device, queued on `stream` (no host wait).
void adamw_set_schedule(float* lr, int64_t* step, float lr_value, int64_t step_value,
                        cudaStream_t stream);

// *clip_scale = float(common::clip_grad_scale(||grads[0, n)||^2, max_norm)); *grad_norm = the
// norm as a float, for logging (grad_norm may be null). workspace holds
// clip_grad_norm_workspace_bytes(n) bytes, 16-byte aligned.
void clip_grad_norm_scale(const float* grads, int64_t n, double max_norm, float* clip_scale,
                          float* grad_norm, void* workspace, cudaStream_t stream);

// One AdamW step on params, m, v [0, n) with the gradient grads[i] * *clip_scale (grads is left
// as it is); lr (one float) and step (one int64) are read from device memory, h.lr and
// h.max_norm are not used.
void adamw_step(float* params, const float* grads, float* m, float* v, int64_t n,
                const AdamWHyper& h, const float* lr, const int64_t* step, const float* clip_scale,
                cudaStream_t stream);

}  // namespace deblur::cuda
