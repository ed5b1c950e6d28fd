// train::AdamW over a packed model: the same arithmetic as the AdamW kernel (whose PyTorch
// fixture is in test_adamw.cpp) applied to the model's slabs, a checkpoint round trip that gives
// bitwise the same next step, and clear errors for a state that does not fit.
#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <vector>

#include "engine/check.h"
#include "kernels/cpu/adamw.h"
#include "layers/deblur_unet.h"
#include "train/optimizer.h"

namespace deblur::train {
namespace {

void fill_grads(Module& model, uint64_t seed, float magnitude) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, magnitude);
  const Tensor& grads = model.parameter_grads();
  for (int64_t i = 0; i < grads.numel(); ++i) grads.data()[i] = normal(rng);
}

common::AdamWHyper hyper() {
  common::AdamWHyper h;
  h.weight_decay = 1e-2;
  h.max_norm = 1.0;
  return h;
}

TEST_CASE("train::AdamW applies the clipped AdamW kernel to the whole slab", "[optimizer]") {
  DeblurUNet model(8, /*seed=*/1);
  const int64_t n = model.parameter_values().numel();
  std::vector<float> params = model.parameter_values().to_vector();
  std::vector<float> m(static_cast<size_t>(n)), v(static_cast<size_t>(n));
  AdamW optimizer(model, hyper());
  // Large gradients (clipped) then small ones (scale 1), at a changing learning rate.
  const float magnitudes[] = {1.0f, 1e-4f, 0.5f};
  for (int step = 1; step <= 3; ++step) {
    fill_grads(model, 10 + step, magnitudes[step - 1]);
    const std::vector<float> grads = model.parameter_grads().to_vector();
    const double lr = 1e-3 / step;
    optimizer.step(lr);

    const double norm_squared = cpu::grad_norm_squared<float>(grads.data(), n);
    common::AdamWHyper h = hyper();
    h.lr = lr;
    cpu::adamw_step<float>(params.data(), grads.data(), m.data(), v.data(), n, h, step,
                           static_cast<float>(common::clip_grad_scale(norm_squared, h.max_norm)));
    CHECK(optimizer.steps() == step);
    CHECK(optimizer.last_grad_norm() == Approx(std::sqrt(norm_squared)));
    CHECK(model.parameter_values().to_vector() == params);  // the same kernel: bitwise
  }
  CHECK(optimizer.last_grad_norm() > 1.0);  // the third step was clipped
}

TEST_CASE("train::AdamW state round trip: the next step is bitwise the same", "[optimizer]") {
  DeblurUNet a(8, 2), b(8, 2);
  AdamW opt_a(a, hyper());
  fill_grads(a, 1, 0.3f);
  opt_a.step(2e-4);
  fill_grads(a, 2, 0.3f);
  opt_a.step(1e-4);

  SafetensorsFile checkpoint;
  checkpoint.tensors = a.state();
  for (TensorRecord& record : opt_a.state()) checkpoint.tensors.push_back(std::move(record));
  CHECK(checkpoint.find("optimizer.exp_avg.enc1.conv1.weight") != nullptr);
  CHECK(checkpoint.find("optimizer.exp_avg_sq.final.bias")->shape == std::vector<int64_t>{3});
  b.load_state(SafetensorsFile{{checkpoint.tensors.begin(), checkpoint.tensors.begin() + 82}, {}},
               "checkpoint");
  AdamW opt_b(b, hyper());
  opt_b.load_state(checkpoint, "checkpoint", opt_a.steps());

  fill_grads(a, 3, 0.3f);
  fill_grads(b, 3, 0.3f);
  opt_a.step(5e-5);
  opt_b.step(5e-5);
  CHECK(opt_b.steps() == 3);
  CHECK(b.parameter_values().to_vector() == a.parameter_values().to_vector());
}

TEST_CASE("train::AdamW refuses a state that does not fit the model", "[optimizer]") {
  DeblurUNet model(8, 3);
  AdamW optimizer(model, hyper());
  SafetensorsFile file;
  file.tensors = optimizer.state();
  SECTION("a missing moment") {
    file.tensors.pop_back();
    CHECK_THROWS_WITH(optimizer.load_state(file, "last.safetensors", 5),
                      Catch::Contains("last.safetensors: no optimizer state "
                                      "'optimizer.exp_avg_sq.final.bias'"));
  }
  SECTION("a moment of the wrong shape") {
    file.tensors.front().shape = {2, 2};
    CHECK_THROWS_WITH(optimizer.load_state(file, "last.safetensors", 5),
                      Catch::Contains("'optimizer.exp_avg.enc1.conv1.weight' is [2, 2]"));
  }
}

}  // namespace
}  // namespace deblur::train
