// GroupNorm (optionally fused with the ReLU after it) CUDA kernels' host launchers: the device
// twins of kernels/cpu/group_norm.h, with its semantics (PyTorch's) and argument order, float
// only, plus a workspace and the stream they run on.
//
// PyTorch semantics (nn.GroupNorm(groups, C, eps) then F.relu): for each sample and each of
// `groups` groups of C/groups consecutive channels, mean and biased variance over the group's
// (C/groups)*H*W values; z = (x - mean) / sqrt(var + eps) * gamma[c] + beta[c];
// y = relu ? max(z, 0) : z (NaN passes). The backward masks dy by y > 0 when relu.
//
// Gradient rules: grad_x is assigned (=); grad_gamma and grad_beta accumulate (+=). Every
// reduction runs in an order fixed by the shapes alone (no atomics): bitwise reproducible.
// The statistics and gradient sums are split over many blocks whose partial sums go through a
// caller-provided device workspace of group_norm_workspace_bytes(x, groups) bytes (enough for
// both passes; the engine's caching allocator owns it, a launcher never calls cudaMalloc).
// Views may be channel slices (batch_stride > C*H*W).
#pragma once

#include <cstddef>

#include "kernels/cuda/launch.cuh"
#include "kernels/cpu/nchw.h"

namespace deblur::cuda {

// The workspace both group_norm_forward and group_norm_backward need for x's shape, in bytes.
size_t group_norm_workspace_bytes(cpu::NchwView<const float> x, int groups);

// mean and rstd (1/sqrt(var + eps)) receive N*groups values each, for the backward; workspace
// holds group_norm_workspace_bytes(x, groups) bytes, 16-byte aligned.
void group_norm_forward(cpu::NchwView<const float> x, const float* gamma, const float* beta,
                        int groups, float eps, bool relu, cpu::NchwView<float> y, float* mean,
                        float* rstd, void* workspace, cudaStream_t stream);

// y is the forward output (only read when relu: it gives the mask); grad_gamma and grad_beta
// may be null.
void group_norm_backward(cpu::NchwView<const float> x, cpu::NchwView<const float> y,
                         const float* gamma, const float* mean, const float* rstd, int groups,
                         bool relu, cpu::NchwView<const float> grad_y, cpu::NchwView<float> grad_x,
                         float* grad_gamma, float* grad_beta, void* workspace, cudaStream_t stream);

}  // namespace deblur::cuda
