// The AdamW step and the gradient-clipping rule shared by the CPU and CUDA optimizers, so the two
// backends cannot drift.
//
// PyTorch semantics, torch.optim.AdamW (the single-tensor path, amsgrad off, maximize off), at
// step t = 1, 2, ... with learning rate lr (the scheduler's value for this step):
//   p -= lr * weight_decay * p                     (decoupled weight decay, before the moments)
//   m = beta1 * m + (1 - beta1) * g                (torch writes m.lerp_(g, 1 - beta1))
//   v = beta2 * v + (1 - beta2) * g^2
//   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// with g the gradient already multiplied by the clip scale of torch.nn.utils.clip_grad_norm_:
//   scale = min(1, max_norm / (||all gradients||_2 + 1e-6)), applied even when it is 1.
// A NaN norm gives a NaN scale (as torch.clamp keeps NaN), so a NaN gradient spreads to every
// parameter instead of being silently clipped away.
#pragma once

#include <cstdint>

#include "kernels/common/hd.h"

#if !defined(__CUDACC__)
#include <cmath>
#endif

namespace deblur::common {

struct AdamWHyper {
  double lr = 2e-4;  // the CPU step's learning rate; the CUDA step reads lr from device memory
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-4;
  double max_norm = 1.0;  // clip_grad_norm_'s max_norm
};

// clip_grad_norm_'s scale from the squared global L2 norm of all gradients.
DEBLUR_HD double clip_grad_scale(double norm_squared, double max_norm) {
  const double scale = max_norm / (::sqrt(norm_squared) + 1e-6);
  return scale > 1.0 ? 1.0 : scale;  // NaN stays NaN
}

// The per-step constants of one AdamW step, computed in double from lr and t and rounded once
// to T, so every element (and both backends) uses the same values.
template <class T>
struct AdamWStep {
  T decay;  // 1 - lr * weight_decay
  T one_minus_beta1, beta2, one_minus_beta2;
  T step_size;   // lr / (1 - beta1^t)
  T bias2_sqrt;  // sqrt(1 - beta2^t)
  T eps;
};

template <class T>
DEBLUR_HD AdamWStep<T> adamw_step_constants(const AdamWHyper& h, double lr, int64_t step) {
  const double t = static_cast<double>(step);
  return {static_cast<T>(1.0 - lr * h.weight_decay),
          static_cast<T>(1.0 - h.beta1),
          static_cast<T>(h.beta2),
          static_cast<T>(1.0 - h.beta2),
          static_cast<T>(lr / (1.0 - ::pow(h.beta1, t))),
          static_cast<T>(::sqrt(1.0 - ::pow(h.beta2, t))),
          static_cast<T>(h.eps)};
}

DEBLUR_HD float adamw_sqrt(float x) {
  return ::sqrtf(x);
}
DEBLUR_HD double adamw_sqrt(double x) {
  return ::sqrt(x);
}

// One element's update, in torch's order of operations; g is the clipped gradient.
template <class T>
DEBLUR_HD void adamw_update(T& p, T& m, T& v, T g, const AdamWStep<T>& s) {
  p *= s.decay;
  m += s.one_minus_beta1 * (g - m);
  v = v * s.beta2 + s.one_minus_beta2 * g * g;
  p -= s.step_size * (m / (adamw_sqrt(v) / s.bias2_sqrt + s.eps));
}

}  // namespace deblur::common
