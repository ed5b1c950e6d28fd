// BatchUploader (train/uploader.h).
#include "train/uploader.h"

#include <cstring>

#include "engine/check.h"
#include "engine/cuda_allocator.h"  // defines DEBLUR_HAS_CUDA_KERNELS in CUDA builds

namespace deblur::train {

#if defined(DEBLUR_HAS_CUDA_KERNELS)
struct BatchUploader::Staging {
  static constexpr int kSlots = 2;
  int64_t capacity = 0;  // floats per buffer
  std::unique_ptr<PinnedHostBuffer> blur[kSlots], sharp[kSlots];
  CudaEvent copied[kSlots];
  int next = 0;

  Tensor send(const Tensor& host, std::unique_ptr<PinnedHostBuffer>& buffer) {
    const int64_t n = host.numel();
    std::memcpy(buffer->data(), host.data(), static_cast<size_t>(n) * sizeof(float));
    Tensor device = Tensor::empty(host.shape(), Device::CUDA);
    cuda_copy_to_device_async(device.data(), *buffer, n);
    return device;
  }
};
#else
struct BatchUploader::Staging {};
#endif

BatchUploader::BatchUploader(Device device) : device_(device) {
#if defined(DEBLUR_HAS_CUDA_KERNELS)
  if (device_ == Device::CUDA) staging_ = std::make_unique<Staging>();
#endif
}

BatchUploader::~BatchUploader() {
#if defined(DEBLUR_HAS_CUDA_KERNELS)
  // No copy may still read a staging buffer when it is freed.
  if (staging_)
    for (CudaEvent& copied : staging_->copied) copied.wait();
#endif
}

DeviceBatch BatchUploader::upload(const Batch& batch) {
  DEBLUR_CHECK(batch.blur.device() == Device::CPU && batch.blur.is_contiguous() &&
                   batch.sharp.is_contiguous() && batch.blur.shape() == batch.sharp.shape(),
               "BatchUploader: a batch is two contiguous CPU tensors of one shape");
  if (device_ == Device::CPU) return {batch.blur, batch.sharp};
#if defined(DEBLUR_HAS_CUDA_KERNELS)
  Staging& s = *staging_;
  const int64_t n = batch.blur.numel();
  if (n > s.capacity) {  // the first batch, or a larger one: no copy may still read the old ones
    for (int k = 0; k < Staging::kSlots; ++k) {
      s.copied[k].wait();
      s.blur[k] = std::make_unique<PinnedHostBuffer>(n);
      s.sharp[k] = std::make_unique<PinnedHostBuffer>(n);
    }
    s.capacity = n;
  }
  const int slot = s.next;
  s.next = (s.next + 1) % Staging::kSlots;
  s.copied[slot].wait();  // the slot's previous copy has run
  DeviceBatch out{s.send(batch.blur, s.blur[slot]), s.send(batch.sharp, s.sharp[slot])};
  s.copied[slot].record();
  return out;
#else
  throw Error("BatchUploader: this build has no CUDA backend");
#endif
}

}  // namespace deblur::train
