// SSIM and MS-SSIM: the Gaussian window, gradchecks of the CPU kernels in double, identities,
// argument errors, and the engine ops' autograd against the double kernels.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>

#include "engine/ops.h"
#include "kernels/common/gaussian.h"
#include "kernels/cpu/ssim.h"
#include "tests/testing.h"

using namespace deblur;
using namespace deblur::testing;

namespace {
using Inputs = std::vector<std::vector<double>>;

cpu::NchwView<const double> cview(const std::vector<double>& v, Shape s) {
  return cpu::contiguous_view(v.data(), s.n, s.c, s.h, s.w);
}

// Image-like planes in about [0, 1]: a smooth pattern plus texture, so every MS-SSIM scale
// has contrast.
std::vector<double> image(Shape s, uint64_t seed) {
  std::vector<double> v = random_values(s.numel(), seed, -0.1, 0.1);
  const auto phase = random_values(s.n * s.c * 2, seed + 1, 0.0, 6.0);
  for (int64_t p = 0; p < s.n * s.c; ++p)
    for (int64_t r = 0; r < s.h; ++r)
      for (int64_t c = 0; c < s.w; ++c)
        v[(p * s.h + r) * s.w + c] +=
            0.5 + 0.3 * std::sin(0.09 * r + phase[2 * p]) * std::cos(0.07 * c + phase[2 * p + 1]);
  return v;
}

// x plus uniform noise of the given amplitude: correlated with x, so cs > 0 at every scale.
std::vector<double> noisy(const std::vector<double>& x, double amplitude, uint64_t seed) {
  std::vector<double> y = random_values(x.size(), seed, -amplitude, amplitude);
  for (size_t i = 0; i < y.size(); ++i) y[i] += x[i];
  return y;
}
}  // namespace

TEST_CASE("gaussian window", "[ssim]") {
  double g[common::kGaussianTaps];
  common::gaussian_window(g);
  double total = 0.0;
  for (double v : g) total += v;
  // Hand-computed: exp(-d^2 / 4.5) / sum over d = -5..5 (sum 3.759232795169263).
  // 1e-15: a few double ulps of rounding in the exp and the division.
  CHECK(std::abs(total - 1.0) < 1e-15);
  CHECK(std::abs(g[5] - 0.26601172486179436) < 1e-15);
  CHECK(std::abs(g[0] - 0.00102838008447911) < 1e-15);
  for (int k = 0; k < common::kGaussianTaps; ++k) CHECK(g[k] == g[common::kGaussianTaps - 1 - k]);
}

TEST_CASE("ssim kernels gradcheck", "[ssim][gradcheck]") {
  // Odd sides and a batch: 5 x 7 valid maps per plane.
  const Shape s{2, 3, 15, 17};
  const int64_t planes = s.n * s.c;
  const auto w_ssim = random_values(planes, 31), w_cs = random_values(planes, 32);
  for (double data_range : {1.0, 2.0}) {
    // data_range 1 on [0, 1] data, data_range 2 on [-1, 1] data, as the loss and the seed use.
    const double lo = data_range == 1.0 ? 0.0 : -1.0;
    const auto x = random_values(s.numel(), 33, lo, 1.0);
    const auto y = noisy(x, 0.3 * data_range, 34);
    const std::string what = "data_range " + std::to_string(data_range);

    // One scale: a weighted sum of every per-plane ssim and cs, so each is checked.
    ScalarFn level_f = [&](const Inputs& in) {
      std::vector<double> ssim(planes), cs(planes);
      cpu::ssim_level_forward<double>(cview(in[0], s), cview(in[1], s), data_range, ssim.data(),
                                      cs.data());
      return weighted_sum(ssim, w_ssim) + weighted_sum(cs, w_cs);
    };
    GradFn level_g = [&](const Inputs& in) {
      Inputs grads(2, std::vector<double>(s.numel()));
      cpu::ssim_level_backward<double>(cview(in[0], s), cview(in[1], s), data_range, w_ssim.data(),
                                       w_cs.data(), view(grads[0], s), view(grads[1], s));
      return grads;
    };
    // Default tolerances (testing.h): SSIM is a smooth rational function of the inputs here
    // (denominators >= C1, C2 > 0), values of order one.
    CHECK(gradcheck(level_f, level_g, {x, y}, "ssim level " + what));

    ScalarFn f = [&](const Inputs& in) {
      return cpu::ssim_forward<double>(cview(in[0], s), cview(in[1], s), data_range);
    };
    GradFn g = [&](const Inputs& in) {
      Inputs grads(2, std::vector<double>(s.numel()));
      cpu::ssim_backward<double>(cview(in[0], s), cview(in[1], s), data_range, 1.0,
                                 view(grads[0], s), view(grads[1], s));
      return grads;
    };
    CHECK(gradcheck(f, g, {x, y}, "ssim " + what));  // default tolerances, as above
  }
}

TEST_CASE("padded avg pool", "[ssim][gradcheck]") {
  // 3 x 3 ones: padding 1 on both ends, so the corner window holds one real pixel, the edge
  // windows two, the inner one four; every window divides by 4.
  std::vector<double> ones(9, 1.0), pooled(4);
  cpu::avg_pool2x2_padded_forward<double>(cview(ones, {1, 1, 3, 3}), view(pooled, {1, 1, 2, 2}));
  // Sums of quarters: exact in double.
  CHECK(expect_close(pooled, {0.25, 0.5, 0.5, 1.0}, 0, 0, "pool 3x3 ones"));

  for (Shape s : {Shape{2, 3, 7, 9}, Shape{1, 2, 6, 9}, Shape{1, 2, 7, 8}}) {
    const Shape o{s.n, s.c, cpu::avg_pool_padded_size(s.h), cpu::avg_pool_padded_size(s.w)};
    const auto r = random_values(o.numel(), 41);
    ScalarFn f = [&](const Inputs& in) {
      std::vector<double> y(o.numel());
      cpu::avg_pool2x2_padded_forward<double>(cview(in[0], s), view(y, o));
      return weighted_sum(y, r);
    };
    GradFn g = [&](const Inputs&) {
      Inputs grads(1, std::vector<double>(s.numel()));
      cpu::avg_pool2x2_padded_backward<double>(cview(r, o), view(grads[0], s));
      return grads;
    };
    // Default tolerances: the pool is linear, so central differences are exact up to rounding.
    CHECK(gradcheck(f, g, {random_values(s.numel(), 42)}, "avg pool " + s.str()));
  }
}

TEST_CASE("ms_ssim kernel gradcheck", "[ssim][gradcheck]") {
  // Odd and even sides through all four poolings (161 -> 81 -> 41 -> 21 -> 11,
  // 166 -> 83 -> 42 -> 21 -> 11). Channel 0: y = x + noise (cs > 0 at every scale); channel 1:
  // y anti-correlated with x, so relu clips its cs, its value is 0 and so is its gradient.
  const Shape s{1, 2, 161, 166};
  const auto x = image(s, 51);
  auto y = noisy(x, 0.05, 52);
  const int64_t plane = s.h * s.w;
  for (int64_t i = plane; i < 2 * plane; ++i) y[i] = 1.0 - y[i];
  const double data_range = 1.0;

  ScalarFn f = [&](const Inputs& in) {
    return cpu::ms_ssim_forward<double>(cview(in[0], s), cview(in[1], s), data_range);
  };
  GradFn g = [&](const Inputs& in) {
    Inputs grads(2, std::vector<double>(s.numel()));
    cpu::ms_ssim_backward<double>(cview(in[0], s), cview(in[1], s), data_range, 1.0,
                                  view(grads[0], s), view(grads[1], s));
    return grads;
  };
  GradcheckOptions options;
  // The gradients are ~1e-6 to 1e-5 per pixel (spread over 26k pixels), so the default atol
  // 1e-7 would hide real errors. The central differences carry ~2e-10 of rounding noise (the
  // 26k-term means' rounding divided by the 2e-6 step): 1e-9 is 5x that, ~1e-4 of a gradient.
  options.atol = 1e-9;
  options.max_elements = 200;  // evenly spaced, both channels; keeps the test about a second
  CHECK(gradcheck(f, g, {x, y}, "ms_ssim", options));

  // The anti-correlated channel contributes nothing.
  const Inputs grads = g({x, y});
  CHECK(std::all_of(grads[0].begin() + plane, grads[0].end(), [](double v) { return v == 0; }));
}

TEST_CASE("ssim and ms_ssim identities", "[ssim]") {
  const Shape s{2, 3, 165, 172};
  const Tensor x = Tensor::from_vector(s, to_float(image(s, 61)));
  const Tensor y = Tensor::from_vector(s, to_float(noisy(image(s, 61), 0.1, 62)));
  // ssim(x, x) = 1 exactly in exact arithmetic; 1e-6 leaves room for float rounding in the
  // per-pixel ratios.
  CHECK(std::abs(ssim(x, x, 1.0f).item() - 1.0f) < 1e-6f);
  CHECK(std::abs(ms_ssim(x, x, 1.0f).item() - 1.0f) < 1e-6f);
  CHECK(std::abs(ms_ssim(x, x, 2.0f).item() - 1.0f) < 1e-6f);
  // Symmetric in exact arithmetic; 1e-6 covers float rounding (a compiler may fuse a
  // multiply-add on one side of a sum and not the other).
  CHECK(std::abs(ssim(x, y, 1.0f).item() - ssim(y, x, 1.0f).item()) < 1e-6f);
  CHECK(std::abs(ms_ssim(x, y, 2.0f).item() - ms_ssim(y, x, 2.0f).item()) < 1e-6f);
  CHECK(ms_ssim(x, y, 1.0f).item() < 1.0f);
}

TEST_CASE("ssim and ms_ssim argument errors", "[ssim]") {
  CHECK(ms_ssim_supported({1, 3, 161, 161}));
  CHECK_FALSE(ms_ssim_supported({1, 3, 161, 160}));
  CHECK_FALSE(ms_ssim_supported({1, 3, 160, 400}));
  const Tensor small = random_tensor({1, 3, 160, 300}, 71);
  CHECK_THROWS_WITH(ms_ssim(small, small, 1.0f), Catch::Contains("ms_ssim") &&
                                                     Catch::Contains("[1, 3, 160, 300]") &&
                                                     Catch::Contains("161"));
  const Tensor tiny = random_tensor({1, 1, 10, 20}, 72);
  CHECK_THROWS_WITH(ssim(tiny, tiny, 1.0f), Catch::Contains("ssim") && Catch::Contains("11"));
  const Tensor a = random_tensor({1, 1, 16, 16}, 73), b = random_tensor({1, 1, 16, 17}, 74);
  CHECK_THROWS_WITH(ssim(a, b, 1.0f), Catch::Contains("ssim") && Catch::Contains("[1, 1, 16, 17]"));
  CHECK_THROWS_WITH(ssim(a, a, 0.0f), Catch::Contains("data_range"));
}

TEST_CASE("ssim and ms_ssim ops autograd", "[ssim]") {
  const Shape s{2, 2, 163, 170};
  const std::vector<float> xf = to_float(image(s, 81)), yf = to_float(noisy(image(s, 81), 0.1, 82));
  // The double kernels on the same (float-rounded) inputs are the reference.
  const std::vector<double> xd = to_double(xf), yd = to_double(yf);
  const double data_range = 1.0;

  struct Case {
    const char* name;
    Tensor (*op)(const Tensor&, const Tensor&, float);
    double (*forward)(cpu::NchwView<const double>, cpu::NchwView<const double>, double);
    void (*backward)(cpu::NchwView<const double>, cpu::NchwView<const double>, double, double,
                     cpu::NchwView<double>, cpu::NchwView<double>);
  };
  for (const Case& c :
       {Case{"ssim", &ssim, &cpu::ssim_forward<double>, &cpu::ssim_backward<double>},
        Case{"ms_ssim", &ms_ssim, &cpu::ms_ssim_forward<double>, &cpu::ms_ssim_backward<double>}}) {
    Tensor x = Tensor::from_vector(s, xf).set_requires_grad(true);
    Tensor y = Tensor::from_vector(s, yf).set_requires_grad(true);
    // 0.5 * op: the backward must scale by the incoming gradient.
    Tensor value = scale(c.op(x, y, static_cast<float>(data_range)), 0.5f);
    value.backward();

    const double ref = c.forward(cview(xd, s), cview(yd, s), data_range);
    std::vector<double> gx(s.numel()), gy(s.numel());
    c.backward(cview(xd, s), cview(yd, s), data_range, 0.5, view(gx, s), view(gy, s));
    // Float filters and ratios against double: the observed difference is ~1e-7.
    CHECK(std::abs(value.item() - 0.5 * ref) < 1e-6);
    // Gradients: float cancellation in sigma^2 = E[X^2] - mu^2 costs a few digits where the
    // local variance is small; 1e-3 of the largest gradient plus 1e-2 relative bounds it.
    const double gmax = std::abs(*std::max_element(
        gx.begin(), gx.end(), [](double a, double b) { return std::abs(a) < std::abs(b); }));
    CHECK(expect_close(to_double(x.grad().to_vector()), gx, 1e-3 * gmax, 1e-2,
                       std::string(c.name) + " grad x"));
    CHECK(expect_close(to_double(y.grad().to_vector()), gy, 1e-3 * gmax, 1e-2,
                       std::string(c.name) + " grad y"));
  }

  // A channel slice (batch_stride > C * H * W) gives the same result as its contiguous copy:
  // the same per-plane arithmetic, only the addressing differs, so equality is exact.
  const Shape half{2, 3, 161, 161};
  const std::vector<double> a = image(half, 84), b = noisy(a, 0.1, 85);
  const int64_t sample = half.c * half.h * half.w;
  std::vector<float> packed;  // per sample: 3 channels of a, then 3 of b
  for (int64_t i = 0; i < half.n; ++i) {
    packed.insert(packed.end(), a.begin() + i * sample, a.begin() + (i + 1) * sample);
    packed.insert(packed.end(), b.begin() + i * sample, b.begin() + (i + 1) * sample);
  }
  const Tensor wide = Tensor::from_vector({2, 6, 161, 161}, packed);
  const Tensor slice_x = wide.channel_slice(0, 3), slice_y = wide.channel_slice(3, 3);
  CHECK(ms_ssim(slice_x, slice_y, 1.0f).item() ==
        ms_ssim(slice_x.clone(), slice_y.clone(), 1.0f).item());
}
