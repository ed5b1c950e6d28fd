// AdamW over a packed Module's slabs, on the CPU or CUDA (train/optimizer.h).
#include "train/optimizer.h"

#include <cmath>

#include "engine/check.h"
#include "engine/cuda_allocator.h"  // defines DEBLUR_HAS_CUDA_KERNELS in CUDA builds
#include "kernels/cpu/adamw.h"
#if defined(DEBLUR_HAS_CUDA_KERNELS)
#include "kernels/cuda/adamw.cuh"
#endif

namespace deblur::train {

namespace {

// Where each parameter sits in the slab: its offset and element count.
struct SlabEntry {
  std::string name;
  std::vector<int64_t> file_shape;
  int64_t offset, count;
};

std::vector<SlabEntry> slab_layout(Module& model) {
  const float* base = model.parameter_values().data();
  std::vector<SlabEntry> entries;
  for (const NamedParameter& p : model.parameters())
    entries.push_back({p.name, p.file_shape, p.value->data() - base, p.value->numel()});
  return entries;
}

// Device scalars, in one allocation.
struct DeviceScalars {
  float clip_scale;
  float grad_norm;
  float lr;
  float unused;
  int64_t step;
};

}  // namespace

AdamW::AdamW(Module& model, common::AdamWHyper hyper) : model_(model), hyper_(hyper) {
  const Tensor& values = model_.parameter_values();
  DEBLUR_CHECK(values.defined() && model_.parameter_grads().defined(),
               "AdamW: the model's parameters must be packed first");
  exp_avg_ = Tensor::zeros(values.shape(), values.device());
  exp_avg_sq_ = Tensor::zeros(values.shape(), values.device());
  if (values.device() == Device::CUDA) {
#if defined(DEBLUR_HAS_CUDA_KERNELS)
    device_scalars_ = cuda_alloc_bytes(sizeof(DeviceScalars));
#endif
  }
}

AdamW::~AdamW() {
#if defined(DEBLUR_HAS_CUDA_KERNELS)
  if (device_scalars_) cuda_free_bytes(device_scalars_);
#endif
}

void AdamW::step(double lr) {
  const Tensor& values = model_.parameter_values();
  const Tensor& grads = model_.parameter_grads();
  DEBLUR_CHECK(values.device() == exp_avg_.device(),
               "AdamW: the model moved to another device after the optimizer was made");
  const int64_t n = values.numel();
  ++steps_;
  if (values.device() == Device::CUDA) {
#if defined(DEBLUR_HAS_CUDA_KERNELS)
    auto* scalars = static_cast<DeviceScalars*>(device_scalars_);
    cuda::adamw_set_schedule(&scalars->lr, &scalars->step, static_cast<float>(lr), steps_,
                             cuda_stream());
    CudaWorkspace workspace(cuda::clip_grad_norm_workspace_bytes(n));
    cuda::clip_grad_norm_scale(grads.data(), n, hyper_.max_norm, &scalars->clip_scale,
                               &scalars->grad_norm, workspace.data(), cuda_stream());
    cuda::adamw_step(values.data(), grads.data(), exp_avg_.data(), exp_avg_sq_.data(), n, hyper_,
                     &scalars->lr, &scalars->step, &scalars->clip_scale, cuda_stream());
#endif
    return;
  }
  const double norm_squared = cpu::grad_norm_squared<float>(grads.data(), n);
  cpu_grad_norm_ = std::sqrt(norm_squared);
  const float clip_scale = static_cast<float>(common::clip_grad_scale(norm_squared, hyper_.max_norm));
  common::AdamWHyper h = hyper_;
  h.lr = lr;
  cpu::adamw_step<float>(values.data(), grads.data(), exp_avg_.data(), exp_avg_sq_.data(), n, h,
                         steps_, clip_scale);
}

double AdamW::last_grad_norm() const {
  if (device_scalars_) {
#if defined(DEBLUR_HAS_CUDA_KERNELS)
    float norm = 0.0f;
    cuda_copy(&norm, false, &static_cast<const DeviceScalars*>(device_scalars_)->grad_norm, true,
              1);
    return norm;
#endif
  }
  return cpu_grad_norm_;
}

std::vector<TensorRecord> AdamW::state() const {
  const std::vector<float> avg = exp_avg_.to_vector(), avg_sq = exp_avg_sq_.to_vector();
  std::vector<TensorRecord> records;
  for (const SlabEntry& e : slab_layout(model_)) {
    records.push_back({"optimizer.exp_avg." + e.name, e.file_shape,
                       {avg.begin() + e.offset, avg.begin() + e.offset + e.count}});
    records.push_back({"optimizer.exp_avg_sq." + e.name, e.file_shape,
                       {avg_sq.begin() + e.offset, avg_sq.begin() + e.offset + e.count}});
  }
  return records;
}

void AdamW::load_state(const SafetensorsFile& file, const std::string& source, int64_t steps) {
  DEBLUR_CHECK(steps >= 0, source, ": a negative optimizer step count (", steps, ")");
  std::vector<float> avg(static_cast<size_t>(exp_avg_.numel()));
  std::vector<float> avg_sq(avg.size());
  for (const SlabEntry& e : slab_layout(model_)) {
    for (const bool squared : {false, true}) {
      const std::string name =
          std::string(squared ? "optimizer.exp_avg_sq." : "optimizer.exp_avg.") + e.name;
      const TensorRecord* record = file.find(name);
      DEBLUR_CHECK(record, source, ": no optimizer state '", name, "'");
      DEBLUR_CHECK(record->shape == e.file_shape, source, ": optimizer state '", name, "' is ",
                   shape_string(record->shape), " but the parameter is ",
                   shape_string(e.file_shape));
      std::vector<float>& dst = squared ? avg_sq : avg;
      std::copy(record->values.begin(), record->values.end(), dst.begin() + e.offset);
    }
  }
  const Device device = exp_avg_.device();
  exp_avg_ = Tensor::from_vector(exp_avg_.shape(), avg).to(device);
  exp_avg_sq_ = Tensor::from_vector(exp_avg_sq_.shape(), avg_sq).to(device);
  steps_ = steps;
}

}  // namespace deblur::train
