// Module: registry walk, parameter slabs, state dict IO.
#include "layers/module.h"

#include <algorithm>
#include <sstream>

#include "engine/check.h"
#include "engine/device_memory.h"
#include "engine/ops.h"

namespace deblur {

Tensor& Module::register_parameter(const std::string& name, Shape shape,
                                   std::vector<int64_t> file_shape) {
  int64_t file_numel = 1;
  for (int64_t d : file_shape) file_numel *= d;
  DEBLUR_CHECK(file_numel == shape.numel(), "parameter ", name, ": shape ", shape.str(),
               " and file shape ", shape_string(file_shape), " differ in size");
  own_.push_back({name, Tensor::zeros(shape), std::move(file_shape)});
  own_.back().value.set_requires_grad(true);
  return own_.back().value;
}

void Module::register_module(const std::string& name, Module& child) {
  children_.emplace_back(name, &child);
}

void Module::collect(const std::string& prefix, std::vector<NamedParameter>& out) {
  for (OwnParameter& p : own_) out.push_back({prefix + p.name, &p.value, p.file_shape});
  for (auto& [name, child] : children_) child->collect(prefix + name + ".", out);
}

std::vector<NamedParameter> Module::parameters() {
  std::vector<NamedParameter> out;
  collect("", out);
  return out;
}

int64_t Module::parameter_count() {
  int64_t total = 0;
  for (const NamedParameter& p : parameters()) total += p.value->numel();
  return total;
}

void Module::pack_parameters() {
  std::vector<NamedParameter> params = parameters();
  const Device dev = device();
  values_slab_ = Tensor::empty({1, 1, 1, parameter_count()}, dev);
  grads_slab_ = Tensor::zeros(values_slab_.shape(), dev);
  int64_t offset = 0;
  for (NamedParameter& p : params) {
    const int64_t count = p.value->numel();
    device_copy(values_slab_.data() + offset, dev, p.value->data(), dev, count);
    offset += count;
  }
  bind_to_slabs(params);
}

void Module::bind_to_slabs(std::vector<NamedParameter>& params) {
  int64_t offset = 0;
  for (NamedParameter& p : params) {
    const Shape shape = p.value->shape();
    Tensor packed = values_slab_.flat_view(offset, shape);
    packed.set_requires_grad(true);
    if (grads_slab_.defined()) packed.set_grad(grads_slab_.flat_view(offset, shape));
    *p.value = packed;
    offset += shape.numel();
  }
}

void Module::drop_gradients() {
  if (!grads_slab_.defined()) return;
  grads_slab_ = Tensor();
  std::vector<NamedParameter> params = parameters();
  bind_to_slabs(params);
}

Device Module::device() {
  std::vector<NamedParameter> params = parameters();
  return params.empty() ? Device::CPU : params.front().value->device();
}

void Module::to(Device target) {
  std::vector<NamedParameter> params = parameters();
  if (values_slab_.defined()) {
    if (values_slab_.device() == target) return;
    values_slab_ = values_slab_.to(target);
    if (grads_slab_.defined()) grads_slab_ = grads_slab_.to(target);
    bind_to_slabs(params);
    return;
  }
  for (NamedParameter& p : params) {
    if (p.value->device() == target) continue;
    *p.value = p.value->to(target);
    p.value->set_requires_grad(true);
  }
}

void Module::zero_grad() {
  if (grads_slab_.defined()) {
    device_zero(grads_slab_.data(), grads_slab_.numel(), grads_slab_.device());
    return;
  }
  for (NamedParameter& p : parameters()) p.value->set_grad(Tensor());
}

void Module::init_parameters(std::mt19937_64&) {}

void Module::init_tree(std::mt19937_64& rng) {
  init_parameters(rng);
  for (auto& [name, child] : children_) child->init_tree(rng);
}

void Module::reset_parameters(uint64_t seed) {
  // The layers' initialisers write host memory.
  DEBLUR_CHECK(device() == Device::CPU, "reset_parameters: the parameters are on ",
               device_name(device()), "; initialise them on the cpu, then move the module");
  std::mt19937_64 rng(seed);
  init_tree(rng);
}

void Module::load_state(const SafetensorsFile& state, const std::string& source) {
  std::vector<std::string> problems;
  std::vector<NamedParameter> params = parameters();
  for (const NamedParameter& p : params) {
    const TensorRecord* record = state.find(p.name);
    if (!record)
      problems.push_back("missing " + p.name + " " + shape_string(p.file_shape));
    else if (record->shape != p.file_shape)
      problems.push_back(p.name + " has shape " + shape_string(record->shape) + ", the model needs " +
                         shape_string(p.file_shape));
  }
  for (const TensorRecord& record : state.tensors) {
    const bool known = std::any_of(params.begin(), params.end(),
                                   [&](const NamedParameter& p) { return p.name == record.name; });
    if (!known) problems.push_back("unexpected " + record.name + " " + shape_string(record.shape));
  }
  if (!problems.empty()) {
    std::ostringstream message;
    message << source << ": state does not match the model (" << problems.size() << " problems):";
    const size_t shown = std::min<size_t>(problems.size(), 20);
    for (size_t i = 0; i < shown; ++i) message << "\n  " << problems[i];
    if (shown < problems.size()) message << "\n  ... and " << problems.size() - shown << " more";
    throw Error(message.str());
  }
  for (NamedParameter& p : params) {
    const TensorRecord* record = state.find(p.name);
    device_copy(p.value->data(), p.value->device(), record->values.data(), Device::CPU,
                p.value->numel());
  }
}

void Module::load_state(const std::string& path) {
  load_state(read_safetensors(path), path);
}

std::vector<TensorRecord> Module::state(DType dtype) {
  std::vector<TensorRecord> records;
  for (const NamedParameter& p : parameters())
    records.push_back({p.name, p.file_shape, p.value->to_vector(), dtype});
  return records;
}

void Module::save_state(const std::string& path, const std::map<std::string, std::string>& metadata,
                        DType dtype) {
  write_safetensors(path, state(dtype), metadata);
}

}  // namespace deblur
