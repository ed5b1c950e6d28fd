// Pixel loss ops: charbonnier and l1_loss, each a [1, 1, 1, 1] mean over all elements of a
// function of d = pred - target, on the CPU and CUDA; semantics in kernels/cpu/losses.h.
#include "kernels/cpu/losses.h"

#include "engine/check.h"
#include "engine/dispatch.h"
#include "engine/ops.h"
#if defined(DEBLUR_HAS_CUDA_KERNELS)
#include "kernels/cuda/losses.cuh"
#include "kernels/cuda/pointwise.cuh"
#endif

namespace deblur {

namespace {
struct PixelLoss {
  enum Kind { Charbonnier, L1 } kind;
  float eps;  // Charbonnier's only
};

// The mean over all elements, into a [1, 1, 1, 1] tensor on pred's device.
Tensor loss_mean(PixelLoss loss, const Tensor& pred, const Tensor& target) {
  const double count = static_cast<double>(pred.numel());
  if (pred.device() == Device::CUDA) {
    Tensor out = Tensor::empty({1, 1, 1, 1}, Device::CUDA);
#if defined(DEBLUR_HAS_CUDA_KERNELS)
    CudaWorkspace workspace(cuda::loss_sum_workspace_bytes(cpu_view(pred)));
    if (loss.kind == PixelLoss::Charbonnier)
      cuda::charbonnier_sum(cpu_view(pred), cpu_view(target), loss.eps, out.data(),
                            workspace.data(), cuda_stream());
    else
      cuda::l1_sum(cpu_view(pred), cpu_view(target), out.data(), workspace.data(),
                   cuda_stream());
    // Divided on the device: the forward never waits for the GPU.
    cuda::scale_forward(cpu_view(out), static_cast<float>(1.0 / count), 0.0f, cpu_view(out),
                        cuda_stream());
#endif
    return out;
  }
  const double sum = loss.kind == PixelLoss::Charbonnier
                         ? cpu::charbonnier_sum<float>(cpu_view(pred), cpu_view(target), loss.eps)
                         : cpu::l1_sum<float>(cpu_view(pred), cpu_view(target));
  return Tensor::full({1, 1, 1, 1}, static_cast<float>(sum / count));
}

// grad_pred = scale * dloss/dd and, when grad_target is defined, grad_target = -grad_pred.
void loss_backward(PixelLoss loss, const Tensor& pred, const Tensor& target, float scale,
                   const Tensor& grad_pred, const Tensor& grad_target) {
  const cpu::NchwView<float> gt = grad_target.defined() ? cpu_view(grad_target)
                                                        : cpu::NchwView<float>{};
  if (pred.device() == Device::CUDA) {
#if defined(DEBLUR_HAS_CUDA_KERNELS)
    if (loss.kind == PixelLoss::Charbonnier)
      cuda::charbonnier_backward(cpu_view(pred), cpu_view(target), loss.eps, scale,
                                 cpu_view(grad_pred), gt, cuda_stream());
    else
      cuda::l1_backward(cpu_view(pred), cpu_view(target), scale, cpu_view(grad_pred), gt,
                        cuda_stream());
#endif
  } else if (loss.kind == PixelLoss::Charbonnier) {
    cpu::charbonnier_backward<float>(cpu_view(pred), cpu_view(target), loss.eps, scale,
                                     cpu_view(grad_pred), gt);
  } else {
    cpu::l1_backward<float>(cpu_view(pred), cpu_view(target), scale, cpu_view(grad_pred), gt);
  }
}

// The shell both losses share: checks, the forward mean, and a backward that writes the
// gradient of pred and, only when it is needed, of target in one kernel pass.
Tensor mean_loss(const char* op, PixelLoss loss, const Tensor& pred, const Tensor& target) {
  Device device = common_device(op, {pred, target});
  check_same_shape(op, pred, target);
  DEBLUR_CHECK(pred.numel() > 0, op, " of empty tensors ", pred.shape().str());
  check_backend(op, device);
  const double count = static_cast<double>(pred.numel());
  Tensor y = loss_mean(loss, pred, target);
  if (needs_grad({pred, target})) {
    record(y, op, {pred, target},
           [pred = pred.detach(), target = target.detach(), count, loss](const Tensor& grad_y,
                                                                         GradInputs& grads) {
             const float scale = static_cast<float>(grad_y.item() / count);
             Tensor grad_pred = Tensor::empty(pred.shape(), pred.device());
             Tensor grad_target;
             if (grads.needed(1)) grad_target = Tensor::empty(target.shape(), target.device());
             loss_backward(loss, pred, target, scale, grad_pred, grad_target);
             grads.set(0, grad_pred);
             if (grad_target.defined()) grads.set(1, grad_target);
           });
  }
  return y;
}
}  // namespace

Tensor charbonnier(const Tensor& pred, const Tensor& target, float eps) {
  DEBLUR_CHECK(eps > 0.0f, "charbonnier: eps must be positive, got ", eps);
  return mean_loss("charbonnier", {PixelLoss::Charbonnier, eps}, pred, target);
}

Tensor l1_loss(const Tensor& pred, const Tensor& target) {
  return mean_loss("l1_loss", {PixelLoss::L1, 0.0f}, pred, target);
}

}  // namespace deblur
