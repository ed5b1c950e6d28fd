// Pointwise ops: relu, add, scale, clamp, mean, and gradient accumulation.
#include "kernels/cpu/pointwise.h"

#include "engine/check.h"
#include "engine/dispatch.h"
#include "engine/ops.h"

namespace deblur {

Tensor relu(const Tensor& x) {
  Device device = common_device("relu", {x});
  if (device != Device::CPU) no_kernel("relu", device);
  Tensor y = Tensor::empty(x.shape(), device);
  cpu::relu_forward<float>(cpu_view(x), cpu_view(y));
  if (needs_grad({x})) {
    record(y, "relu", {x}, [y = y.detach()](const Tensor& grad_y, GradInputs& grads) {
      Tensor grad_x = Tensor::empty(y.shape(), y.device());
      cpu::relu_backward<float>(cpu_view(y), cpu_view(grad_y), cpu_view(grad_x));
      grads.set(0, grad_x);
    });
  }
  return y;
}

Tensor add(const Tensor& a, const Tensor& b) {
  Device device = common_device("add", {a, b});
  check_same_shape("add", a, b);
  if (device != Device::CPU) no_kernel("add", device);
  Tensor y = Tensor::empty(a.shape(), device);
  cpu::add_forward<float>(cpu_view(a), cpu_view(b), cpu_view(y));
  if (needs_grad({a, b})) {
    record(y, "add", {a, b}, [](const Tensor& grad_y, GradInputs& grads) {
      grads.set(0, grad_y);
      grads.set(1, grad_y);
    });
  }
  return y;
}

Tensor scale(const Tensor& x, float factor, float shift) {
  Device device = common_device("scale", {x});
  if (device != Device::CPU) no_kernel("scale", device);
  Tensor y = Tensor::empty(x.shape(), device);
  cpu::scale_forward<float>(cpu_view(x), factor, shift, cpu_view(y));
  if (needs_grad({x})) {
    record(y, "scale", {x}, [factor](const Tensor& grad_y, GradInputs& grads) {
      Tensor grad_x = Tensor::empty(grad_y.shape(), grad_y.device());
      cpu::scale_forward<float>(cpu_view(grad_y), factor, 0.0f, cpu_view(grad_x));
      grads.set(0, grad_x);
    });
  }
  return y;
}

Tensor clamp(const Tensor& x, float lo, float hi) {
  Device device = common_device("clamp", {x});
  DEBLUR_CHECK(lo <= hi, "clamp: lo ", lo, " > hi ", hi);
  if (device != Device::CPU) no_kernel("clamp", device);
  Tensor y = Tensor::empty(x.shape(), device);
  cpu::clamp_forward<float>(cpu_view(x), lo, hi, cpu_view(y));
  if (needs_grad({x})) {
    record(y, "clamp", {x}, [x = x.detach(), lo, hi](const Tensor& grad_y, GradInputs& grads) {
      Tensor grad_x = Tensor::empty(x.shape(), x.device());
      cpu::clamp_backward<float>(cpu_view(x), lo, hi, cpu_view(grad_y), cpu_view(grad_x));
      grads.set(0, grad_x);
    });
  }
  return y;
}

Tensor mean(const Tensor& x) {
  Device device = common_device("mean", {x});
  DEBLUR_CHECK(x.numel() > 0, "mean of an empty tensor ", x.shape().str());
  if (device != Device::CPU) no_kernel("mean", device);
  const double count = static_cast<double>(x.numel());
  Tensor y = Tensor::full({1, 1, 1, 1}, static_cast<float>(cpu::sum<float>(cpu_view(x)) / count));
  if (needs_grad({x})) {
    record(y, "mean", {x}, [shape = x.shape(), count](const Tensor& grad_y, GradInputs& grads) {
      Tensor grad_x = Tensor::empty(shape, grad_y.device());
      cpu::fill<float>(cpu_view(grad_x), static_cast<float>(grad_y.item() / count));
      grads.set(0, grad_x);
    });
  }
  return y;
}

void accumulate(const Tensor& dst, const Tensor& src) {
  Device device = common_device("accumulate", {dst, src});
  check_same_shape("accumulate", dst, src);
  if (device != Device::CPU) no_kernel("accumulate", device);
  cpu::accumulate<float>(cpu_view(dst), cpu_view(src));
}

}  // namespace deblur
