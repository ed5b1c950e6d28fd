// GroupNorm (+ReLU): gradchecks of the CPU kernels in double, the normalisation itself, and the
// op's checks.
#include <catch2/catch.hpp>
#include <cmath>

#include "engine/ops.h"
#include "kernels/cpu/group_norm.h"
#include "tests/testing.h"

using namespace deblur;
using namespace deblur::testing;

TEST_CASE("group_norm kernel gradcheck", "[gradcheck][group_norm]") {
  for (bool relu : {false, true}) {
    const Shape s{2, 6, 5, 7};
    const int groups = 3;
    const auto r = random_values(s.numel(), 30);
    auto forward = [&](const std::vector<std::vector<double>>& in) {
      std::vector<double> x = in[0], y(s.numel()), mean(s.n * groups), rstd(s.n * groups);
      cpu::group_norm_forward<double>(view(x, s), in[1].data(), in[2].data(), groups, 1e-5, relu,
                                      view(y, s), mean.data(), rstd.data());
      return std::make_tuple(y, mean, rstd);
    };
    ScalarFn f = [&](const auto& in) { return weighted_sum(std::get<0>(forward(in)), r); };
    GradFn g = [&](const auto& in) {
      auto [y, mean, rstd] = forward(in);
      std::vector<double> x = in[0], gy = r, gx(s.numel());
      std::vector<double> gg(s.c, 1.0), gb(s.c, 2.0);  // pre-filled: must accumulate
      cpu::group_norm_backward<double>(view(x, s), view(y, s), in[1].data(), mean.data(),
                                       rstd.data(), groups, relu, view(gy, s), view(gx, s),
                                       gg.data(), gb.data());
      for (double& v : gg) v -= 1.0;
      for (double& v : gb) v -= 2.0;
      return std::vector<std::vector<double>>{gx, gg, gb};
    };
    std::vector<std::vector<double>> inputs = {random_values(s.numel(), 31, -2, 2),
                                               random_values(s.c, 32, 0.5, 1.5),
                                               random_values(s.c, 33, -0.5, 0.5)};
    // The ReLU kink: a central difference straddling z == 0 is wrong by design; random inputs
    // keep |z| > step everywhere with overwhelming probability, checked by the pass itself.
    CHECK(gradcheck(f, g, inputs, relu ? "group_norm_relu" : "group_norm"));
  }
}

TEST_CASE("group_norm normalises each group", "[group_norm]") {
  Tensor x = random_tensor({2, 8, 4, 3}, 40, -3, 5);
  Tensor y = group_norm(x, Tensor::full({8, 1, 1, 1}, 1.0f), Tensor::zeros({8, 1, 1, 1}), 4);
  const auto v = y.to_vector();
  const int64_t group = 2 * 4 * 3;
  for (int64_t start = 0; start < int64_t(v.size()); start += group) {
    double s = 0, ss = 0;
    for (int64_t i = start; i < start + group; ++i) s += v[i];
    const double mu = s / group;
    for (int64_t i = start; i < start + group; ++i) ss += (v[i] - mu) * (v[i] - mu);
    // float32 normalisation of 24 values: mean ~1e-7, variance 1 - eps/var within ~1e-5.
    CHECK(std::abs(mu) < 1e-6);
    CHECK(std::abs(ss / group - 1.0) < 1e-4);
  }
  CHECK_THROWS_WITH(group_norm(random_tensor({1, 6, 2, 2}, 1), Tensor::zeros({6, 1, 1, 1}),
                               Tensor::zeros({6, 1, 1, 1}), 4),
                    Catch::Contains("6 channels") && Catch::Contains("4 groups"));
}

TEST_CASE("group_norm_into writes a buffer's channel slice and backpropagates as group_norm",
          "[group_norm]") {
  // Fresh leaves per run (same values), so each run's gradients start from zero.
  struct Leaves {
    Tensor x, gamma, beta;
  };
  auto leaves = [] {
    Leaves l{random_tensor({2, 8, 5, 3}, 41, -2, 3), random_tensor({8, 1, 1, 1}, 42, 0.5, 1.5),
             random_tensor({8, 1, 1, 1}, 43)};
    l.x.set_requires_grad(true), l.gamma.set_requires_grad(true), l.beta.set_requires_grad(true);
    return l;
  };
  const Tensor grad_y = random_tensor({2, 8, 5, 3}, 44);

  const Leaves a = leaves();
  const Tensor fresh = group_norm(a.x, a.gamma, a.beta, 4, 1e-5f, /*fuse_relu=*/true);
  fresh.backward(grad_y);

  const Leaves b = leaves();
  Tensor buffer = Tensor::full({2, 11, 5, 3}, 7.0f);
  const Tensor in_place = group_norm_into(buffer.channel_slice(2, 8), b.x, b.gamma, b.beta, 4,
                                          1e-5f, /*fuse_relu=*/true);
  CHECK(in_place.data() == buffer.channel_slice(2, 8).data());
  CHECK(buffer.channel_slice(2, 8).to_vector() == fresh.to_vector());
  for (float v : buffer.channel_slice(0, 2).to_vector()) CHECK(v == 7.0f);  // untouched
  for (float v : buffer.channel_slice(10, 1).to_vector()) CHECK(v == 7.0f);
  in_place.backward(grad_y);
  CHECK(b.x.grad().to_vector() == a.x.grad().to_vector());
  CHECK(b.gamma.grad().to_vector() == a.gamma.grad().to_vector());
  CHECK(b.beta.grad().to_vector() == a.beta.grad().to_vector());

  CHECK_THROWS_WITH(group_norm_into(buffer.channel_slice(0, 4), b.x, b.gamma, b.beta, 4),
                    Catch::Contains("out [2, 4, 5, 3] must be [2, 8, 5, 3]"));
}
