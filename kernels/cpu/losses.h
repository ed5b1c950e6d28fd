// Pixel loss CPU kernels, forward and backward, float and double. With d = pred - target:
//   charbonnier: mean(sqrt(d^2 + eps^2)) (the seed's loss, eps 1e-3); d loss / d d =
//     d / sqrt(d^2 + eps^2) / numel
//   l1:          PyTorch's F.l1_loss(pred, target) = mean(|d|); d loss / d d = sign(d) / numel,
//     0 at d == 0 (and at NaN, as torch.sign gives 0 there)
// The forward kernels return the SUM over all elements, accumulated in double in a fixed order
// (deterministic for any thread count); the op divides by numel. The backward kernels take
// scale = dL/dloss / numel and assign (=) grad_pred = scale * dloss/dd and, in the same pass,
// grad_target = -grad_pred; grad_target may be an empty view (data null) when not needed.
#pragma once

#include "kernels/cpu/nchw.h"

namespace deblur::cpu {

template <class T>
double charbonnier_sum(NchwView<const T> pred, NchwView<const T> target, T eps);
template <class T>
void charbonnier_backward(NchwView<const T> pred, NchwView<const T> target, T eps, T scale,
                          NchwView<T> grad_pred, NchwView<T> grad_target);

template <class T>
double l1_sum(NchwView<const T> pred, NchwView<const T> target);
template <class T>
void l1_backward(NchwView<const T> pred, NchwView<const T> target, T scale, NchwView<T> grad_pred,
                 NchwView<T> grad_target);

}  // namespace deblur::cpu
