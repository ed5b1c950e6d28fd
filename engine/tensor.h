// Tensor: a float32 4-D array (N, C, H, W) on a device, a handle to refcounted storage.
//
// Layout: NCHW, the layout of PyTorch and of the files, with one twist: a sample's C*H*W values
// are contiguous but samples may lie batch_stride apart, so channel_slice() is a zero-copy view
// and a concat can be written in place. Copying a Tensor copies the handle (both alias the same
// data); clone() copies the data.
//
// Autograd state (requires_grad, the node that produced the tensor, a leaf's accumulated grad)
// hangs off the handle; see engine/autograd.h.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace deblur {

enum class Device { CPU, CUDA };
const char* device_name(Device device);

struct Shape {
  int64_t n = 1, c = 1, h = 1, w = 1;
  int64_t numel() const { return n * c * h * w; }
  bool operator==(const Shape&) const = default;
  std::string str() const;  // "[2, 3, 64, 64]"
};

// Raw memory on one device; freed when the last tensor using it goes away.
class Storage {
 public:
  Storage(int64_t count, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  float* data() const { return data_; }
  int64_t count() const { return count_; }
  Device device() const { return device_; }

 private:
  float* data_ = nullptr;
  int64_t count_ = 0;
  Device device_ = Device::CPU;
};

struct AutogradMeta;

class Tensor {
 public:
  Tensor() = default;  // undefined: no storage, defined() is false

  static Tensor empty(Shape shape, Device device = Device::CPU);
  static Tensor zeros(Shape shape, Device device = Device::CPU);
  static Tensor full(Shape shape, float value, Device device = Device::CPU);
  // From NCHW-packed values; values.size() must equal shape.numel().
  static Tensor from_vector(Shape shape, const std::vector<float>& values);

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  int64_t n() const { return shape().n; }
  int64_t c() const { return shape().c; }
  int64_t h() const { return shape().h; }
  int64_t w() const { return shape().w; }
  int64_t numel() const { return shape().numel(); }
  Device device() const;

  // Element (0, 0, 0, 0); sample i starts at data() + i * batch_stride().
  float* data() const;
  int64_t batch_stride() const;
  bool is_contiguous() const { return batch_stride() == c() * h() * w() || n() == 1; }

  // Channels [first, first + count) of every sample, sharing this tensor's storage.
  Tensor channel_slice(int64_t first, int64_t count) const;
  // `shape` laid out contiguously from element `offset` of this contiguous tensor's data,
  // sharing its storage (how parameters live inside one slab).
  Tensor flat_view(int64_t offset, Shape shape) const;
  Tensor clone() const;                  // contiguous copy of the data, no autograd history
  Tensor to(Device device) const;        // contiguous copy on another device (or this one)
  Tensor detach() const;                 // same data, no autograd history
  std::vector<float> to_vector() const;  // NCHW-packed copy on the host
  float item() const;                    // the single value of a 1-element tensor

  // Autograd (engine/autograd.cpp).
  bool requires_grad() const;
  Tensor& set_requires_grad(bool on);
  Tensor grad() const;  // accumulated gradient of a leaf; undefined before any backward
  void set_grad(const Tensor& grad);
  void backward() const;  // from a 1-element tensor, seeding its gradient with 1
  // From any tensor, seeding its gradient with grad_output (same shape), as PyTorch's
  // y.backward(grad_y): the inputs' gradients become those of sum(grad_output * y).
  void backward(const Tensor& grad_output) const;
  const std::shared_ptr<AutogradMeta>& autograd_meta() const;
  void set_autograd_meta(std::shared_ptr<AutogradMeta> meta);

  bool same_storage(const Tensor& other) const;

 private:
  struct Impl {
    std::shared_ptr<Storage> storage;
    int64_t offset = 0;
    Shape shape;
    int64_t batch_stride = 0;
    std::shared_ptr<AutogradMeta> autograd;
  };
  explicit Tensor(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  const Impl& impl() const;

  std::shared_ptr<Impl> impl_;
};

}  // namespace deblur
