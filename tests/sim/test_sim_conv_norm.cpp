// The CUDA conv2d and GroupNorm(+ReLU) kernels, run in the simulator, against their CPU twins
// (kernels/cpu/conv2d.h, kernels/cpu/group_norm.h, float) on odd shapes: 3-channel first and
// last layers, channel counts that are not multiples of the tiles, odd H and W, batch > 1, and
// channel slices of larger tensors (batch_stride > C*H*W) whose other channels must stay as they
// were. Outputs start as garbage and parameter gradients pre-filled with random values on both
// sides, so a forgotten element or a `=` where `+=` belongs shows. Each tolerance says where it
// comes from and holds on the GPU too (which contracts a * b + c into FMAs).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/group_norm.h"
#include "kernels/cuda/conv2d.cuh"
#include "kernels/cuda/group_norm.cuh"
#include "tests/sim/device_testing.h"
#include "tests/testing.h"

namespace deblur {
namespace {

using cuda::DeviceBuffer;
using testing::expect_close;
using testing::HostTensor;
using testing::kUnitRoundoff;
using testing::random_floats;
using testing::random_host;
using View = cpu::NchwView<float>;

double max_abs(const std::vector<float>& v) {
  double m = 0.0;
  for (float f : v) m = std::max(m, double(std::abs(f)));
  return m;
}

// A workspace of at least `bytes` bytes.
DeviceBuffer<double> workspace(size_t bytes) {
  return DeviceBuffer<double>(std::max<size_t>(1, (bytes + sizeof(double) - 1) / sizeof(double)));
}

std::string label(const char* op, Shape s, int64_t out_c, int kernel, bool slice) {
  return std::string(op) + " " + s.str() + " -> " + std::to_string(out_c) + " k" +
         std::to_string(kernel) + (slice ? " (channel slices)" : "");
}

// Forward, input gradient and parameter gradients of one convolution, both ways.
void check_conv(Shape xs, int64_t out_c, int kernel, bool slice, uint64_t seed) {
  const Shape ys{xs.n, out_c, xs.h, xs.w};
  const int64_t taps = int64_t(kernel) * kernel, weights = out_c * xs.c * taps;
  const HostTensor x = random_host(xs, slice, seed), gy = random_host(ys, slice, seed + 1);
  const HostTensor y = random_host(ys, slice, seed + 2, 5.0, 9.0);
  const HostTensor gx = random_host(xs, slice, seed + 3, 5.0, 9.0);
  const std::vector<float> w = random_floats(weights, seed + 4), b = random_floats(out_c, seed + 5);
  const std::vector<float> gw = random_floats(weights, seed + 6, -3.0, 3.0);
  const std::vector<float> gb = random_floats(out_c, seed + 7, -3.0, 3.0);

  std::vector<float> x_cpu = x.values, gy_cpu = gy.values, y_cpu = y.values, gx_cpu = gx.values,
                     gw_cpu = gw, gb_cpu = gb;
  cpu::conv2d_forward<float>(x.view(x_cpu.data()), w.data(), b.data(), kernel,
                             y.view(y_cpu.data()));
  cpu::conv2d_backward_input<float>(gy.view(gy_cpu.data()), w.data(), kernel,
                                    gx.view(gx_cpu.data()));
  cpu::conv2d_backward_params<float>(x.view(x_cpu.data()), gy.view(gy_cpu.data()), kernel,
                                     gw_cpu.data(), gb_cpu.data());

  DeviceBuffer<float> x_gpu(x.values), gy_gpu(gy.values), y_gpu(y.values), gx_gpu(gx.values),
      w_gpu(w), b_gpu(b), gw_gpu(gw), gb_gpu(gb);
  cuda::conv2d_forward(x.view(x_gpu.data()), w_gpu.data(), b_gpu.data(), kernel,
                       y.view(y_gpu.data()), nullptr);
  cuda::conv2d_backward_input(gy.view(gy_gpu.data()), w_gpu.data(), kernel, gx.view(gx_gpu.data()),
                              nullptr);
  const auto ws = workspace(cuda::conv2d_backward_params_workspace_bytes(
      x.view(x_gpu.data()), gy.view(gy_gpu.data()), kernel));
  cuda::conv2d_backward_params(x.view(x_gpu.data()), gy.view(gy_gpu.data()), kernel, gw_gpu.data(),
                               gb_gpu.data(), ws.data(), nullptr);

  // A float sum of L terms errs by at most (L - 1) u sum|t| in any order, so two orders differ
  // by at most 2 L u sum|t|, with sum|t| bounded from the largest weights and values (inputs and
  // dy lie in [-1, 1]). At most 2e-5 relative to sum|t| for the layers here.
  double fwd_sum = 0.0, bwd_sum = 0.0;  // the largest sum|w| over one output (input) channel
  for (int64_t o = 0; o < out_c; ++o) {
    double s = std::abs(b[o]);
    for (int64_t k = 0; k < xs.c * taps; ++k) s += std::abs(w[o * xs.c * taps + k]);
    fwd_sum = std::max(fwd_sum, s);
  }
  for (int64_t c = 0; c < xs.c; ++c) {
    double s = 0.0;
    for (int64_t o = 0; o < out_c; ++o)
      for (int64_t t = 0; t < taps; ++t) s += std::abs(w[(o * xs.c + c) * taps + t]);
    bwd_sum = std::max(bwd_sum, s);
  }
  CHECK(expect_close(y_gpu.download(), y_cpu, 2.0 * (xs.c * taps + 1) * kUnitRoundoff * fwd_sum,
                     0.0, label("conv2d_forward", xs, out_c, kernel, slice)));
  CHECK(expect_close(gx_gpu.download(), gx_cpu, 2.0 * (out_c * taps) * kUnitRoundoff * bwd_sum, 0.0,
                     label("conv2d_backward_input", xs, out_c, kernel, slice)));
  // Parameter gradients: sum|t| <= N*H*W. The GPU sums each 8x16 tile in float (128 terms) and
  // the tiles in double; the CPU sums each row in float (W terms) and the rows in double; each
  // then rounds its sum and the += once (at most 2 u each, on values below |prefill| + sum|t|).
  const double pixels = double(xs.n * xs.h * xs.w);
  const double param_tol = (128 + xs.w) * kUnitRoundoff * pixels + 4 * kUnitRoundoff * (3 + pixels);
  CHECK(expect_close(gw_gpu.download(), gw_cpu, param_tol, 0.0,
                     label("conv2d grad_weight", xs, out_c, kernel, slice)));
  CHECK(expect_close(gb_gpu.download(), gb_cpu, param_tol, 0.0,
                     label("conv2d grad_bias", xs, out_c, kernel, slice)));
}

TEST_CASE("cuda conv2d forward and gradients match the CPU (3-channel first and last layers)",
          "[conv2d]") {
  check_conv({2, 3, 7, 9}, 5, 3, false, 10);  // the first layer's 3 input channels
  check_conv({2, 6, 5, 7}, 3, 1, false, 20);  // the last layer's 1x1 to 3 channels
  check_conv({3, 5, 1, 2}, 4, 3, true, 30);   // a plane smaller than the kernel
  check_conv({2, 3, 7, 9}, 5, 3, true, 40);
  check_conv({2, 6, 5, 7}, 3, 1, true, 50);
}

TEST_CASE("cuda conv2d matches the CPU on channel tails, several tiles and split reductions",
          "[conv2d]") {
  // 20 and 17 channels: a full and a partial chunk, a full and a partial output tile.
  check_conv({1, 20, 9, 11}, 17, 3, true, 60);
  check_conv({1, 20, 9, 11}, 17, 1, false, 70);
  // 3 x 3 pixel tiles per sample, 18 (sample, tile) units over 5 weight-gradient splits.
  check_conv({2, 4, 20, 35}, 6, 3, true, 80);
}

TEST_CASE("cuda conv2d parameter gradients accumulate, deterministically", "[conv2d]") {
  const Shape xs{2, 4, 20, 35}, ys{2, 6, 20, 35};
  const HostTensor x = random_host(xs, false, 90), gy = random_host(ys, false, 91);
  DeviceBuffer<float> x_gpu(x.values), gy_gpu(gy.values), gw(std::vector<float>(6 * 4 * 9, 0.0f)),
      gb(std::vector<float>(6, 0.0f));
  const auto ws = workspace(cuda::conv2d_backward_params_workspace_bytes(
      x.view(x_gpu.data()), gy.view(gy_gpu.data()), 3));
  cuda::conv2d_backward_params(x.view(x_gpu.data()), gy.view(gy_gpu.data()), 3, gw.data(),
                               gb.data(), ws.data(), nullptr);
  const std::vector<float> gw_once = gw.download(), gb_once = gb.download();
  cuda::conv2d_backward_params(x.view(x_gpu.data()), gy.view(gy_gpu.data()), 3, gw.data(),
                               gb.data(), ws.data(), nullptr);
  // The same sums again, bit for bit (no atomics), added to the first: exactly twice them.
  std::vector<float> gw_twice = gw_once, gb_twice = gb_once;
  for (float& v : gw_twice) v *= 2.0f;
  for (float& v : gb_twice) v *= 2.0f;
  CHECK(expect_close(gw.download(), gw_twice, 0.0, 0.0, "grad_weight after two backwards"));
  CHECK(expect_close(gb.download(), gb_twice, 0.0, 0.0, "grad_bias after two backwards"));
  // Only the requested gradient is touched.
  DeviceBuffer<float> gb_only(std::vector<float>(6, 1.0f));
  cuda::conv2d_backward_params(x.view(x_gpu.data()), gy.view(gy_gpu.data()), 3, nullptr,
                               gb_only.data(), ws.data(), nullptr);
  std::vector<float> gb_plus_one = gb_once;
  for (float& v : gb_plus_one) v += 1.0f;
  CHECK(expect_close(gb_only.download(), gb_plus_one, 0.0, 0.0, "grad_bias alone"));
}

// Forward and backward of one GroupNorm(+ReLU), both ways; x in [lo, hi).
void check_group_norm(Shape s, int groups, bool relu, bool slice, uint64_t seed, double lo = -1.0,
                      double hi = 1.0) {
  const int64_t stats = s.n * groups;
  const HostTensor x = random_host(s, slice, seed, lo, hi), gy = random_host(s, slice, seed + 1);
  const HostTensor y = random_host(s, slice, seed + 2, 5.0, 9.0);
  const HostTensor gx = random_host(s, slice, seed + 3, 5.0, 9.0);
  const std::vector<float> gamma = random_floats(s.c, seed + 4, 0.5, 1.5);
  const std::vector<float> beta = random_floats(s.c, seed + 5, -0.5, 0.5);
  const std::vector<float> gg = random_floats(s.c, seed + 6, -3.0, 3.0);
  const std::vector<float> gbeta = random_floats(s.c, seed + 7, -3.0, 3.0);
  const float eps = 1e-5f;
  const std::string what = s.str() + " groups " + std::to_string(groups) + (relu ? " relu" : "") +
                           (slice ? " (channel slices)" : "");

  std::vector<float> x_cpu = x.values, gy_cpu = gy.values, y_cpu = y.values, gx_cpu = gx.values,
                     mean_cpu(stats), rstd_cpu(stats), gg_cpu = gg, gbeta_cpu = gbeta;
  cpu::group_norm_forward<float>(x.view(x_cpu.data()), gamma.data(), beta.data(), groups, eps, relu,
                                 y.view(y_cpu.data()), mean_cpu.data(), rstd_cpu.data());
  cpu::group_norm_backward<float>(x.view(x_cpu.data()), y.view(y_cpu.data()), gamma.data(),
                                  mean_cpu.data(), rstd_cpu.data(), groups, relu,
                                  gy.view(gy_cpu.data()), gx.view(gx_cpu.data()), gg_cpu.data(),
                                  gbeta_cpu.data());

  DeviceBuffer<float> x_gpu(x.values), y_gpu(y.values), gamma_gpu(gamma), beta_gpu(beta),
      mean_gpu(stats), rstd_gpu(stats);
  const auto ws = workspace(cuda::group_norm_workspace_bytes(x.view(x_gpu.data()), groups));
  cuda::group_norm_forward(x.view(x_gpu.data()), gamma_gpu.data(), beta_gpu.data(), groups, eps,
                           relu, y.view(y_gpu.data()), mean_gpu.data(), rstd_gpu.data(), ws.data(),
                           nullptr);
  // The backward runs on the CPU's forward results, so that a ReLU mask never differs.
  DeviceBuffer<float> y_ref(y_cpu), mean_ref(mean_cpu), rstd_ref(rstd_cpu), gy_gpu(gy.values),
      gx_gpu(gx.values), gg_gpu(gg), gbeta_gpu(gbeta);
  cuda::group_norm_backward(x.view(x_gpu.data()), y.view(y_ref.data()), gamma_gpu.data(),
                            mean_ref.data(), rstd_ref.data(), groups, relu, gy.view(gy_gpu.data()),
                            gx.view(gx_gpu.data()), gg_gpu.data(), gbeta_gpu.data(), ws.data(),
                            nullptr);

  // Statistics: double on both sides (sums in other orders, ~1e-15 relative), rounded once to
  // float, where the two may land an ulp apart: 2 u relative.
  CHECK(expect_close(mean_gpu.download(), mean_cpu,
                     2 * kUnitRoundoff * std::max(std::abs(lo), std::abs(hi)), 0.0,
                     "group_norm mean " + what));
  CHECK(expect_close(rstd_gpu.download(), rstd_cpu, 0.0, 2 * kUnitRoundoff,
                     "group_norm rstd " + what));
  // y = x * a + b with a and b folded in double as the CPU does, then rounded to float, where an
  // ulp may flip (2 u relative each): y moves by at most 2 u (max|x| |a| + |b|); a GPU FMA skips
  // one more rounding of the same size.
  double scale = 0.0;
  for (int64_t i = 0; i < stats; ++i)
    for (int64_t c = i % groups * (s.c / groups); c < (i % groups + 1) * (s.c / groups); ++c) {
      const double a = double(rstd_cpu[i]) * gamma[c], b = beta[c] - double(mean_cpu[i]) * a;
      scale = std::max(scale, max_abs(x.values) * std::abs(a) + std::abs(b));
    }
  CHECK(expect_close(y_gpu.download(), y_cpu, 4 * kUnitRoundoff * scale, 0.0,
                     "group_norm_forward " + what));
  // dx: the same double expression from the same float inputs, the group sums in another order
  // (~1e-15 relative), rounded once to float: an ulp apart at most (2 u relative).
  CHECK(expect_close(gx_gpu.download(), gx_cpu, 1e-12 * max_abs(gx_cpu), 2 * kUnitRoundoff,
                     "group_norm_backward dx " + what));
  // grad_gamma, grad_beta: double sums rounded to float (an ulp apart, 2 u |sum|), then += in
  // float (another 2 u |result|); both are below max|result| + |prefill| <= max|ref| + 6.
  const double param_tol = 4 * kUnitRoundoff * (std::max(max_abs(gg_cpu), max_abs(gbeta_cpu)) + 6);
  CHECK(expect_close(gg_gpu.download(), gg_cpu, param_tol, 0.0, "group_norm grad_gamma " + what));
  CHECK(expect_close(gbeta_gpu.download(), gbeta_cpu, param_tol, 0.0,
                     "group_norm grad_beta " + what));
}

TEST_CASE("cuda group_norm(+relu) forward and backward match the CPU", "[group_norm]") {
  check_group_norm({2, 8, 5, 7}, 4, false, false, 100);
  check_group_norm({2, 8, 5, 7}, 4, true, false, 110);
  check_group_norm({2, 16, 9, 13}, 8, true, true, 120);
  check_group_norm({3, 6, 1, 3}, 3, false, true, 130);
  // A mean far from zero against a spread of 1: the shifted sums must not cancel.
  check_group_norm({2, 8, 5, 7}, 2, true, false, 140, 50.0, 51.0);
}

TEST_CASE("cuda group_norm splits its statistics and gradient sums over several blocks",
          "[group_norm]") {
  // 2 x 1600 values per group in 4 chunks; 1600 per channel plane in 2.
  check_group_norm({1, 4, 40, 40}, 2, true, true, 200);
  check_group_norm({2, 2, 33, 40}, 1, false, false, 210);
}

TEST_CASE("cuda group_norm parameter gradients accumulate, deterministically", "[group_norm]") {
  const Shape s{2, 8, 5, 7};
  const int groups = 4;
  const HostTensor x = random_host(s, false, 300), gy = random_host(s, false, 301);
  const std::vector<float> gamma = random_floats(s.c, 302, 0.5, 1.5);
  const std::vector<float> beta = random_floats(s.c, 303, -0.5, 0.5);
  DeviceBuffer<float> x_gpu(x.values), gy_gpu(gy.values), y(x.values.size()), gx(x.values.size()),
      gamma_gpu(gamma), beta_gpu(beta), mean(s.n * groups), rstd(s.n * groups),
      gg(std::vector<float>(s.c, 0.0f)), gbeta(std::vector<float>(s.c, 0.0f));
  const auto ws = workspace(cuda::group_norm_workspace_bytes(x.view(x_gpu.data()), groups));
  const View yv = x.view(y.data());
  cuda::group_norm_forward(x.view(x_gpu.data()), gamma_gpu.data(), beta_gpu.data(), groups, 1e-5f,
                           true, yv, mean.data(), rstd.data(), ws.data(), nullptr);
  for (int pass = 0; pass < 2; ++pass)
    cuda::group_norm_backward(x.view(x_gpu.data()), yv, gamma_gpu.data(), mean.data(), rstd.data(),
                              groups, true, gy.view(gy_gpu.data()), x.view(gx.data()), gg.data(),
                              gbeta.data(), ws.data(), nullptr);
  std::vector<float> gg_once(s.c, 0.0f), gbeta_once(s.c, 0.0f);
  DeviceBuffer<float> gg1(gg_once), gbeta1(gbeta_once);
  cuda::group_norm_backward(x.view(x_gpu.data()), yv, gamma_gpu.data(), mean.data(), rstd.data(),
                            groups, true, gy.view(gy_gpu.data()), x.view(gx.data()), gg1.data(),
                            gbeta1.data(), ws.data(), nullptr);
  // The same sums each time, bit for bit (no atomics): two backwards give exactly twice one.
  gg_once = gg1.download();
  gbeta_once = gbeta1.download();
  for (float& v : gg_once) v *= 2.0f;
  for (float& v : gbeta_once) v *= 2.0f;
  CHECK(expect_close(gg.download(), gg_once, 0.0, 0.0, "grad_gamma after two backwards"));
  CHECK(expect_close(gbeta.download(), gbeta_once, 0.0, 0.0, "grad_beta after two backwards"));
}

}  // namespace
}  // namespace deblur
