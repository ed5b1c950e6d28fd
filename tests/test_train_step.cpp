// One training step against PyTorch (tests/fixtures/train_step.safetensors, written by
// data_tools/make_train_step_fixture.py): the CombinedLoss terms in both MS-SSIM forms, every
// parameter gradient, the global norm, and the loss after one AdamW step; and the L1 fallback.
#include <catch2/catch.hpp>
#include <cmath>
#include <string>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "layers/deblur_unet.h"
#include "tests/fixture_rng.h"
#include "tests/fixtures.h"
#include "tests/testing.h"
#include "train/loss.h"
#include "train/optimizer.h"

namespace deblur::train {
namespace {

using testing::fixture_symmetric;
using testing::load_fixture;

double meta_double(const SafetensorsFile& file, const std::string& key) {
  return std::stod(file.metadata.at(key));
}

Tensor fixture_batch(uint64_t stream) {
  const Shape shape{2, 3, 176, 176};
  return Tensor::from_vector(shape, fixture_symmetric(stream, size_t(shape.numel()), 1.0));
}

TEST_CASE("one training step matches PyTorch: loss terms, gradients, AdamW, loss after",
          "[train_step]") {
  const SafetensorsFile fixture = load_fixture("train_step.safetensors");
  DeblurUNet model(8, 0);
  testing::load_fixture_weights(model);
  const Tensor x = fixture_batch(7), target = fixture_batch(8);

  // float32 against float64 through 23 layers and the 5-scale MS-SSIM: the output agrees to
  // ~1e-6 relative (the UNet fixture test), and each loss term is a mean of such values. The
  // layers that take Winograd in training (kernels/cpu/conv2d.h) round ~10x more coarsely than
  // the direct sum (test_conv2d's Winograd bound).
  constexpr double kLossTol = 2e-5;
  CombinedLoss loss;
  const Tensor pred = model.forward(x);
  const LossTerms terms = loss(pred, target);
  CHECK_FALSE(terms.fell_back);
  CHECK(terms.structure.item() == Approx(meta_double(fixture, "structure")).epsilon(kLossTol));
  CHECK(terms.charbonnier.item() == Approx(meta_double(fixture, "charbonnier")).epsilon(kLossTol));
  CHECK(terms.total.item() == Approx(meta_double(fixture, "loss")).epsilon(kLossTol));
  {
    NoGradGuard no_grad;
    CombinedLoss seed_form({0.84, 0.16, /*seed_msssim=*/true});
    CHECK(seed_form(pred, target).total.item() ==
          Approx(meta_double(fixture, "seed_loss")).epsilon(kLossTol));
  }

  terms.total.backward();
  // Gradients: the UNet fixture test's bound (worst parameter 8.8e-6 relative there), plus an
  // absolute 5e-6 for sums that cancel: a conv bias just before a GroupNorm of one channel per
  // group has a zero gradient (float32 leaves ~2e-9), and final.bias sums 62k pixel gradients
  // whose absolute sum is ~360x their sum (2.7 vs 0.0076, measured in float64), so ~1e-6
  // relative error per pixel gives up to ~3e-6 there.
  constexpr double kGradTol = 1e-4, kGradMargin = 5e-6;
  for (const NamedParameter& p : model.parameters()) {
    INFO(p.name);
    const std::vector<float> grad = p.value->grad().to_vector();
    double norm = 0.0;
    for (float g : grad) norm += double(g) * g;
    norm = std::sqrt(norm);
    const double want_norm = fixture.find("grad." + p.name + ".norm")->values[0];
    CHECK(norm == Approx(want_norm).epsilon(kGradTol).margin(kGradMargin));
    const std::vector<float>& sample = fixture.find("grad." + p.name + ".sample")->values;
    const size_t m = sample.size();
    for (size_t j = 0; j < m; ++j)
      CHECK(std::abs(grad[j * grad.size() / m] - sample[j]) <= kGradTol * want_norm + kGradMargin);
  }

  common::AdamWHyper hyper;  // lr 2e-4, betas (0.9, 0.999), eps 1e-8, weight decay 1e-4, clip 1
  AdamW optimizer(model, hyper);
  optimizer.step(2e-4);
  CHECK(optimizer.last_grad_norm() == Approx(meta_double(fixture, "grad_norm")).epsilon(kGradTol));
  NoGradGuard no_grad;
  // The step lowers the loss by ~0.014; 1e-4 is under 1% of that, and far above the float32
  // error plus the few weights whose tiny gradient has the other sign in float32 (a first AdamW
  // step moves every weight by about lr whatever its gradient's size).
  CHECK(loss(model.forward(x), target).total.item() ==
        Approx(meta_double(fixture, "loss_after")).margin(1e-4));
}

TEST_CASE("CombinedLoss falls back to L1 where MS-SSIM cannot be computed, and counts it",
          "[train_step]") {
  const Shape small{1, 3, 64, 64};
  const Tensor pred = Tensor::from_vector(small, fixture_symmetric(20, size_t(small.numel()), 1.2));
  const Tensor target = Tensor::from_vector(small, fixture_symmetric(21, size_t(small.numel()), 1.0));
  CombinedLoss loss;
  const LossTerms terms = loss(pred, target);
  CHECK(terms.fell_back);
  CHECK(loss.fallbacks() == 1);
  const Tensor p = clamp(pred, -1.0f, 1.0f), t = clamp(target, -1.0f, 1.0f);
  const double l1 = l1_loss(p, t).item(), charb = charbonnier(p, t).item();
  CHECK(terms.structure.item() == Approx(l1).epsilon(1e-6));
  CHECK(terms.total.item() == Approx(0.84 * l1 + 0.16 * charb).epsilon(1e-6));

  // A non-finite MS-SSIM (a NaN in the prediction) falls back too.
  std::vector<float> values = fixture_symmetric(22, 2 * 3 * 176 * 176, 1.0);
  values[100] = std::nanf("");
  const Tensor nan_pred = Tensor::from_vector({2, 3, 176, 176}, values);
  CHECK(loss(nan_pred, fixture_batch(8)).fell_back);
  CHECK(loss.fallbacks() == 2);
}

}  // namespace
}  // namespace deblur::train
