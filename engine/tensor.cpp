// Tensor and Storage: allocation, views and copies.
#include "engine/tensor.h"

#include <algorithm>

#include "engine/autograd.h"
#include "engine/check.h"
#include "engine/device_memory.h"

namespace deblur {

const char* device_name(Device device) {
  return device == Device::CPU ? "cpu" : "cuda";
}

std::string Shape::str() const {
  return detail::concat("[", n, ", ", c, ", ", h, ", ", w, "]");
}

Storage::Storage(int64_t count, Device device)
    : data_(device_alloc(count, device)), count_(count), device_(device) {}

Storage::~Storage() {
  device_free(data_, device_);
}

Tensor Tensor::empty(Shape shape, Device device) {
  DEBLUR_CHECK(shape.n >= 0 && shape.c >= 0 && shape.h >= 0 && shape.w >= 0,
               "negative tensor shape ", shape.str());
  // The element count times sizeof(float) must fit in int64_t (and size_t) without wrapping.
  int64_t count = 1;
  for (int64_t d : {shape.n, shape.c, shape.h, shape.w})
    DEBLUR_CHECK(!__builtin_mul_overflow(count, d, &count) && count <= (INT64_MAX >> 3),
                 "tensor shape ", shape.str(), " is too large");
  auto impl = std::make_shared<Impl>();
  impl->storage = std::make_shared<Storage>(shape.numel(), device);
  impl->shape = shape;
  impl->batch_stride = shape.c * shape.h * shape.w;
  return Tensor(std::move(impl));
}

Tensor Tensor::zeros(Shape shape, Device device) {
  return full(shape, 0.0f, device);
}

Tensor Tensor::full(Shape shape, float value, Device device) {
  Tensor t = empty(shape, Device::CPU);
  std::fill(t.data(), t.data() + t.numel(), value);
  return device == Device::CPU ? t : t.to(device);
}

Tensor Tensor::from_vector(Shape shape, const std::vector<float>& values) {
  DEBLUR_CHECK(static_cast<int64_t>(values.size()) == shape.numel(), "from_vector: ", values.size(),
               " values for shape ", shape.str());
  Tensor t = empty(shape);
  std::copy(values.begin(), values.end(), t.data());
  return t;
}

const Tensor::Impl& Tensor::impl() const {
  DEBLUR_CHECK(impl_ != nullptr, "use of an undefined tensor");
  return *impl_;
}

const Shape& Tensor::shape() const {
  return impl().shape;
}
Device Tensor::device() const {
  return impl().storage->device();
}
float* Tensor::data() const {
  return impl().storage->data() + impl().offset;
}
int64_t Tensor::batch_stride() const {
  return impl().batch_stride;
}

bool Tensor::same_storage(const Tensor& other) const {
  return defined() && other.defined() && impl_->storage == other.impl_->storage;
}

Tensor Tensor::channel_slice(int64_t first, int64_t count) const {
  const Impl& src = impl();
  DEBLUR_CHECK(first >= 0 && count >= 0 && first + count <= src.shape.c, "channel_slice [", first,
               ", ", first + count, ") out of range for shape ", src.shape.str());
  auto view = std::make_shared<Impl>();
  view->storage = src.storage;
  view->offset = src.offset + first * src.shape.h * src.shape.w;
  view->shape = src.shape;
  view->shape.c = count;
  view->batch_stride = src.batch_stride;
  return Tensor(std::move(view));
}

Tensor Tensor::flat_view(int64_t offset, Shape shape) const {
  DEBLUR_CHECK(is_contiguous(), "flat_view of a non-contiguous view ", this->shape().str());
  DEBLUR_CHECK(offset >= 0 && offset + shape.numel() <= numel(), "flat_view of ", shape.str(),
               " at ", offset, " overruns ", this->shape().str());
  auto view = std::make_shared<Impl>();
  view->storage = impl().storage;
  view->offset = impl().offset + offset;
  view->shape = shape;
  view->batch_stride = shape.c * shape.h * shape.w;
  return Tensor(std::move(view));
}

Tensor Tensor::to(Device device) const {
  Tensor out = empty(shape(), device);
  const int64_t sample = c() * h() * w();
  if (is_contiguous()) {
    device_copy(out.data(), device, data(), this->device(), numel());
  } else {
    for (int64_t i = 0; i < n(); ++i)
      device_copy(out.data() + i * sample, device, data() + i * batch_stride(), this->device(),
                  sample);
  }
  return out;
}

Tensor Tensor::clone() const {
  return to(device());
}

Tensor Tensor::detach() const {
  auto view = std::make_shared<Impl>(impl());
  view->autograd = nullptr;
  return Tensor(std::move(view));
}

std::vector<float> Tensor::to_vector() const {
  Tensor host = to(Device::CPU);
  return std::vector<float>(host.data(), host.data() + host.numel());
}

float Tensor::item() const {
  DEBLUR_CHECK(numel() == 1, "item() of a tensor with shape ", shape().str());
  return to_vector()[0];
}

const std::shared_ptr<AutogradMeta>& Tensor::autograd_meta() const {
  return impl().autograd;
}

void Tensor::set_autograd_meta(std::shared_ptr<AutogradMeta> meta) {
  DEBLUR_CHECK(impl_ != nullptr, "set_autograd_meta on an undefined tensor");
  impl_->autograd = std::move(meta);
}

}  // namespace deblur
