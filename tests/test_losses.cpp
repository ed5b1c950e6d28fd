// Pixel losses: gradchecks of the Charbonnier and L1 CPU kernels in double for both inputs,
// hand-computed values, and the engine ops through autograd on channel-slice views.
#include <catch2/catch.hpp>
#include <cmath>

#include "engine/ops.h"
#include "kernels/cpu/losses.h"
#include "tests/testing.h"

using namespace deblur;
using namespace deblur::testing;

namespace {

enum class Loss { Charbonnier, L1 };

// The loss (a mean) and its gradients for pred and target, scaled by g, through the kernels.
double loss_value(Loss loss, std::vector<double> p, std::vector<double> t, Shape s, double eps) {
  const double sum = loss == Loss::Charbonnier
                         ? cpu::charbonnier_sum<double>(view(p, s), view(t, s), eps)
                         : cpu::l1_sum<double>(view(p, s), view(t, s));
  return sum / s.numel();
}

std::vector<std::vector<double>> loss_grads(Loss loss, std::vector<double> p, std::vector<double> t,
                                            Shape s, double eps, double g) {
  std::vector<double> gp(s.numel()), gt(s.numel());
  const double scale = g / s.numel();
  if (loss == Loss::Charbonnier)
    cpu::charbonnier_backward<double>(view(p, s), view(t, s), eps, scale, view(gp, s), view(gt, s));
  else
    cpu::l1_backward<double>(view(p, s), view(t, s), scale, view(gp, s), view(gt, s));
  return {gp, gt};
}

bool scalar_close(double actual, double ref, double rtol, const std::string& what) {
  return expect_close(std::vector<double>{actual}, std::vector<double>{ref}, 0, rtol, what);
}
}  // namespace

TEST_CASE("charbonnier and l1 kernels gradcheck", "[losses][gradcheck]") {
  const Shape s{2, 3, 5, 7};
  const double g = 1.7;  // an upstream gradient other than 1, to check the scale is applied
  auto p = random_values(s.numel(), 81), t = random_values(s.numel(), 82);
  // Keep |d| >= 0.01, away from L1's kink at 0; Charbonnier's region near 0 is checked below.
  for (size_t i = 0; i < p.size(); ++i)
    if (std::abs(p[i] - t[i]) < 0.01) p[i] += 0.02;
  for (Loss loss : {Loss::Charbonnier, Loss::L1}) {
    const char* name = loss == Loss::Charbonnier ? "charbonnier" : "l1";
    ScalarFn f = [&](const auto& in) { return g * loss_value(loss, in[0], in[1], s, 1e-3); };
    GradFn grad = [&](const auto& in) { return loss_grads(loss, in[0], in[1], s, 1e-3, g); };
    CHECK(gradcheck(f, grad, {p, t}, name));
  }

  // Charbonnier with d within 10 eps of 0, where its slope turns over. The central difference's
  // truncation error, step^2 |f'''| / 6 with |f'''| <= ~1/eps^2 per element, is about
  // 2e-7 / numel: inside the default tolerances.
  auto near = random_values(s.numel(), 83, -0.01, 0.01);
  std::vector<double> zero(s.numel(), 0.0);
  ScalarFn f = [&](const auto& in) { return loss_value(Loss::Charbonnier, in[0], in[1], s, 1e-3); };
  GradFn grad = [&](const auto& in) {
    return loss_grads(Loss::Charbonnier, in[0], in[1], s, 1e-3, 1.0);
  };
  CHECK(gradcheck(f, grad, {near, zero}, "charbonnier near 0"));
}

TEST_CASE("charbonnier and l1 by hand", "[losses]") {
  const Shape s{1, 1, 2, 2};
  Tensor pred = Tensor::from_vector(s, {0.0f, 0.003f, -1.0f, 2.0f}).set_requires_grad(true);
  Tensor target = Tensor::zeros(s).set_requires_grad(true);
  // d = pred. Charbonnier = mean(sqrt(d^2 + 1e-6)) = (1e-3 + sqrt(1e-5) + sqrt(1 + 1e-6) +
  // sqrt(4 + 1e-6)) / 4; its gradient d / sqrt(d^2 + 1e-6) / 4 is 0 at d == 0.
  const double d3 = 0.003f;  // the float value the tensor holds
  const double want_charb =
      (1e-3 + std::sqrt(d3 * d3 + 1e-6) + std::sqrt(1.0 + 1e-6) + std::sqrt(4.0 + 1e-6)) / 4;
  Tensor loss = charbonnier(pred, target);
  REQUIRE(loss.shape() == Shape{1, 1, 1, 1});
  // Float terms summed in double: a few float roundings of order-one values (~1e-7 relative).
  CHECK(scalar_close(loss.item(), want_charb, 1e-6, "charbonnier value"));
  loss.backward();
  const std::vector<double> want_gp = {0.0, d3 / std::sqrt(d3 * d3 + 1e-6) / 4,
                                       -1.0 / std::sqrt(1.0 + 1e-6) / 4,
                                       2.0 / std::sqrt(4.0 + 1e-6) / 4};
  // Float evaluation of d / sqrt(d^2 + eps^2) (~1e-7 relative); 0 at d == 0 exactly.
  CHECK(expect_close(to_double(pred.grad().to_vector()), want_gp, 0, 1e-6, "charbonnier grad"));
  std::vector<double> want_gt;
  for (double v : want_gp) want_gt.push_back(-v);
  CHECK(expect_close(to_double(target.grad().to_vector()), want_gt, 0, 1e-6, "charbonnier dt"));

  // L1 = (0 + 0.003 + 1 + 2) / 4; gradient sign(d) / 4 with sign(0) = 0 as in PyTorch.
  pred.set_grad(Tensor());
  target.set_grad(Tensor());
  Tensor l1 = l1_loss(pred, target);
  CHECK(scalar_close(l1.item(), (d3 + 3.0) / 4, 1e-7, "l1 value"));
  l1.backward();
  // Signs times a power of two: exact.
  CHECK(pred.grad().to_vector() == std::vector<float>{0.0f, 0.25f, -0.25f, 0.25f});
  CHECK(target.grad().to_vector() == std::vector<float>{-0.0f, -0.25f, 0.25f, -0.25f});
}

TEST_CASE("loss ops through autograd on channel-slice views", "[losses]") {
  const Shape s{2, 3, 5, 6};
  Tensor pred_base = random_tensor({2, 5, 5, 6}, 91);
  Tensor pred = pred_base.channel_slice(2, 3).set_requires_grad(true);
  Tensor target_base = random_tensor({2, 4, 5, 6}, 92);
  Tensor target = target_base.channel_slice(1, 3);  // needs no grad: only grad_pred is written
  REQUIRE(pred.batch_stride() > s.c * s.h * s.w);
  const auto pd = to_double(pred.to_vector()), td = to_double(target.to_vector());

  for (Loss loss : {Loss::Charbonnier, Loss::L1}) {
    pred.set_grad(Tensor());
    Tensor value = loss == Loss::Charbonnier ? charbonnier(pred, target) : l1_loss(pred, target);
    REQUIRE(value.shape() == Shape{1, 1, 1, 1});
    // The mean of 180 order-one float terms summed in double: ~1e-7 relative.
    CHECK(scalar_close(value.item(), loss_value(loss, pd, td, s, 1e-3), 1e-6, "loss value"));
    value.backward();
    // Order-one slopes over numel; float slope evaluation ~1e-7 relative (|d| here is far
    // above eps, where the Charbonnier slope is well conditioned), with margin.
    CHECK(expect_close(to_double(pred.grad().to_vector()), loss_grads(loss, pd, td, s, 1e-3, 1)[0],
                       1e-9, 1e-5, "loss grad"));
    CHECK_FALSE(target.requires_grad());
  }

  // Only the target requires grad: its gradient is -dloss/dd / numel.
  Tensor t2 = target.clone().set_requires_grad(true);
  l1_loss(pred.detach(), t2).backward();
  // Signs times float(1 / numel): exact against the double slopes rounded to float.
  CHECK(t2.grad().to_vector() == to_float(loss_grads(Loss::L1, pd, td, s, 0, 1)[1]));

  CHECK_THROWS_WITH(charbonnier(pred, random_tensor({2, 3, 5, 7}, 93)),
                    Catch::Contains("charbonnier") && Catch::Contains("[2, 3, 5, 6]") &&
                        Catch::Contains("[2, 3, 5, 7]"));
  CHECK_THROWS_WITH(l1_loss(pred, random_tensor({1, 3, 5, 6}, 94)),
                    Catch::Contains("l1_loss") && Catch::Contains("[2, 3, 5, 6]") &&
                        Catch::Contains("[1, 3, 5, 6]"));
}
