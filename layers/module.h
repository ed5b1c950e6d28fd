// Module: the parameter registry every layer builds on.
//
// A module registers its own parameters and its child modules by name; parameters() walks them
// in registration order with dotted names, which for the layers here is PyTorch's state_dict
// order. The root calls pack_parameters() once built: all parameter values then live in one
// slab and all gradients in another, so global-norm clipping is one reduction and an optimizer
// one pass. State moves through safetensors files with PyTorch's names and shapes.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "engine/safetensors.h"
#include "engine/tensor.h"

namespace deblur {

struct NamedParameter {
  std::string name;                 // dotted, e.g. "enc1.conv1.weight"
  Tensor* value;                    // the module's own handle (rebinding it rebinds the layer)
  std::vector<int64_t> file_shape;  // PyTorch's shape, e.g. {32} for a bias
};

class Module {
 public:
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  virtual ~Module() = default;

  std::vector<NamedParameter> parameters();
  int64_t parameter_count();

  // Moves every parameter into one value slab and gives each a gradient view into one gradient
  // slab (zeroed). Call once, on the root, after construction.
  void pack_parameters();
  const Tensor& parameter_values() const { return values_slab_; }
  const Tensor& parameter_grads() const { return grads_slab_; }
  void zero_grad();
  // Frees the gradient slab, for models that only run inference. Parameters keep their values
  // (still packed) and lose their gradients: a later backward gives each a gradient of its own,
  // and parameter_grads() is undefined.
  void drop_gradients();

  // Moves every parameter's value and gradient to `device`: packed, the slabs move whole
  // (each stays one allocation) and every parameter is rebound to views of the moved slabs;
  // unpacked, each parameter moves on its own and loses its gradient. Layers hold the
  // parameters by reference, so the model then runs on `device`. Not to be called between a
  // forward and its backward (the graph keeps the old tensors).
  void to(Device device);
  Device device();  // where the parameters live (CPU for a module without any)

  // PyTorch's default initialisation for every layer, from a seeded generator (on the CPU).
  void reset_parameters(uint64_t seed);

  // Copies values from a state dict: names and shapes must match exactly (a mismatch throws
  // one error listing every missing, unexpected or misshapen tensor, naming `source`).
  void load_state(const SafetensorsFile& state, const std::string& source);
  void load_state(const std::string& path);
  std::vector<TensorRecord> state(DType dtype = DType::F32);
  void save_state(const std::string& path, const std::map<std::string, std::string>& metadata = {},
                  DType dtype = DType::F32);

 protected:
  Tensor& register_parameter(const std::string& name, Shape shape, std::vector<int64_t> file_shape);
  void register_module(const std::string& name, Module& child);
  // A layer's own initialisation; the default leaves its parameters as they are.
  virtual void init_parameters(std::mt19937_64& rng);

 private:
  struct OwnParameter {
    std::string name;
    Tensor value;
    std::vector<int64_t> file_shape;
  };
  void collect(const std::string& prefix, std::vector<NamedParameter>& out);
  // Rebinds every parameter to its views of the slabs (values and gradients).
  void bind_to_slabs(std::vector<NamedParameter>& params);
  void init_tree(std::mt19937_64& rng);

  std::deque<OwnParameter> own_;  // deque: the references handed to layers stay valid
  std::vector<std::pair<std::string, Module*>> children_;
  Tensor values_slab_, grads_slab_;
};

}  // namespace deblur
