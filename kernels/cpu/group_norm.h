// GroupNorm (optionally fused with the ReLU after it) on the CPU, forward and backward.
//
// PyTorch semantics (nn.GroupNorm(groups, C, eps=1e-5) then F.relu): for each sample and each
// of `groups` groups of C/groups consecutive channels, mean and biased variance over the
// group's (C/groups)*H*W values; z = (x - mean) / sqrt(var + eps) * gamma[c] + beta[c];
// y = relu ? max(z, 0) : z.
//
// Gradient rules: grad_x is assigned (=); grad_gamma and grad_beta accumulate (+=).
#pragma once

#include "kernels/cpu/nchw.h"

namespace deblur::cpu {

// mean and rstd (1/sqrt(var + eps)) receive N*groups values each, for the backward.
template <class T>
void group_norm_forward(NchwView<const T> x, const T* gamma, const T* beta, int groups, T eps,
                        bool relu, NchwView<T> y, T* mean, T* rstd);

// y is the forward output (only read when relu: it gives the mask); grad_gamma and grad_beta
// may be null.
template <class T>
void group_norm_backward(NchwView<const T> x, NchwView<const T> y, const T* gamma, const T* mean,
                         const T* rstd, int groups, bool relu, NchwView<const T> grad_y,
                         NchwView<T> grad_x, T* grad_gamma, T* grad_beta);

}  // namespace deblur::cpu
