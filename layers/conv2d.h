// Conv2d layer: nn.Conv2d(in, out, k, padding=k/2) with bias, k = 1 or 3.
#pragma once

#include "layers/module.h"

namespace deblur {

class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, int kernel);
  Tensor forward(const Tensor& x) const;

  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }

 protected:
  // PyTorch's default: kaiming_uniform_(a=sqrt(5)) for the weight, which is
  // U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for the bias.
  void init_parameters(std::mt19937_64& rng) override;

 private:
  Tensor& weight_;
  Tensor& bias_;
};

}  // namespace deblur
