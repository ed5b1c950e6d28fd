// The tape: recording nodes, and the backward pass in reverse topological order.
#include "engine/autograd.h"

#include <algorithm>
#include <unordered_set>

#include "engine/check.h"
#include "engine/ops.h"

namespace deblur {

namespace {
thread_local bool g_grad_enabled = true;

// Adds g into the leaf's .grad, allocating it on first use.
void accumulate_leaf(AutogradMeta& meta, const Tensor& g) {
  if (!meta.grad.defined())
    meta.grad = g.clone();
  else
    accumulate(meta.grad, g);
}
}  // namespace

bool grad_enabled() {
  return g_grad_enabled;
}

NoGradGuard::NoGradGuard() : previous_(g_grad_enabled) {
  g_grad_enabled = false;
}
NoGradGuard::~NoGradGuard() {
  g_grad_enabled = previous_;
}

bool needs_grad(std::initializer_list<Tensor> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

void record(Tensor& output, const char* op, std::initializer_list<Tensor> inputs, BackwardFn fn) {
  auto node = std::make_shared<Node>();
  node->op = op;
  for (const Tensor& t : inputs) {
    node->inputs.push_back(t.defined() && t.requires_grad() ? t.autograd_meta() : nullptr);
    node->input_shapes.push_back(t.defined() ? t.shape() : Shape{});
    node->input_devices.push_back(t.defined() ? t.device() : Device::CPU);
  }
  node->backward = std::move(fn);
  auto meta = std::make_shared<AutogradMeta>();
  meta->grad_fn = std::move(node);
  output.set_autograd_meta(std::move(meta));
}

bool GradInputs::needed(size_t input) const {
  return input < node_.inputs.size() && node_.inputs[input] != nullptr;
}

void GradInputs::set(size_t input, const Tensor& grad) {
  if (!needed(input)) return;
  DEBLUR_CHECK(grad.shape() == node_.input_shapes[input], node_.op, " backward produced grad ",
               grad.shape().str(), " for input ", input, " of shape ",
               node_.input_shapes[input].str());
  AutogradMeta& meta = *node_.inputs[input];
  if (!meta.grad_fn) {
    accumulate_leaf(meta, grad);
    return;
  }
  Tensor& slot = slots_[meta.grad_fn->pending_slot];
  // Out of place: `grad` may alias a buffer another input's gradient also uses.
  slot = slot.defined() ? add(slot, grad) : grad;
}

Tensor GradInputs::accumulator(size_t input) {
  DEBLUR_CHECK(needed(input), node_.op, ": accumulator for input ", input, " that needs no grad");
  AutogradMeta& meta = *node_.inputs[input];
  const Shape& shape = node_.input_shapes[input];
  Device device = node_.input_devices[input];
  if (!meta.grad_fn) {
    if (!meta.grad.defined()) meta.grad = Tensor::zeros(shape, device);
    return meta.grad;
  }
  Tensor& slot = slots_[meta.grad_fn->pending_slot];
  const bool owned =
      std::find(private_slots_.begin(), private_slots_.end(), &meta) != private_slots_.end();
  if (!owned) {
    // A copy: the pending gradient may alias a buffer another input's gradient also uses.
    slot = slot.defined() ? slot.clone() : Tensor::zeros(shape, device);
    private_slots_.push_back(&meta);
  }
  return slot;
}

bool Tensor::requires_grad() const {
  return autograd_meta() != nullptr;
}

Tensor& Tensor::set_requires_grad(bool on) {
  if (!on) {
    set_autograd_meta(nullptr);
  } else if (!requires_grad()) {
    set_autograd_meta(std::make_shared<AutogradMeta>());
  }
  return *this;
}

Tensor Tensor::grad() const {
  return requires_grad() ? autograd_meta()->grad : Tensor();
}

void Tensor::set_grad(const Tensor& grad) {
  DEBLUR_CHECK(requires_grad() && !autograd_meta()->grad_fn,
               "set_grad on a tensor that is not a leaf requiring grad");
  DEBLUR_CHECK(!grad.defined() || grad.shape() == shape(), "set_grad: grad shape ",
               grad.shape().str(), " differs from ", shape().str());
  // Parameter-gradient kernels write a leaf's .grad as one flat array.
  DEBLUR_CHECK(!grad.defined() || grad.is_contiguous(), "set_grad: grad ", grad.shape().str(),
               " must be contiguous");
  autograd_meta()->grad = grad;
}

void Tensor::backward() const {
  DEBLUR_CHECK(numel() == 1, "backward() needs a 1-element tensor, got ", shape().str(),
               " (pass a gradient to backward(grad) for others)");
  backward(Tensor::full(shape(), 1.0f, device()));
}

void Tensor::backward(const Tensor& seed) const {
  DEBLUR_CHECK(requires_grad(), "backward() on a tensor that does not require grad");
  DEBLUR_CHECK(seed.shape() == shape() && seed.device() == device(), "backward: gradient ",
               seed.shape().str(), " on ", device_name(seed.device()), " for a tensor ",
               shape().str(), " on ", device_name(device()));
  const std::shared_ptr<AutogradMeta>& root = autograd_meta();
  if (!root->grad_fn) {
    accumulate_leaf(*root, seed);
    return;
  }

  // Post-order DFS: every node comes after all nodes it feeds from.
  std::vector<Node*> order;
  std::unordered_set<Node*> visited;
  std::vector<std::pair<Node*, size_t>> stack{{root->grad_fn.get(), 0}};
  visited.insert(root->grad_fn.get());
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->inputs.size()) {
      const auto& in = node->inputs[next++];
      Node* child = in ? in->grad_fn.get() : nullptr;
      if (child && visited.insert(child).second) stack.push_back({child, 0});
    } else {
      order.push_back(node);
      stack.pop_back();
    }
  }

  std::vector<Tensor> pending(order.size());
  for (size_t i = 0; i < order.size(); ++i) order[i]->pending_slot = static_cast<int64_t>(i);
  pending[root->grad_fn->pending_slot] = seed;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node& node = **it;
    Tensor grad_output = std::move(pending[node.pending_slot]);
    if (!grad_output.defined()) continue;  // nothing flowed here
    DEBLUR_CHECK(node.backward != nullptr, "backward through ", node.op,
                 " a second time: its saved tensors were freed by the first backward");
    GradInputs grads(node, pending);
    node.backward(grad_output, grads);
    node.backward = nullptr;  // frees what the op saved
  }
  for (Node* node : order) node->pending_slot = -1;
}

}  // namespace deblur
