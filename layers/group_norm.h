// GroupNorm layer: nn.GroupNorm(groups, channels, eps=1e-5) with affine weight and bias,
// optionally followed by a ReLU fused into the same op.
#pragma once

#include "layers/module.h"

namespace deblur {

class GroupNorm : public Module {
 public:
  GroupNorm(int groups, int64_t channels, float eps = 1e-5f);
  // With `out` defined, the result is written there (engine/ops.h group_norm_into).
  Tensor forward(const Tensor& x, bool fuse_relu = false, const Tensor& out = Tensor()) const;

 protected:
  void init_parameters(std::mt19937_64& rng) override;  // weight 1, bias 0, as PyTorch

 private:
  int groups_;
  float eps_;
  Tensor& weight_;
  Tensor& bias_;
};

}  // namespace deblur
