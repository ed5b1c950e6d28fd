// Resample and concat: gradchecks of the CPU kernels in double, hand-computed cases (ties,
// NaN, the bilinear border clamp), and the engine ops through autograd, on channel-slice views.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>

#include "engine/ops.h"
#include "kernels/common/bilinear.h"
#include "kernels/cpu/concat.h"
#include "kernels/cpu/losses.h"
#include "kernels/cpu/resample.h"
#include "tests/testing.h"

using namespace deblur;
using namespace deblur::testing;

namespace {

Shape pooled(Shape s) {
  return {s.n, s.c, s.h / 2, s.w / 2};
}
Shape upsampled(Shape s) {
  return {s.n, s.c, 2 * s.h, 2 * s.w};
}

std::vector<double> max_pool(std::vector<double> x, Shape s) {
  std::vector<double> y(pooled(s).numel());
  cpu::max_pool2d_2x2_forward<double>(view(x, s), view(y, pooled(s)));
  return y;
}

std::vector<double> max_pool_grad(std::vector<double> x, Shape s, std::vector<double> gy) {
  std::vector<double> gx(s.numel());
  cpu::max_pool2d_2x2_backward<double>(view(x, s), view(gy, pooled(s)), view(gx, s));
  return gx;
}

std::vector<double> upsample(std::vector<double> x, Shape s) {
  std::vector<double> y(upsampled(s).numel());
  cpu::upsample_bilinear2x_forward<double>(view(x, s), view(y, upsampled(s)));
  return y;
}

std::vector<double> upsample_grad(std::vector<double> gy, Shape s) {
  std::vector<double> gx(s.numel());
  cpu::upsample_bilinear2x_backward<double>(view(gy, upsampled(s)), view(gx, s));
  return gx;
}

// Channels [first, first + count) of NCHW-packed values of shape s.
std::vector<double> channels(const std::vector<double>& v, Shape s, int64_t first, int64_t count) {
  std::vector<double> out;
  const int64_t plane = s.h * s.w;
  for (int64_t i = 0; i < s.n; ++i) {
    auto begin = v.begin() + (i * s.c + first) * plane;
    out.insert(out.end(), begin, begin + count * plane);
  }
  return out;
}
}  // namespace

TEST_CASE("max_pool2d kernel gradcheck", "[resample][gradcheck]") {
  const Shape s{2, 3, 7, 9};  // odd H and W: the last row and column are dropped
  // Distinct values 1/numel apart: far more than the finite-difference step, so no nudge
  // changes a window's argmax.
  std::vector<double> x(s.numel());
  std::iota(x.begin(), x.end(), 0.0);
  std::shuffle(x.begin(), x.end(), std::mt19937_64(31));
  for (double& v : x) v = v / s.numel() - 0.5;
  const auto r = random_values(pooled(s).numel(), 32);
  ScalarFn f = [&](const auto& in) { return weighted_sum(max_pool(in[0], s), r); };
  GradFn g = [&](const auto& in) {
    return std::vector<std::vector<double>>{max_pool_grad(in[0], s, r)};
  };
  CHECK(gradcheck(f, g, {x}, "max_pool2d"));
}

TEST_CASE("max_pool2d forward by hand, ties and NaN", "[resample]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  SECTION("floor drops the trailing row and column") {
    const Shape s{1, 1, 3, 5};
    const std::vector<double> x = {1, 9, 2, 3, 7,  //
                                   4, 5, 8, 6, 7,  //
                                   9, 9, 9, 9, 9};
    CHECK(max_pool(x, s) == std::vector<double>{9, 8});
    const auto gx = max_pool_grad(x, s, {1.5, 2.5});
    CHECK(gx == std::vector<double>{0, 1.5, 0, 0, 0,  //
                                    0, 0, 2.5, 0, 0,  //
                                    0, 0, 0, 0, 0});
  }
  SECTION("ties route the gradient to the first maximum in row-major order") {
    const Shape s{1, 3, 2, 2};
    const std::vector<double> x = {0, 0, 0, 0,   // all zero
                                   1, 3, 3, 2,   // a tie between (0, 1) and (1, 0)
                                   5, 5, 5, 5};  // all equal
    CHECK(max_pool(x, s) == std::vector<double>{0, 3, 5});
    CHECK(max_pool_grad(x, s, {1, 2, 3}) ==
          std::vector<double>{1, 0, 0, 0, 0, 2, 0, 0, 3, 0, 0, 0});
  }
  SECTION("NaN wins as in PyTorch's CPU kernel (the last NaN); all -inf picks the first") {
    const Shape s{1, 2, 2, 2};
    const std::vector<double> x = {1, nan, nan, 0, -inf, -inf, -inf, -inf};
    const auto y = max_pool(x, s);
    CHECK(std::isnan(y[0]));
    CHECK(y[1] == -inf);
    CHECK(max_pool_grad(x, s, {1, 2}) == std::vector<double>{0, 0, 1, 0, 2, 0, 0, 0});
  }
  SECTION("the forward's value is the input the backward picks, bit for bit") {
    // The forward takes the maximum by value and the backward by index: with signed zeros,
    // infinities and NaNs of different payloads among the values, both must land on one input.
    const Shape s{2, 3, 10, 14};
    const double pool[] = {0.0, -0.0, 1.0, -1.0, inf, -inf, nan, -nan, 0.5};
    std::vector<double> x(s.numel());
    std::mt19937_64 rng(7);
    for (double& v : x) v = pool[rng() % 9];
    // Windows where the rule decides the bits: a tie of +0 and -0 keeps the first; of two NaNs
    // the last wins.
    const double first_zero[] = {0.0, -0.0, -1.0, -1.0}, last_nan[] = {nan, 1.0, -nan, 0.0};
    for (int k = 0; k < 4; ++k) {
      x[(k / 2) * s.w + k % 2] = first_zero[k];
      x[(k / 2) * s.w + 2 + k % 2] = last_nan[k];
    }
    const auto y = max_pool(x, s);
    CHECK_FALSE(std::signbit(y[0]));
    CHECK((std::isnan(y[1]) && std::signbit(y[1])));
    std::vector<double> ones(y.size(), 1.0);
    const auto gx = max_pool_grad(x, s, ones);
    REQUIRE(size_t(std::count(gx.begin(), gx.end(), 1.0)) == y.size());  // one pick a window
    const Shape p = pooled(s);
    for (int64_t plane = 0; plane < p.n * p.c; ++plane)
      for (int64_t oy = 0; oy < p.h; ++oy)
        for (int64_t ox = 0; ox < p.w; ++ox) {
          const int64_t o = (plane * p.h + oy) * p.w + ox;
          double chosen = 0;
          for (int64_t k = 0; k < 4; ++k) {
            const int64_t i = (plane * s.h + 2 * oy + k / 2) * s.w + 2 * ox + k % 2;
            if (gx[i] == 1.0) chosen = x[i];
          }
          INFO("output " << o);
          CHECK(std::memcmp(&chosen, &y[o], sizeof(double)) == 0);
        }
  }
}

TEST_CASE("bilinear taps follow PyTorch's align_corners=False formula", "[resample]") {
  // Scale 2: src = (dst + 0.5) / 2 - 0.5, clamped at 0; i1 clamped at in - 1. Exact in binary.
  struct Want {
    int64_t dst, i0, i1;
    double w0, w1;
  };
  for (const Want& want : {Want{0, 0, 1, 1.0, 0.0},       // src -0.25 clamps to 0
                           Want{1, 0, 1, 0.75, 0.25},     // src 0.25
                           Want{2, 0, 1, 0.25, 0.75},     // src 0.75
                           Want{3, 1, 2, 0.75, 0.25},     // src 1.25
                           Want{5, 2, 2, 0.75, 0.25}}) {  // src 2.25: both taps on the last input
    const auto tap = common::upsample2x_tap<double>(want.dst, 3);
    CHECK(tap.i0 == want.i0);
    CHECK(tap.i1 == want.i1);
    CHECK(tap.w0 == want.w0);
    CHECK(tap.w1 == want.w1);
  }
}

TEST_CASE("upsample_bilinear2x forward is the four-tap formula bit for bit", "[resample]") {
  // The forward's rows use constant W weights between the borders (so that they vectorise); the
  // formula with both axes' taps, in PyTorch's order, must give the same bits, NaN and inf
  // included, for every width from 1 up.
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uniform(-2.0f, 2.0f);
  for (int64_t w : {1, 2, 3, 4, 5, 17, 40})
    for (int64_t h : {1, 2, 5}) {
      const Shape s{1, 2, h, w};
      std::vector<float> x(size_t(s.numel()));
      for (size_t i = 0; i < x.size(); ++i)
        x[i] = i % 11 == 5 ? std::numeric_limits<float>::infinity()
               : i % 13 == 7 ? std::numeric_limits<float>::quiet_NaN()
                             : uniform(rng);
      std::vector<float> y(size_t(upsampled(s).numel()));
      cpu::upsample_bilinear2x_forward<float>(
          cpu::contiguous_view<const float>(x.data(), 1, 2, h, w),
          cpu::contiguous_view<float>(y.data(), 1, 2, 2 * h, 2 * w));
      int64_t mismatches = 0;
      for (int64_t c = 0; c < 2; ++c)
        for (int64_t oy = 0; oy < 2 * h; ++oy)
          for (int64_t ox = 0; ox < 2 * w; ++ox) {
            const auto row = common::upsample2x_tap<float>(oy, h);
            const auto col = common::upsample2x_tap<float>(ox, w);
            const float* r0 = x.data() + (c * h + row.i0) * w;
            const float* r1 = x.data() + (c * h + row.i1) * w;
            const float want = row.w0 * (col.w0 * r0[col.i0] + col.w1 * r0[col.i1]) +
                               row.w1 * (col.w0 * r1[col.i0] + col.w1 * r1[col.i1]);
            const float got = y[size_t((c * 2 * h + oy) * 2 * w + ox)];
            const bool both_nan = std::isnan(want) && std::isnan(got);
            if (std::memcmp(&want, &got, sizeof want) != 0 && !both_nan) ++mismatches;
          }
      INFO("w " << w << " h " << h);
      CHECK(mismatches == 0);
    }
}

TEST_CASE("upsample_bilinear2x by hand", "[resample]") {
  // x = [[1, 2], [3, 5]]. Rows of the output take input rows with weights (1, 0), (0.75, 0.25),
  // (0.25, 0.75), (0, 1) (the first and last clamped), and the same along columns, so
  // row 0 = [1, 1.25, 1.75, 2], row 3 = [3, 3.5, 4.5, 5], row 1 = 0.75 row 0 + 0.25 row 3, ...
  // (torch.nn.functional.interpolate gives the same 16 values).
  const Shape s{1, 1, 2, 2};
  const std::vector<double> want = {1.0, 1.25,   1.75,   2.0,   //
                                    1.5, 1.8125, 2.4375, 2.75,  //
                                    2.5, 2.9375, 3.8125, 4.25,  //
                                    3.0, 3.5,    4.5,    5.0};
  // Weights and values are short binary fractions: every result is exact, in float too.
  CHECK(expect_close(upsample({1, 2, 3, 5}, s), want, 0, 0, "upsample double"));
  Tensor y = upsample_bilinear2x(Tensor::from_vector(s, {1, 2, 3, 5}));
  CHECK(y.shape() == Shape{1, 1, 4, 4});
  CHECK(expect_close(to_double(y.to_vector()), want, 0, 0, "upsample op"));

  // One-hot dy at output (1, 1): the gradient is the outer product of its row and column weights
  // (0.75, 0.25) x (0.75, 0.25). Exact, as above.
  std::vector<double> gy(16, 0.0);
  gy[1 * 4 + 1] = 1.0;
  CHECK(expect_close(upsample_grad(gy, s), {0.5625, 0.1875, 0.1875, 0.0625}, 0, 0,
                     "upsample one-hot grad"));
  // dy all ones: each input row and column collects weights summing to 2, border clamp included.
  CHECK(expect_close(upsample_grad(std::vector<double>(16, 1.0), s), {4, 4, 4, 4}, 0, 0,
                     "upsample ones grad"));
}

TEST_CASE("upsample_bilinear2x kernel gradcheck", "[resample][gradcheck]") {
  for (Shape s : {Shape{2, 3, 5, 6}, Shape{2, 2, 3, 5}, Shape{2, 1, 1, 4}}) {
    const auto r = random_values(upsampled(s).numel(), 41);
    ScalarFn f = [&](const auto& in) { return weighted_sum(upsample(in[0], s), r); };
    GradFn g = [&](const auto&) { return std::vector<std::vector<double>>{upsample_grad(r, s)}; };
    CHECK(gradcheck(f, g, {random_values(s.numel(), 42)}, "upsample " + s.str()));
  }
}

TEST_CASE("resample and concat ops through autograd on channel-slice views", "[resample][concat]") {
  // x is channels 1..3 of a wider tensor (batch_stride > C*H*W) and feeds both the pool and,
  // as a skip connection, the concat; the upsample's backward then receives a channel slice of
  // the concat's gradient. A Charbonnier loss with eps 0.5 makes every element's gradient
  // differ (a mean would hand the upsample a uniform gradient).
  Tensor base = random_tensor({2, 5, 7, 9}, 51);
  Tensor x = base.channel_slice(1, 3).set_requires_grad(true);
  REQUIRE(x.batch_stride() > x.c() * x.h() * x.w());
  const Shape xs = x.shape(), ps = pooled(xs), us = upsampled(ps);  // us: [2, 3, 6, 8]
  // A second view, sized like the upsampled tensor (the pool dropped x's odd row and column).
  Tensor skip_base = random_tensor({2, 4, 6, 8}, 52);
  Tensor skip = skip_base.channel_slice(1, 3).set_requires_grad(true);
  const Shape ys{2, 6, 6, 8};
  Tensor target = random_tensor(ys, 53);
  const float eps = 0.5f;

  Tensor y = concat(upsample_bilinear2x(max_pool2d(x)), skip);
  Tensor loss = charbonnier(y, target, eps);
  loss.backward();

  // The same chain in double through the kernels, on contiguous copies.
  const auto xd = to_double(x.to_vector()), skipd = to_double(skip.to_vector());
  const auto ud = upsample(max_pool(xd, xs), ps);
  std::vector<double> yd(ys.numel());
  auto ud_copy = ud, skip_copy = skipd;
  cpu::concat_forward<double>(view(ud_copy, us), view(skip_copy, skip.shape()), view(yd, ys));
  auto td = to_double(target.to_vector());
  std::vector<double> gy(ys.numel());
  cpu::charbonnier_backward<double>(view(yd, ys), view(td, ys), eps, 1.0 / ys.numel(), view(gy, ys),
                                    {});
  const auto gx = max_pool_grad(xd, xs, upsample_grad(channels(gy, ys, 0, 3), ps));

  // Forward: float rounding of a few multiply-adds of order-one values (~1e-7), with margin.
  CHECK(expect_close(to_double(y.to_vector()), yd, 1e-6, 1e-6, "forward"));
  // Gradients are order-one slopes scaled by 1/numel (~3e-3); float rounding in the slopes
  // and weights is ~1e-7 of that, so 1e-5 relative plus 1e-9 absolute leaves a wide margin.
  CHECK(expect_close(to_double(x.grad().to_vector()), gx, 1e-9, 1e-5, "grad x"));
  CHECK(expect_close(to_double(skip.grad().to_vector()), channels(gy, ys, 3, 3), 1e-9, 1e-5,
                     "grad skip"));
}

TEST_CASE("resample ops on a view match the same data made contiguous", "[resample]") {
  Tensor base = random_tensor({2, 6, 7, 9}, 61);
  Tensor x = base.channel_slice(2, 3);
  // Same kernels, same values, same order of operations: bitwise equal.
  CHECK(max_pool2d(x).to_vector() == max_pool2d(x.clone()).to_vector());
  CHECK(upsample_bilinear2x(x).to_vector() == upsample_bilinear2x(x.clone()).to_vector());

  Tensor v = x.clone().set_requires_grad(true);
  mean(max_pool2d(v)).backward();
  // mean's gradient 1/72 (72 outputs) lands on one element per window, bitwise; the dropped
  // row and column and the non-maxima get 0.
  const auto g = v.grad().to_vector();
  CHECK(std::count(g.begin(), g.end(), 1.0f / 72.0f) == 72);
  CHECK(std::count(g.begin(), g.end(), 0.0f) == static_cast<long>(g.size()) - 72);
}

TEST_CASE("concat forward, backward and shape errors", "[concat]") {
  Tensor a_base = random_tensor({2, 4, 3, 5}, 71);
  Tensor a = a_base.channel_slice(1, 2).set_requires_grad(true);
  Tensor b = random_tensor({2, 3, 3, 5}, 72).set_requires_grad(true);
  Tensor y = concat(a, b);
  REQUIRE(y.shape() == Shape{2, 5, 3, 5});
  // A copy: exact.
  CHECK(y.channel_slice(0, 2).to_vector() == a.to_vector());
  CHECK(y.channel_slice(2, 3).to_vector() == b.to_vector());

  // An L1 loss against zero gives each element of y the gradient sign(y) / numel, so a swapped
  // or shifted channel range cannot pass; copies of exactly representable values: exact.
  l1_loss(y, Tensor::zeros(y.shape())).backward();
  auto expected_grad = [&](const Tensor& t) {
    std::vector<float> g;
    for (float v : t.to_vector()) g.push_back(v > 0 ? 1.0f / 150 : -1.0f / 150);
    return g;
  };
  CHECK(a.grad().to_vector() == expected_grad(a));
  CHECK(b.grad().to_vector() == expected_grad(b));

  CHECK_THROWS_WITH(concat(a, random_tensor({2, 3, 3, 6}, 73)),
                    Catch::Contains("concat") && Catch::Contains("[2, 2, 3, 5]") &&
                        Catch::Contains("[2, 3, 3, 6]"));
  CHECK_THROWS_WITH(concat(random_tensor({1, 2, 3, 5}, 74), b),
                    Catch::Contains("concat") && Catch::Contains("[1, 2, 3, 5]") &&
                        Catch::Contains("[2, 3, 3, 5]"));
  CHECK_THROWS_WITH(max_pool2d(random_tensor({1, 1, 1, 4}, 75)),
                    Catch::Contains("max_pool2d") && Catch::Contains("[1, 1, 1, 4]"));
}
