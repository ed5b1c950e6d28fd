// Autograd: a define-by-run tape.
//
// Every op that sees an input requiring grad (with grad mode on) records a Node on its output:
// pointers to its inputs' autograd state and a backward closure that captures only what the
// gradient needs. Tensor::backward() on a 1-element tensor runs the closures in reverse
// topological order and then drops them (and the tensors they saved).
//
// Gradient rules: a leaf's gradient (a parameter, or any tensor made with set_requires_grad)
// accumulates (+=) across backward calls until cleared; an intermediate tensor's gradient is
// assigned (=) by the op that consumed it and summed over consumers when there are several.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "engine/tensor.h"

namespace deblur {

struct Node;

struct AutogradMeta {
  std::shared_ptr<Node> grad_fn;  // the op that produced the tensor; null for a leaf
  Tensor grad;                    // a leaf's accumulated gradient
};

// What a backward closure hands its input gradients to.
class GradInputs {
 public:
  GradInputs(Node& node, std::vector<Tensor>& pending_slots) : node_(node), slots_(pending_slots) {}

  bool needed(size_t input) const;
  // A freshly computed gradient (=) for the input; the engine routes and sums it.
  void set(size_t input, const Tensor& grad);
  // A buffer to add (+=) the input's gradient into: a leaf's .grad itself (so parameter
  // gradients accumulate with no temporary), else a zero-filled or private pending buffer
  // (the same one again when one tensor is several inputs of this op).
  Tensor accumulator(size_t input);

 private:
  Node& node_;
  std::vector<Tensor>& slots_;
  std::vector<const AutogradMeta*> private_slots_;  // pending buffers this op owns already
};

using BackwardFn = std::function<void(const Tensor& grad_output, GradInputs& grads)>;

struct Node {
  const char* op = "";
  std::vector<std::shared_ptr<AutogradMeta>> inputs;  // null where an input needs no grad
  std::vector<Shape> input_shapes;
  std::vector<Device> input_devices;
  BackwardFn backward;
  int64_t pending_slot = -1;  // index of its output gradient during a backward pass
};

bool grad_enabled();

// Inference scope: ops record nothing while one is alive.
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// True when grad mode is on and any defined input requires grad: the op must record.
bool needs_grad(std::initializer_list<Tensor> inputs);

// Makes `output` the result of `op` on `inputs` with the given backward.
void record(Tensor& output, const char* op, std::initializer_list<Tensor> inputs, BackwardFn fn);

}  // namespace deblur
