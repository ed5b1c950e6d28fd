// AdamW with global-norm gradient clipping and the cosine learning-rate schedule, CPU kernels,
// float and double; the per-element math (PyTorch's torch.optim.AdamW and
// torch.nn.utils.clip_grad_norm_, written out there) is kernels/common/adamw.h, shared with
// kernels/cuda/adamw.cuh. The engine keeps all parameters, gradients and moments in slabs, so
// one call covers every tensor:
//   scale = common::clip_grad_scale(grad_norm_squared(grads, n), h.max_norm);
//   adamw_step(params, grads, m, v, n, h, t, T(scale));   // t = 1, 2, ...
//   h.lr = cosine_annealing_lr(lr0, eta_min, epoch + 1, T_max);  // between epochs
#pragma once

#include <cstdint>

#include "kernels/common/adamw.h"

namespace deblur::cpu {

using common::AdamWHyper;

// The squared L2 norm of grads[0, n), accumulated in double in an order fixed by n (so it does
// not depend on the thread count).
template <class T>
double grad_norm_squared(const T* grads, int64_t n);

// One AdamW step at step number `step` (1 for the first) with lr h.lr on n elements, the
// gradient taken as grads[i] * clip_scale (grads itself is left as it is). m and v start at 0.
template <class T>
void adamw_step(T* params, const T* grads, T* m, T* v, int64_t n, const AdamWHyper& h, int64_t step,
                T clip_scale);

// torch.optim.lr_scheduler.CosineAnnealingLR's closed form after `epoch` scheduler steps:
// eta_min + (lr0 - eta_min) * (1 + cos(pi * epoch / t_max)) / 2 (torch updates it recursively,
// which agrees to rounding).
double cosine_annealing_lr(double lr0, double eta_min, int64_t epoch, int64_t t_max);

}  // namespace deblur::cpu
