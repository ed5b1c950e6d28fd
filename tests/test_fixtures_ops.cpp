// Every engine op against PyTorch: forward output and input gradients on the CPU, compared with
// tests/fixtures/ops.safetensors and ms_ssim.safetensors (data_tools/make_fixtures.py; the
// reference is float64 computed from the stored float32 inputs, so the differences below are
// the engine's own float32 rounding). Gradients are those of sum(grad_y * y) for the stored
// upstream gradient grad_y, obtained with y.backward(grad_y); losses backpropagate 1.
//
// Tolerances: u = 2^-24 ~ 6e-8 is float32's unit roundoff. A sum of K terms accumulated in
// float32 errs by at most ~K u sum|terms| (worst case) and typically ~sqrt(K) u sum|terms|. Each
// tolerance below comes from that bound for the op's sums (K and magnitudes named), not from the
// error observed with today's kernels (also given, and usually far smaller), so a kernel whose
// accumulation order differs still passes; all stay far below what an indexing or formula
// mistake does (it moves values by O(0.1-1)).
#include <catch2/catch.hpp>

#include "engine/ops.h"
#include "tests/fixtures.h"
#include "tests/testing.h"

using namespace deblur;
using namespace deblur::testing;

namespace {

// One "<case>.*" group of a fixture file.
struct Case {
  const SafetensorsFile& file;
  std::string name;

  Tensor get(const std::string& tensor) const { return fixture_tensor(file, name + "." + tensor); }
  // A leaf requiring grad holding the stored input.
  Tensor input(const std::string& tensor) const { return get(tensor).set_requires_grad(true); }
  // Compares `actual` with the stored "<case>.<tensor>".
  bool check(const Tensor& actual, const std::string& tensor, double atol, double rtol) const {
    REQUIRE(actual.defined());
    return expect_close(actual, get(tensor), atol, rtol, name + "." + tensor);
  }
};

const SafetensorsFile& ops_fixture() {
  static const SafetensorsFile file = load_fixture("ops.safetensors");
  return file;
}

}  // namespace

TEST_CASE("conv2d matches PyTorch", "[fixtures][conv2d]") {
  for (const char* name : {"conv3x3", "conv1x1"}) {
    const Case c{ops_fixture(), name};
    Tensor x = c.input("x"), w = c.input("weight"), b = c.input("bias");
    Tensor y = conv2d(x, w, b);
    // Forward: K = 45 (3x3, 5 channels) or 6 products of |x| <= 1 and |w| <= 1/sqrt(K), so
    // sum|terms| <= sqrt(K); float32 rounding grows like sqrt(K) u per unit of that sum, about
    // K u ~ 3e-6 at worst for these sizes (the K^1.5 u bound, 2e-5, is never approached by
    // random signs); observed 1.8e-7, so 2e-6 + 1e-5 |y| leaves 10x margin.
    CHECK(c.check(y, "y", 2e-6, 1e-5));
    y.backward(c.get("grad_y"));
    // grad_x: K = 36 or 3 products of |grad_y| ~ 1 and |w| <= 0.15 (same bound as forward).
    CHECK(c.check(x.grad(), "grad_x", 2e-6, 1e-5));
    // grad_weight: K = N*H*W = 126 or 70 products of |x| <= 1 and |grad_y| ~ 1, sums of
    // magnitude ~10; typical error sqrt(K) u * 10 ~ 1e-5 at most, observed 1.2e-6.
    CHECK(c.check(w.grad(), "grad_weight", 1e-5, 1e-5));
    // grad_bias: a plain sum of 126 or 70 values of grad_y ~ 1; observed exact.
    CHECK(c.check(b.grad(), "grad_bias", 1e-5, 1e-5));
  }
}

TEST_CASE("group_norm (+relu) matches PyTorch", "[fixtures][group_norm]") {
  for (const char* name : {"group_norm", "group_norm_relu"}) {
    const bool relu_after = std::string(name) == "group_norm_relu";
    for (const bool fused : {true, false}) {
      if (!relu_after && !fused) continue;
      INFO(name << (fused ? " fused" : " unfused"));
      const Case c{ops_fixture(), name};
      Tensor x = c.input("x"), gamma = c.input("weight"), beta = c.input("bias");
      Tensor y = fused ? group_norm(x, gamma, beta, 4, 1e-5f, relu_after)
                       : relu(group_norm(x, gamma, beta, 4, 1e-5f, false));
      // Forward: mean and variance over 70 values of magnitude ~2, then (x - mean) * rstd of
      // order 3; a few u relative on values ~3 plus the statistics' error, observed 2.4e-7.
      CHECK(c.check(y, "y", 5e-6, 1e-5));
      y.backward(c.get("grad_y"));
      // grad_x subtracts group means of grad_y and grad_y * xhat (70-term sums, magnitude ~10)
      // from grad_y: cancellation leaves absolute errors ~sqrt(70) u * 10 * rstd, observed 2.4e-7.
      CHECK(c.check(x.grad(), "grad_x", 1e-5, 1e-4));
      // grad_gamma = sum over 70 (N*H*W) of grad_y * xhat (~10), observed 1e-6; grad_beta =
      // sum of grad_y, observed exact.
      CHECK(c.check(gamma.grad(), "grad_weight", 1e-5, 1e-5));
      CHECK(c.check(beta.grad(), "grad_bias", 1e-5, 1e-5));
    }
  }
}

TEST_CASE("relu, add, scale, clamp and mean match PyTorch", "[fixtures][pointwise]") {
  // Single float32 operations on exactly representable inputs: relu, add's forward and every
  // pass-through gradient are exact or one rounding (u relative); scale rounds twice.
  const double exact = 0.0, one_rounding = 1.2e-7;
  {
    const Case c{ops_fixture(), "relu"};
    Tensor x = c.input("x");
    Tensor y = relu(x);
    CHECK(c.check(y, "y", exact, exact));
    y.backward(c.get("grad_y"));
    CHECK(c.check(x.grad(), "grad_x", exact, exact));
  }
  {
    const Case c{ops_fixture(), "add"};
    Tensor a = c.input("a"), b = c.input("b");
    Tensor y = add(a, b);
    CHECK(c.check(y, "y", exact, one_rounding));
    y.backward(c.get("grad_y"));
    CHECK(c.check(a.grad(), "grad_a", exact, exact));
    CHECK(c.check(b.grad(), "grad_b", exact, exact));
  }
  {
    const Case c{ops_fixture(), "scale"};
    Tensor x = c.input("x");
    Tensor y = scale(x, 0.7f, 0.1f);
    // 0.7f and 0.1f are themselves rounded (u relative each) and the product and sum round:
    // about 4u on |y| <= 0.8, i.e. ~2e-7 absolute near the cancellation at x ~ -1/7.
    CHECK(c.check(y, "y", 3e-7, 4 * one_rounding));
    y.backward(c.get("grad_y"));
    CHECK(c.check(x.grad(), "grad_x", exact, 2 * one_rounding));  // 0.7f and the product
  }
  {
    const Case c{ops_fixture(), "clamp"};
    Tensor x = c.input("x");
    Tensor y = clamp(x, -1.0f, 1.0f);
    CHECK(c.check(y, "y", exact, exact));
    y.backward(c.get("grad_y"));
    CHECK(c.check(x.grad(), "grad_x", exact, exact));
  }
  {
    const Case c{ops_fixture(), "mean"};
    Tensor x = c.input("x");
    Tensor y = mean(x);
    // The sum runs in double (cpu::sum), so the mean's only error is its final rounding to
    // float32: 1e-6 is far above that and far below any real mistake.
    CHECK(c.check(y, "y", 1e-6, 1e-6));
    y.backward(c.get("grad_y"));
    CHECK(c.check(x.grad(), "grad_x", exact, 2 * one_rounding));  // grad_y / 120, rounded
  }
}

TEST_CASE("max_pool2d matches PyTorch, ties to the first max", "[fixtures][max_pool2d]") {
  const Case c{ops_fixture(), "max_pool2d"};
  Tensor x = c.input("x");
  Tensor y = max_pool2d(x);
  // Selection and routing only: exact. Integer inputs make ties in most windows, so a kernel
  // that routes the gradient to any max but the first one in row-major order fails here.
  CHECK(c.check(y, "y", 0.0, 0.0));
  y.backward(c.get("grad_y"));
  CHECK(c.check(x.grad(), "grad_x", 0.0, 0.0));
}

TEST_CASE("upsample_bilinear2x matches PyTorch", "[fixtures][upsample]") {
  const Case c{ops_fixture(), "upsample"};
  Tensor x = c.input("x");
  Tensor y = upsample_bilinear2x(x);
  // Weights 0.25/0.75 are exact; up to 4 products and 3 sums of values <= 1: a few u,
  // observed 1.2e-7.
  CHECK(c.check(y, "y", 5e-7, 1e-6));
  y.backward(c.get("grad_y"));
  // Each input pixel gathers up to 16 weighted upstream values ~1: ~16 u * 4, observed 4.8e-7.
  CHECK(c.check(x.grad(), "grad_x", 2e-6, 1e-6));
}

TEST_CASE("concat matches PyTorch", "[fixtures][concat]") {
  const Case c{ops_fixture(), "concat"};
  Tensor a = c.input("a"), b = c.input("b");
  Tensor y = concat(a, b);
  CHECK(c.check(y, "y", 0.0, 0.0));  // copies: exact
  y.backward(c.get("grad_y"));
  CHECK(c.check(a.grad(), "grad_a", 0.0, 0.0));
  CHECK(c.check(b.grad(), "grad_b", 0.0, 0.0));
}

TEST_CASE("charbonnier and l1 match PyTorch", "[fixtures][losses]") {
  {
    const Case c{ops_fixture(), "charbonnier"};
    Tensor pred = c.input("pred"), target = c.input("target");
    Tensor y = charbonnier(pred, target, 1e-3f);
    // Mean of 180 terms ~0.7: worst case ~180 u relative, observed exact.
    CHECK(c.check(y, "y", 0.0, 2e-6));
    y.backward();
    // d / (180 sqrt(d^2 + eps^2)): a few roundings relative; eps^2 = 1e-6 in float is itself
    // rounded (u relative), which only matters where |d| ~ 1e-3; observed 1.7e-7 relative.
    CHECK(c.check(pred.grad(), "grad_pred", 1e-9, 1e-6));
    CHECK(c.check(target.grad(), "grad_target", 1e-9, 1e-6));
  }
  {
    const Case c{ops_fixture(), "l1"};
    Tensor pred = c.input("pred"), target = c.input("target");
    Tensor y = l1_loss(pred, target);
    CHECK(c.check(y, "y", 0.0, 2e-6));  // as for charbonnier
    y.backward();
    // sign(d) / 180: one rounding.
    CHECK(c.check(pred.grad(), "grad_pred", 0.0, 1.2e-7));
    CHECK(c.check(target.grad(), "grad_target", 0.0, 1.2e-7));
  }
}

TEST_CASE("ssim matches pytorch_msssim", "[fixtures][ssim]") {
  for (const auto& [name, data_range] : {std::pair{"ssim", 1.0f}, std::pair{"ssim_dr2", 2.0f}}) {
    const Case c{ops_fixture(), name};
    Tensor x = c.input("x"), y = c.input("y");
    Tensor value = ssim(x, y, data_range);
    // 11x11 separable Gaussian sums of products, then variances as E[x^2] - mu^2: cancellation
    // loses a few bits where patches are smooth (sigma^2 ~ 1e-3 against mu^2 ~ 0.3); averaged
    // over 2*3*14*17 windows; observed 2.4e-7 on a value ~0.75.
    CHECK(c.check(value, "value", 2e-5, 0.0));
    value.backward();
    // Per-pixel gradients up to ~1e-2 carry the same cancellation: absolute 1e-6 is ~1e-4 of
    // the largest entries; observed 5e-8.
    CHECK(c.check(x.grad(), "grad_x", 1e-6, 1e-3));
    CHECK(c.check(y.grad(), "grad_y", 1e-6, 1e-3));
  }
}

TEST_CASE("ms_ssim matches pytorch_msssim on a 161x168 pair", "[fixtures][ms_ssim]") {
  const SafetensorsFile file = load_fixture("ms_ssim.safetensors");
  const Tensor x16 = fixture_tensor(file, "x"), y16 = fixture_tensor(file, "y");
  REQUIRE(ms_ssim_supported(x16.shape()));
  {
    Tensor x = x16.clone().set_requires_grad(true);
    Tensor value = ms_ssim(x, y16, 1.0f);
    // Five SSIM levels combined as a weighted product: each level's error as in the ssim
    // test, on more pixels; observed 6e-8 on 0.968.
    CHECK(expect_close(value, fixture_tensor(file, "value"), 2e-5, 0.0, "ms_ssim value"));
    value.backward();
    // Gradients up to 2e-4 (mean 1.5e-5) per pixel over 81144 pixels: atol 1e-7 is ~5e-4 of
    // the largest entries, the ssim test's relative accuracy; observed 4.5e-9.
    CHECK(expect_close(x.grad(), fixture_tensor(file, "grad_x"), 1e-7, 1e-3, "ms_ssim grad_x"));
  }
  {
    // The seed's form: 2x - 1 with data_range 2 (exact in float32 for these float16 values).
    Tensor xs = scale(x16, 2.0f, -1.0f).detach().set_requires_grad(true);
    Tensor value = ms_ssim(xs, scale(y16, 2.0f, -1.0f), 2.0f);
    CHECK(expect_close(value, fixture_tensor(file, "value_seed"), 2e-5, 0.0, "ms_ssim seed"));
    value.backward();
    CHECK(expect_close(xs.grad(), fixture_tensor(file, "grad_x_seed"), 1e-7, 1e-3,
                       "ms_ssim seed grad_x"));
  }
}
