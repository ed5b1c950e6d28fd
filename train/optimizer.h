// AdamW with global-norm gradient clipping over a packed Module (one slab of parameters, one of
// gradients), on the model's device: torch.optim.AdamW after torch.nn.utils.clip_grad_norm_,
// with the per-element rule of kernels/common/adamw.h. The moments live in two slabs of the same
// layout, so a step is one clip reduction and one update over everything. On CUDA a step never
// waits for the device: the clip scale is made and used there, and lr and the step count are
// queued as a kernel's arguments.
//
// Checkpoint form: one F32 tensor per parameter and moment, "optimizer.exp_avg.<name>" and
// "optimizer.exp_avg_sq.<name>" (torch's state names, with the parameter's file shape); the step
// count travels in the checkpoint's metadata.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/safetensors.h"
#include "engine/tensor.h"
#include "kernels/common/adamw.h"
#include "layers/module.h"

namespace deblur::train {

class AdamW {
 public:
  // `model` must be packed (pack_parameters) and stay on its device while this optimizer lives.
  AdamW(Module& model, common::AdamWHyper hyper);
  ~AdamW();
  AdamW(const AdamW&) = delete;
  AdamW& operator=(const AdamW&) = delete;

  // Clips the gradients' global norm to hyper.max_norm and applies one AdamW step at `lr`.
  void step(double lr);
  int64_t steps() const { return steps_; }
  // The gradients' global L2 norm before clipping, at the last step (on CUDA: a device read).
  double last_grad_norm() const;

  std::vector<TensorRecord> state() const;
  // Restores the moments from a checkpoint (every tensor of state() must be there, with its
  // shape; errors name `source`) and the step count.
  void load_state(const SafetensorsFile& file, const std::string& source, int64_t steps);

 private:
  Module& model_;
  common::AdamWHyper hyper_;
  Tensor exp_avg_, exp_avg_sq_;  // same length and layout as the parameter slab
  int64_t steps_ = 0;
  double cpu_grad_norm_ = 0.0;
  void* device_scalars_ = nullptr;  // CUDA: clip scale, grad norm, lr (floats), step (int64)
};

}  // namespace deblur::train
