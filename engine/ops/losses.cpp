// Pixel loss ops: charbonnier and l1_loss, each a [1, 1, 1, 1] mean over all elements of a
// function of d = pred - target; semantics in kernels/cpu/losses.h.
#include "kernels/cpu/losses.h"

#include "engine/check.h"
#include "engine/dispatch.h"
#include "engine/ops.h"

namespace deblur {

namespace {
// The shell both losses share: checks, the forward mean, and a backward that writes the
// gradient of pred and, only when it is needed, of target in one kernel pass.
//   sum(pred_view, target_view) -> double
//   backward(pred_view, target_view, scale, grad_pred_view, grad_target_view)
template <class SumFn, class BackwardFn>
Tensor mean_loss(const char* op, const Tensor& pred, const Tensor& target, SumFn sum,
                 BackwardFn backward) {
  Device device = common_device(op, {pred, target});
  check_same_shape(op, pred, target);
  DEBLUR_CHECK(pred.numel() > 0, op, " of empty tensors ", pred.shape().str());
  if (device != Device::CPU) no_kernel(op, device);
  const double count = static_cast<double>(pred.numel());
  Tensor y =
      Tensor::full({1, 1, 1, 1}, static_cast<float>(sum(cpu_view(pred), cpu_view(target)) / count));
  if (needs_grad({pred, target})) {
    record(y, op, {pred, target},
           [pred = pred.detach(), target = target.detach(), count, backward](const Tensor& grad_y,
                                                                             GradInputs& grads) {
             const float scale = static_cast<float>(grad_y.item() / count);
             Tensor grad_pred = Tensor::empty(pred.shape(), pred.device());
             Tensor grad_target;
             if (grads.needed(1)) grad_target = Tensor::empty(target.shape(), target.device());
             backward(cpu_view(pred), cpu_view(target), scale, cpu_view(grad_pred),
                      grad_target.defined() ? cpu_view(grad_target) : cpu::NchwView<float>{});
             grads.set(0, grad_pred);
             if (grad_target.defined()) grads.set(1, grad_target);
           });
  }
  return y;
}
}  // namespace

Tensor charbonnier(const Tensor& pred, const Tensor& target, float eps) {
  DEBLUR_CHECK(eps > 0.0f, "charbonnier: eps must be positive, got ", eps);
  return mean_loss(
      "charbonnier", pred, target,
      [eps](auto p, auto t) { return cpu::charbonnier_sum<float>(p, t, eps); },
      [eps](auto p, auto t, float scale, auto gp, auto gt) {
        cpu::charbonnier_backward<float>(p, t, eps, scale, gp, gt);
      });
}

Tensor l1_loss(const Tensor& pred, const Tensor& target) {
  return mean_loss(
      "l1_loss", pred, target, [](auto p, auto t) { return cpu::l1_sum<float>(p, t); },
      [](auto p, auto t, float scale, auto gp, auto gt) {
        cpu::l1_backward<float>(p, t, scale, gp, gt);
      });
}

}  // namespace deblur
