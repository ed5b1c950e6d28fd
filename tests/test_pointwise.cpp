// Pointwise ops: gradchecks of the CPU kernels in double, and the engine ops' autograd.
#include <catch2/catch.hpp>

#include "engine/ops.h"
#include "kernels/cpu/pointwise.h"
#include "tests/testing.h"

using namespace deblur;
using namespace deblur::testing;

TEST_CASE("relu kernel gradcheck", "[gradcheck][relu]") {
  const Shape s{2, 3, 5, 7};
  const auto r = random_values(s.numel(), 11);
  auto forward = [&](const std::vector<std::vector<double>>& in) {
    std::vector<double> x = in[0], y(s.numel());
    cpu::relu_forward<double>(view(x, s), view(y, s));
    return y;
  };
  ScalarFn f = [&](const auto& in) { return weighted_sum(forward(in), r); };
  GradFn g = [&](const auto& in) {
    std::vector<double> y = forward(in), gy = r, gx(s.numel());
    cpu::relu_backward<double>(view(y, s), view(gy, s), view(gx, s));
    return std::vector<std::vector<double>>{gx};
  };
  // Inputs kept away from the kink at 0, where the derivative is undefined.
  auto x = random_values(s.numel(), 12);
  for (double& v : x) v += v > 0 ? 0.01 : -0.01;
  CHECK(gradcheck(f, g, {x}, "relu"));
}

TEST_CASE("add and accumulate", "[add]") {
  Tensor a = random_tensor({2, 3, 4, 5}, 1).set_requires_grad(true);
  Tensor b = random_tensor({2, 3, 4, 5}, 2).set_requires_grad(true);
  Tensor y = mean(add(a, b));
  y.backward();
  // d mean / d a = 1 / numel exactly representable here up to float rounding.
  const std::vector<float> expected(a.numel(), 1.0f / a.numel());
  CHECK(expect_close(a.grad().to_vector(), expected, 0, 1e-6, "add grad a"));
  CHECK(expect_close(b.grad().to_vector(), expected, 0, 1e-6, "add grad b"));
  CHECK_THROWS_WITH(add(a, random_tensor({2, 3, 4, 6}, 3)), Catch::Contains("add") &&
                                                                Catch::Contains("[2, 3, 4, 5]") &&
                                                                Catch::Contains("[2, 3, 4, 6]"));
}

TEST_CASE("lerp moves a tensor toward another in place", "[lerp]") {
  const Tensor target = random_tensor({2, 3, 4, 5}, 4);
  const Tensor average = random_tensor({2, 3, 4, 5}, 5);
  const std::vector<float> start = average.to_vector(), end = target.to_vector();
  lerp(average, target, 0.25f);
  std::vector<float> expected(start.size());
  for (size_t k = 0; k < start.size(); ++k)
    expected[k] = static_cast<float>(start[k] + 0.25 * (double(end[k]) - start[k]));
  // Two float roundings (the difference, the product) and the sum's: a few ulps of |y| <= 1.
  CHECK(expect_close(average.to_vector(), expected, 4e-7, 0, "lerp 0.25"));
  CHECK(target.to_vector() == end);  // the target is only read
  lerp(average, target, 1.0f);       // weight 1 lands on the target (to the rounding of y + (x - y))
  CHECK(expect_close(average.to_vector(), end, 2.4e-7, 0, "lerp 1"));
  CHECK_THROWS_WITH(lerp(average, random_tensor({2, 3, 4, 6}, 6), 0.5f),
                    Catch::Contains("lerp") && Catch::Contains("[2, 3, 4, 6]"));
}

TEST_CASE("scale, clamp and mean kernels gradcheck", "[gradcheck][scale][clamp][mean]") {
  const Shape s{2, 3, 4, 5};
  const auto r = random_values(s.numel(), 21);
  auto x = random_values(s.numel(), 22, -2.0, 2.0);
  // Keep inputs off the clamp edges (+-1), where the derivative jumps.
  for (double& v : x)
    if (std::abs(std::abs(0.7 * v + 0.1) - 1.0) < 0.01) v += 0.05;
  auto run = [&](const std::vector<double>& in, std::vector<double>& y) {
    std::vector<double> xin = in, scaled(s.numel());
    cpu::scale_forward<double>(view(xin, s), 0.7, 0.1, view(scaled, s));
    cpu::clamp_forward<double>(view(scaled, s), -1.0, 1.0, view(y, s));
    return scaled;
  };
  ScalarFn f = [&](const auto& in) {
    std::vector<double> y(s.numel());
    run(in[0], y);
    for (double& v : y) v *= 3.0;
    return weighted_sum(y, r) + cpu::sum<double>(view(y, s)) / s.numel();
  };
  GradFn g = [&](const auto& in) {
    std::vector<double> y(s.numel());
    std::vector<double> scaled = run(in[0], y);
    std::vector<double> gy(s.numel()), gmid(s.numel()), gx(s.numel());
    cpu::fill<double>(view(gy, s), 3.0 / s.numel());
    for (size_t i = 0; i < gy.size(); ++i) gy[i] += 3.0 * r[i];
    cpu::clamp_backward<double>(view(scaled, s), -1.0, 1.0, view(gy, s), view(gmid, s));
    cpu::scale_forward<double>(view(gmid, s), 0.7, 0.0, view(gx, s));
    return std::vector<std::vector<double>>{gx};
  };
  CHECK(gradcheck(f, g, {x}, "scale+clamp+mean"));
}
