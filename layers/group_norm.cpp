// GroupNorm layer.
#include "layers/group_norm.h"

#include <algorithm>

#include "engine/ops.h"

namespace deblur {

GroupNorm::GroupNorm(int groups, int64_t channels, float eps)
    : groups_(groups),
      eps_(eps),
      weight_(register_parameter("weight", {channels, 1, 1, 1}, {channels})),
      bias_(register_parameter("bias", {channels, 1, 1, 1}, {channels})) {}

Tensor GroupNorm::forward(const Tensor& x, bool fuse_relu, const Tensor& out) const {
  if (out.defined()) return group_norm_into(out, x, weight_, bias_, groups_, eps_, fuse_relu);
  return group_norm(x, weight_, bias_, groups_, eps_, fuse_relu);
}

void GroupNorm::init_parameters(std::mt19937_64&) {
  std::fill_n(weight_.data(), weight_.numel(), 1.0f);
  std::fill_n(bias_.data(), bias_.numel(), 0.0f);
}

}  // namespace deblur
