// Training batches to the model's device. On CUDA through two page-locked staging buffers: the
// host copies batch k into staging slot k % 2 and queues the device copy on the engine stream,
// where it waits behind the kernels already queued instead of blocking the host (a pageable
// copy would wait for the whole stream first); a slot is refilled only once the event recorded
// behind its previous copy has run. So the trainer can hand over batch k + 1 while step k is
// still running on the GPU. On the CPU the batch's own tensors are used.
#pragma once

#include <memory>

#include "engine/tensor.h"
#include "train/loader.h"

namespace deblur::train {

struct DeviceBatch {
  Tensor blur, sharp;  // on the uploader's device
};

class BatchUploader {
 public:
  explicit BatchUploader(Device device);
  ~BatchUploader();
  BatchUploader(const BatchUploader&) = delete;
  BatchUploader& operator=(const BatchUploader&) = delete;

  DeviceBatch upload(const Batch& batch);

 private:
  struct Staging;  // CUDA builds only
  Device device_;
  std::unique_ptr<Staging> staging_;
};

}  // namespace deblur::train
