// Conv2d layer.
#include "layers/conv2d.h"

#include <cmath>

#include "engine/ops.h"

namespace deblur {

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, int kernel)
    : weight_(register_parameter("weight", {out_channels, in_channels, kernel, kernel},
                                 {out_channels, in_channels, kernel, kernel})),
      bias_(register_parameter("bias", {out_channels, 1, 1, 1}, {out_channels})) {}

Tensor Conv2d::forward(const Tensor& x) const {
  return conv2d(x, weight_, bias_);
}

void Conv2d::init_parameters(std::mt19937_64& rng) {
  const Shape& s = weight_.shape();
  const double bound = 1.0 / std::sqrt(double(s.c * s.h * s.w));
  std::uniform_real_distribution<double> dist(-bound, bound);
  for (Tensor* t : {&weight_, &bias_}) {
    float* p = t->data();
    for (int64_t i = 0; i < t->numel(); ++i) p[i] = float(dist(rng));
  }
}

}  // namespace deblur
