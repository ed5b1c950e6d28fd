// Argument checks shared by the ops.
#include "engine/dispatch.h"

#include "engine/check.h"

namespace deblur {

Device common_device(const char* op, std::initializer_list<Tensor> tensors) {
  const Tensor* first = nullptr;
  for (const Tensor& t : tensors) {
    if (!t.defined()) continue;
    if (!first) {
      first = &t;
    } else {
      DEBLUR_CHECK(t.device() == first->device(), op, ": tensors on different devices (",
                   device_name(first->device()), " ", first->shape().str(), " and ",
                   device_name(t.device()), " ", t.shape().str(), ")");
    }
  }
  DEBLUR_CHECK(first != nullptr, op, ": no defined input");
  return first->device();
}

void no_kernel(const char* op, Device device) {
  throw Error(detail::concat(op, ": no ", device_name(device), " kernel in this build"));
}

void check_same_shape(const char* op, const Tensor& a, const Tensor& b) {
  DEBLUR_CHECK(a.shape() == b.shape(), op, ": shapes differ, ", a.shape().str(), " vs ",
               b.shape().str());
}

}  // namespace deblur
