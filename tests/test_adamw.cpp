// AdamW with global-norm clipping and the cosine schedule on the CPU (kernels/cpu/adamw.h): the
// double kernel against PyTorch's torch.optim.AdamW + clip_grad_norm_ + CosineAnnealingLR
// (tests/fixtures/adamw.safetensors, data_tools/make_optimizer_fixture.py), the clip-scale
// rule's edge cases, the schedule's closed form, and the norm's independence of thread count.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "kernels/cpu/adamw.h"
#include "kernels/cpu/parallel.h"
#include "tests/fixtures.h"
#include "tests/testing.h"

using namespace deblur;

namespace {

constexpr int kSteps = 4;
constexpr double kLr0 = 2e-4, kEtaMin = 1e-6;
constexpr int64_t kTMax = 4;

std::vector<double> fixture_values(const SafetensorsFile& file, const std::string& name) {
  const TensorRecord* record = file.find(name);
  REQUIRE(record != nullptr);
  return testing::to_double(record->values);
}

// p0's values then p1's: the one slab the engine keeps its parameters in.
std::vector<double> slab(const SafetensorsFile& file, const std::string& prefix,
                         const std::string& suffix = "") {
  std::vector<double> values = fixture_values(file, prefix + "p0" + suffix);
  const std::vector<double> p1 = fixture_values(file, prefix + "p1" + suffix);
  values.insert(values.end(), p1.begin(), p1.end());
  return values;
}

double meta(const SafetensorsFile& file, const std::string& key) {
  const auto it = file.metadata.find(key);
  REQUIRE(it != file.metadata.end());
  return std::stod(it->second);  // repr() of a float64: round-trips exactly
}

}  // namespace

TEST_CASE("cpu AdamW in double reproduces torch AdamW + clip_grad_norm_ + CosineAnnealingLR",
          "[adamw]") {
  const SafetensorsFile file = testing::load_fixture("adamw.safetensors");
  std::vector<double> params = slab(file, "", ".init");
  const auto n = static_cast<int64_t>(params.size());
  std::vector<double> m(params.size(), 0.0), v(params.size(), 0.0);
  cpu::AdamWHyper h;  // the defaults are the fixture's (and the seed's) hyperparameters
  int clipped = 0;
  for (int k = 1; k <= kSteps; ++k) {
    INFO("step " << k);
    const std::string step = "step" + std::to_string(k) + ".";
    const std::vector<double> grads = slab(file, step + "grad.");
    // The norm, the scale and the lr are a few double roundings from torch's (which sums
    // per-tensor norms, and steps the cosine recursively): 1e-14 relative is ~50 ulp.
    const double norm_squared = cpu::grad_norm_squared(grads.data(), n);
    CHECK(std::sqrt(norm_squared) ==
          Approx(meta(file, "norm." + std::to_string(k))).epsilon(1e-14));
    const double scale = common::clip_grad_scale(norm_squared, h.max_norm);
    CHECK(scale == Approx(meta(file, "clip." + std::to_string(k))).epsilon(1e-14));
    clipped += scale < 1.0;
    h.lr = cpu::cosine_annealing_lr(kLr0, kEtaMin, k - 1, kTMax);
    CHECK(h.lr == Approx(meta(file, "lr." + std::to_string(k))).epsilon(1e-14));

    const std::vector<double> before = params;
    cpu::adamw_step(params.data(), grads.data(), m.data(), v.data(), n, h, k, scale);
    std::vector<double> delta(params.size());
    for (size_t i = 0; i < params.size(); ++i) delta[i] = params[i] - before[i];
    // The fixture stores torch's float64 update rounded to float32: within 2^-24 of it relative
    // (the update is ~1e-4, so this resolves its weight-decay part, lr*wd*p ~ 2e-8). On top,
    // the two float64 runs differ by a few roundings of |p| <= 1 per step: 1e-14 absolute is
    // ~45 ulp of 1.
    CHECK(testing::expect_close(delta, slab(file, step + "delta."), 1e-14, 0x1p-24,
                                "adamw update, step " + std::to_string(k)));
  }
  CHECK(clipped == 2);  // the fixture clips at steps 1 and 3 only
}

TEST_CASE("cpu AdamW without weight decay misses the fixture's first update", "[adamw]") {
  // The tolerance above is tight enough to see decoupled weight decay: dropping it must fail.
  const SafetensorsFile file = testing::load_fixture("adamw.safetensors");
  std::vector<double> params = slab(file, "", ".init");
  const std::vector<double> before = params, grads = slab(file, "step1.grad.");
  std::vector<double> m(params.size(), 0.0), v(params.size(), 0.0);
  cpu::AdamWHyper h;
  h.weight_decay = 0.0;
  const auto n = static_cast<int64_t>(params.size());
  cpu::adamw_step(params.data(), grads.data(), m.data(), v.data(), n, h, 1,
                  common::clip_grad_scale(cpu::grad_norm_squared(grads.data(), n), h.max_norm));
  const std::vector<double> want = slab(file, "step1.delta.");
  double worst = 0.0;
  for (size_t i = 0; i < params.size(); ++i)
    worst = std::max(
        worst, std::abs((params[i] - before[i]) - want[i]) / (1e-14 + 0x1p-24 * std::abs(want[i])));
  CHECK(worst > 10.0);
}

TEST_CASE("clip scale is clip_grad_norm_'s min(1, max_norm / (norm + 1e-6))", "[adamw]") {
  CHECK(common::clip_grad_scale(0.25, 1.0) == 1.0);  // norm 0.5: untouched
  CHECK(common::clip_grad_scale(0.0, 1.0) == 1.0);
  CHECK(common::clip_grad_scale(4.0, 1.0) == 1.0 / (2.0 + 1e-6));
  CHECK(common::clip_grad_scale(9.0, 0.5) == 0.5 / (3.0 + 1e-6));
  // At exactly max_norm torch still scales, by 1 / (1 + 1e-6).
  CHECK(common::clip_grad_scale(1.0, 1.0) == 1.0 / (1.0 + 1e-6));
  CHECK(common::clip_grad_scale(std::numeric_limits<double>::infinity(), 1.0) == 0.0);
  // A NaN gradient makes the scale NaN (torch.clamp keeps NaN), not a silent 1.
  CHECK(std::isnan(common::clip_grad_scale(std::numeric_limits<double>::quiet_NaN(), 1.0)));
}

TEST_CASE("cosine schedule: lr0 at epoch 0, eta_min at T_max, the mean half-way", "[adamw]") {
  CHECK(cpu::cosine_annealing_lr(kLr0, kEtaMin, 0, kTMax) == kLr0);
  CHECK(cpu::cosine_annealing_lr(kLr0, kEtaMin, kTMax, kTMax) == Approx(kEtaMin).epsilon(1e-15));
  CHECK(cpu::cosine_annealing_lr(kLr0, kEtaMin, 2, kTMax) ==
        Approx((kLr0 + kEtaMin) / 2).epsilon(1e-15));
  CHECK(cpu::cosine_annealing_lr(1.0, 0.0, 1, 3) == Approx(0.75).epsilon(1e-15));  // cos(pi/3)
}

TEST_CASE("cpu grad_norm_squared does not depend on the thread count", "[adamw]") {
  // Several chunks (kChunk values each) and a ragged end.
  const std::vector<float> grads =
      testing::to_float(testing::random_values(3 * cpu::kChunk + 77, 5));
  const auto n = static_cast<int64_t>(grads.size());
  const double all = cpu::grad_norm_squared(grads.data(), n);
  cpu::set_num_threads(1);
  const double one = cpu::grad_norm_squared(grads.data(), n);
  cpu::set_num_threads(0);
  CHECK(all == one);
  double ref = 0.0;
  for (float g : grads) ref += double(g) * g;
  CHECK(all == Approx(ref).epsilon(1e-13));  // two summation orders of positive terms in double
}
