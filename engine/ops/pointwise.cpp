// Pointwise ops: relu, add, scale, clamp, mean, gradient accumulation and lerp, on the CPU and
// CUDA.
#include "kernels/cpu/pointwise.h"

#include "engine/check.h"
#include "engine/dispatch.h"
#include "engine/ops.h"
#if defined(DEBLUR_HAS_CUDA_KERNELS)
#include "kernels/cuda/pointwise.cuh"
#endif

namespace deblur {

namespace {
// y = factor * x + shift on x's device (scale's forward and backward, mean's division).
void scale_into(const Tensor& x, float factor, float shift, const Tensor& y) {
  if (x.device() == Device::CUDA) {
#if defined(DEBLUR_HAS_CUDA_KERNELS)
    cuda::scale_forward(cpu_view(x), factor, shift, cpu_view(y), cuda_stream());
#endif
  } else {
    cpu::scale_forward<float>(cpu_view(x), factor, shift, cpu_view(y));
  }
}
}  // namespace

Tensor relu(const Tensor& x) {
  Device device = common_device("relu", {x});
  check_backend("relu", device);
  Tensor y = Tensor::empty(x.shape(), device);
  if (device == Device::CUDA) {
#if defined(DEBLUR_HAS_CUDA_KERNELS)
    cuda::relu_forward(cpu_view(x), cpu_view(y), cuda_stream());
#endif
  } else {
    cpu::relu_forward<float>(cpu_view(x), cpu_view(y));
  }
  if (needs_grad({x})) {
    record(y, "relu", {x}, [y = y.detach()](const Tensor& grad_y, GradInputs& grads) {
      Tensor grad_x = Tensor::empty(y.shape(), y.device());
      if (y.device() == Device::CUDA) {
#if defined(DEBLUR_HAS_CUDA_KERNELS)
        cuda::relu_backward(cpu_view(y), cpu_view(grad_y), cpu_view(grad_x), cuda_stream());
#endif
      } else {
        cpu::relu_backward<float>(cpu_view(y), cpu_view(grad_y), cpu_view(grad_x));
      }
      grads.set(0, grad_x);
    });
  }
  return y;
}

Tensor add(const Tensor& a, const Tensor& b) {
  Device device = common_device("add", {a, b});
  check_same_shape("add", a, b);
  check_backend("add", device);
  Tensor y = Tensor::empty(a.shape(), device);
  if (device == Device::CUDA) {
#if defined(DEBLUR_HAS_CUDA_KERNELS)
    cuda::add_forward(cpu_view(a), cpu_view(b), cpu_view(y), cuda_stream());
#endif
  } else {
    cpu::add_forward<float>(cpu_view(a), cpu_view(b), cpu_view(y));
  }
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
  check_backend("scale", device);
  Tensor y = Tensor::empty(x.shape(), device);
  scale_into(x, factor, shift, y);
  if (needs_grad({x})) {
    record(y, "scale", {x}, [factor](const Tensor& grad_y, GradInputs& grads) {
      Tensor grad_x = Tensor::empty(grad_y.shape(), grad_y.device());
      scale_into(grad_y, factor, 0.0f, grad_x);
      grads.set(0, grad_x);
    });
  }
  return y;
}

Tensor clamp(const Tensor& x, float lo, float hi) {
  Device device = common_device("clamp", {x});
  DEBLUR_CHECK(lo <= hi, "clamp: lo ", lo, " > hi ", hi);
  check_backend("clamp", device);
  Tensor y = Tensor::empty(x.shape(), device);
  if (device == Device::CUDA) {
#if defined(DEBLUR_HAS_CUDA_KERNELS)
    cuda::clamp_forward(cpu_view(x), lo, hi, cpu_view(y), cuda_stream());
#endif
  } else {
    cpu::clamp_forward<float>(cpu_view(x), lo, hi, cpu_view(y));
  }
  if (needs_grad({x})) {
    record(y, "clamp", {x}, [x = x.detach(), lo, hi](const Tensor& grad_y, GradInputs& grads) {
      Tensor grad_x = Tensor::empty(x.shape(), x.device());
      if (x.device() == Device::CUDA) {
#if defined(DEBLUR_HAS_CUDA_KERNELS)
        cuda::clamp_backward(cpu_view(x), lo, hi, cpu_view(grad_y), cpu_view(grad_x),
                             cuda_stream());
#endif
      } else {
        cpu::clamp_backward<float>(cpu_view(x), lo, hi, cpu_view(grad_y), cpu_view(grad_x));
      }
      grads.set(0, grad_x);
    });
  }
  return y;
}

Tensor mean(const Tensor& x) {
  Device device = common_device("mean", {x});
  DEBLUR_CHECK(x.numel() > 0, "mean of an empty tensor ", x.shape().str());
  check_backend("mean", device);
  const double count = static_cast<double>(x.numel());
  Tensor y;
  if (device == Device::CUDA) {
#if defined(DEBLUR_HAS_CUDA_KERNELS)
    // The sum stays on the device and is divided there: no host round trip in the forward.
    y = Tensor::empty({1, 1, 1, 1}, device);
    cuda::sum(cpu_view(x), y.data(), cuda_stream());
    scale_into(y, static_cast<float>(1.0 / count), 0.0f, y);
#endif
  } else {
    y = Tensor::full({1, 1, 1, 1}, static_cast<float>(cpu::sum<float>(cpu_view(x)) / count));
  }
  if (needs_grad({x})) {
    record(y, "mean", {x}, [shape = x.shape(), count](const Tensor& grad_y, GradInputs& grads) {
      Tensor grad_x = Tensor::empty(shape, grad_y.device());
      const float value = static_cast<float>(grad_y.item() / count);
      if (grad_y.device() == Device::CUDA) {
#if defined(DEBLUR_HAS_CUDA_KERNELS)
        cuda::fill(cpu_view(grad_x), value, cuda_stream());
#endif
      } else {
        cpu::fill<float>(cpu_view(grad_x), value);
      }
      grads.set(0, grad_x);
    });
  }
  return y;
}

void accumulate(const Tensor& dst, const Tensor& src) {
  Device device = common_device("accumulate", {dst, src});
  check_same_shape("accumulate", dst, src);
  check_backend("accumulate", device);
  if (device == Device::CUDA) {
#if defined(DEBLUR_HAS_CUDA_KERNELS)
    cuda::accumulate(cpu_view(dst), cpu_view(src), cuda_stream());
#endif
  } else {
    cpu::accumulate<float>(cpu_view(dst), cpu_view(src));
  }
}

void lerp(const Tensor& dst, const Tensor& src, float weight) {
  Device device = common_device("lerp", {dst, src});
  check_same_shape("lerp", dst, src);
  check_backend("lerp", device);
  if (device == Device::CUDA) {
#if defined(DEBLUR_HAS_CUDA_KERNELS)
    cuda::lerp(cpu_view(dst), cpu_view(src), weight, cuda_stream());
#endif
  } else {
    cpu::lerp<float>(cpu_view(dst), cpu_view(src), weight);
  }
}

}  // namespace deblur
