// group_norm op (with optional fused ReLU): checks, dispatch (CPU and CUDA) and backward.
#include "kernels/cpu/group_norm.h"

#include "engine/check.h"
#include "engine/dispatch.h"
#include "engine/ops.h"
#if defined(DEBLUR_HAS_CUDA_KERNELS)
#include "kernels/cuda/group_norm.cuh"
#endif

namespace deblur {

namespace {

// The op proper: writes y (fresh, or a view of a caller's buffer) and records the backward on it.
Tensor group_norm_to(const Tensor& x, const Tensor& gamma, const Tensor& beta, int groups,
                     float eps, bool fuse_relu, Tensor y) {
  const Device device = y.device();
  Tensor stats = Tensor::empty({2, x.n() * groups, 1, 1}, device);  // mean, rstd
  float* mean = stats.data();
  float* rstd = stats.data() + x.n() * groups;
  if (device == Device::CUDA) {
#if defined(DEBLUR_HAS_CUDA_KERNELS)
    CudaWorkspace workspace(cuda::group_norm_workspace_bytes(cpu_view(x), groups));
    cuda::group_norm_forward(cpu_view(x), gamma.data(), beta.data(), groups, eps, fuse_relu,
                             cpu_view(y), mean, rstd, workspace.data(), cuda_stream());
#endif
  } else {
    cpu::group_norm_forward<float>(cpu_view(x), gamma.data(), beta.data(), groups, eps, fuse_relu,
                                   cpu_view(y), mean, rstd);
  }
  if (needs_grad({x, gamma, beta})) {
    record(y, "group_norm", {x, gamma, beta},
           [x = x.detach(), y = fuse_relu ? y.detach() : Tensor(), gamma = gamma.detach(), stats,
            groups, fuse_relu](const Tensor& grad_y, GradInputs& grads) {
             Tensor grad_x = Tensor::empty(x.shape(), x.device());
             Tensor grad_gamma = grads.needed(1) ? grads.accumulator(1) : Tensor();
             Tensor grad_beta = grads.needed(2) ? grads.accumulator(2) : Tensor();
             const int64_t stat_count = x.n() * groups;
             const cpu::NchwView<float> y_view = fuse_relu ? cpu_view(y) : cpu_view(x);
             float* grad_gamma_data = grad_gamma.defined() ? grad_gamma.data() : nullptr;
             float* grad_beta_data = grad_beta.defined() ? grad_beta.data() : nullptr;
             if (x.device() == Device::CUDA) {
#if defined(DEBLUR_HAS_CUDA_KERNELS)
               CudaWorkspace workspace(cuda::group_norm_workspace_bytes(cpu_view(x), groups));
               cuda::group_norm_backward(cpu_view(x), y_view, gamma.data(), stats.data(),
                                         stats.data() + stat_count, groups, fuse_relu,
                                         cpu_view(grad_y), cpu_view(grad_x), grad_gamma_data,
                                         grad_beta_data, workspace.data(), cuda_stream());
#endif
             } else {
               cpu::group_norm_backward<float>(cpu_view(x), y_view, gamma.data(), stats.data(),
                                               stats.data() + stat_count, groups, fuse_relu,
                                               cpu_view(grad_y), cpu_view(grad_x),
                                               grad_gamma_data, grad_beta_data);
             }
             grads.set(0, grad_x);
           });
  }
  return y;
}

Device check_arguments(const Tensor& x, const Tensor& gamma, const Tensor& beta, int groups,
                       float eps) {
  const Device device = common_device("group_norm", {x, gamma, beta});
  DEBLUR_CHECK(groups > 0 && x.c() % groups == 0, "group_norm: ", x.c(),
               " channels do not split into ", groups, " groups (input ", x.shape().str(), ")");
  DEBLUR_CHECK(gamma.numel() == x.c() && beta.numel() == x.c() && gamma.is_contiguous() &&
                   beta.is_contiguous(),
               "group_norm: gamma ", gamma.shape().str(), " and beta ", beta.shape().str(),
               " must be ", x.c(), " contiguous values each, for input ", x.shape().str());
  DEBLUR_CHECK(eps > 0, "group_norm: eps must be positive, got ", eps);
  check_backend("group_norm", device);
  return device;
}

}  // namespace

Tensor group_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, int groups, float eps,
                  bool fuse_relu) {
  const Device device = check_arguments(x, gamma, beta, groups, eps);
  return group_norm_to(x, gamma, beta, groups, eps, fuse_relu, Tensor::empty(x.shape(), device));
}

Tensor group_norm_into(const Tensor& out, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                       int groups, float eps, bool fuse_relu) {
  const Device device = check_arguments(x, gamma, beta, groups, eps);
  DEBLUR_CHECK(out.shape() == x.shape() && out.device() == device, "group_norm: out ",
               out.shape().str(), " must be ", x.shape().str(), " on the input's device");
  DEBLUR_CHECK(!out.requires_grad(), "group_norm: out must be a fresh buffer with no autograd "
               "history");
  return group_norm_to(x, gamma, beta, groups, eps, fuse_relu, out.detach());
}

}  // namespace deblur
