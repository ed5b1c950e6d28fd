// The fused upsample-conv CUDA kernels (kernels/cuda/conv2d.cuh: the conv kernels with the
// bilinear x2 upsample in their input loads) against the CPU's upsample then conv
// (kernels/cpu/resample.h, kernels/cpu/conv2d.h, float): forward, input gradient and parameter
// gradients on odd x_low planes, batch 2, 3-channel and wider inputs, channel tails and channel
// slices. Then the engine ops on Device::CUDA against the CPU through autograd:
// upsample_conv2d, and concat_into with its producers writing into the concat buffer in place.
// Outputs start as garbage and parameter gradients pre-filled, as in test_sim_conv_norm.cpp.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "engine/conv_backend.h"
#include "engine/cudnn_conv.h"
#include "engine/ops.h"
#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/resample.h"
#include "kernels/cuda/conv2d.cuh"
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
using testing::random_tensor;

constexpr int kKernel = 3, kTaps = 9;

DeviceBuffer<double> workspace(size_t bytes) {
  return DeviceBuffer<double>(std::max<size_t>(1, (bytes + sizeof(double) - 1) / sizeof(double)));
}

Shape upsampled(Shape s, int64_t channels) {
  return {s.n, channels, 2 * s.h, 2 * s.w};
}

std::string label(const char* op, Shape s, int64_t out_c, bool slice) {
  return std::string(op) + " " + s.str() + " -> " + std::to_string(out_c) +
         (slice ? " (channel slices)" : "");
}

// The largest sum|w| over one output channel (+|b|) and over one input channel.
void weight_sums(const std::vector<float>& w, const std::vector<float>& b, int64_t out_c,
                 int64_t in_c, double& fwd_sum, double& bwd_sum) {
  fwd_sum = bwd_sum = 0.0;
  for (int64_t o = 0; o < out_c; ++o) {
    double s = std::abs(b[o]);
    for (int64_t k = 0; k < in_c * kTaps; ++k) s += std::abs(w[o * in_c * kTaps + k]);
    fwd_sum = std::max(fwd_sum, s);
  }
  for (int64_t c = 0; c < in_c; ++c) {
    double s = 0.0;
    for (int64_t o = 0; o < out_c; ++o)
      for (int64_t t = 0; t < kTaps; ++t) s += std::abs(w[(o * in_c + c) * kTaps + t]);
    bwd_sum = std::max(bwd_sum, s);
  }
}

// Forward, input gradient and parameter gradients of one upsample-conv, both ways.
void check_upsample_conv(Shape xs, int64_t out_c, bool slice, uint64_t seed) {
  const Shape us = upsampled(xs, xs.c), ys = upsampled(xs, out_c);
  const int64_t weights = out_c * xs.c * kTaps;
  const HostTensor x = random_host(xs, slice, seed), gy = random_host(ys, slice, seed + 1);
  const HostTensor y = random_host(ys, slice, seed + 2, 5.0, 9.0);
  const HostTensor gx = random_host(xs, slice, seed + 3, 5.0, 9.0);
  const std::vector<float> w = random_floats(weights, seed + 4), b = random_floats(out_c, seed + 5);
  const std::vector<float> gw = random_floats(weights, seed + 6, -3.0, 3.0);
  const std::vector<float> gb = random_floats(out_c, seed + 7, -3.0, 3.0);

  // The CPU reference: upsample into a contiguous temporary, then the conv kernels.
  std::vector<float> x_cpu = x.values, gy_cpu = gy.values, y_cpu = y.values, gx_cpu = gx.values,
                     gw_cpu = gw, gb_cpu = gb, up(us.numel()), grad_up(us.numel());
  const auto up_view = cpu::contiguous_view(up.data(), us.n, us.c, us.h, us.w);
  const auto grad_up_view = cpu::contiguous_view(grad_up.data(), us.n, us.c, us.h, us.w);
  cpu::upsample_bilinear2x_forward<float>(x.view(x_cpu.data()), up_view);
  cpu::conv2d_forward<float>(up_view, w.data(), b.data(), kKernel, y.view(y_cpu.data()));
  cpu::conv2d_backward_input<float>(gy.view(gy_cpu.data()), w.data(), kKernel, grad_up_view);
  cpu::upsample_bilinear2x_backward<float>(grad_up_view, gx.view(gx_cpu.data()));
  cpu::conv2d_backward_params<float>(up_view, gy.view(gy_cpu.data()), kKernel, gw_cpu.data(),
                                     gb_cpu.data());

  DeviceBuffer<float> x_gpu(x.values), gy_gpu(gy.values), y_gpu(y.values), gx_gpu(gx.values),
      w_gpu(w), b_gpu(b), gw_gpu(gw), gb_gpu(gb);
  cuda::upsample_conv2d_forward(x.view(x_gpu.data()), w_gpu.data(), b_gpu.data(), kKernel,
                                y.view(y_gpu.data()), nullptr);
  const auto ws_in =
      workspace(cuda::upsample_conv2d_backward_input_workspace_bytes(gy.view(gy_gpu.data()), xs.c));
  cuda::upsample_conv2d_backward_input(gy.view(gy_gpu.data()), w_gpu.data(), kKernel,
                                       gx.view(gx_gpu.data()), ws_in.data(), nullptr);
  const auto ws = workspace(cuda::upsample_conv2d_backward_params_workspace_bytes(
      x.view(x_gpu.data()), gy.view(gy_gpu.data()), kKernel));
  cuda::upsample_conv2d_backward_params(x.view(x_gpu.data()), gy.view(gy_gpu.data()), kKernel,
                                        gw_gpu.data(), gb_gpu.data(), ws.data(), nullptr);

  double fwd_sum = 0.0, bwd_sum = 0.0;
  weight_sums(w, b, out_c, xs.c, fwd_sum, bwd_sum);
  // Forward: the conv's bound (two summation orders: 2 L u sum|t|, test_sim_conv_norm.cpp) on
  // upsampled inputs in [-1, 1] (convex combinations), plus the upsample's own rounding, which
  // an FMA on the GPU may change by ~4 u per input value.
  CHECK(expect_close(y_gpu.download(), y_cpu,
                     (2.0 * (xs.c * kTaps + 1) + 4.0) * kUnitRoundoff * fwd_sum, 0.0,
                     label("upsample_conv2d_forward", xs, out_c, slice)));
  // Input gradient: the full-resolution gradients differ by the conv's bound (|values| <=
  // bwd_sum); the adjoint sums up to 16 of them with weights totalling 4 (2 per axis), in
  // another order than the CPU's scatter: 4 times the conv bound plus 2 * 16 u * 4 bwd_sum.
  CHECK(expect_close(gx_gpu.download(), gx_cpu,
                     4.0 * (2.0 * (out_c * kTaps) + 32.0) * kUnitRoundoff * bwd_sum, 0.0,
                     label("upsample_conv2d_backward_input", xs, out_c, slice)));
  // Parameter gradients: the conv's bound over the full-resolution pixels (sum|t| <= pixels),
  // plus the upsampled inputs' own rounding (4 u each).
  const double pixels = double(ys.n * ys.h * ys.w);
  const double param_tol =
      (128 + ys.w + 4) * kUnitRoundoff * pixels + 4 * kUnitRoundoff * (3 + pixels);
  CHECK(expect_close(gw_gpu.download(), gw_cpu, param_tol, 0.0,
                     label("upsample_conv2d grad_weight", xs, out_c, slice)));
  CHECK(expect_close(gb_gpu.download(), gb_cpu, param_tol, 0.0,
                     label("upsample_conv2d grad_bias", xs, out_c, slice)));
}

TEST_CASE("cuda upsample_conv2d matches the cpu upsample then conv (3 channels, odd planes)",
          "[upsample_conv]") {
  check_upsample_conv({2, 3, 5, 7}, 5, false, 110);  // 10 x 14: partial pixel tiles
  check_upsample_conv({2, 3, 5, 7}, 5, true, 120);
  check_upsample_conv({2, 2, 1, 1}, 3, true, 130);   // a 1x1 x_low: every tap border-clamped
  check_upsample_conv({1, 4, 3, 1}, 2, false, 140);  // a one-column x_low
}

TEST_CASE("cuda upsample_conv2d matches the cpu on channel tails, several tiles and splits",
          "[upsample_conv]") {
  // 20 and 17 channels: a full and a partial chunk, a full and a partial output tile.
  check_upsample_conv({1, 20, 5, 9}, 17, true, 150);
  // 20 x 34 at full resolution: 3 x 3 tiles per sample, 18 units over several splits.
  check_upsample_conv({2, 4, 10, 17}, 6, true, 160);
}

// --- The engine ops through autograd, CUDA against CPU.

constexpr double kReduceTol = 1e-5;  // sums in other orders, O(1) values (test_sim_engine.cpp)

using OpFn = testing::EngineOpFn;
using testing::EngineRun;


// op on CUDA against ref (the same function, or the unfused ops) on the CPU.
void check_engine(const std::string& name, const std::vector<Shape>& shapes, const OpFn& op,
                  const OpFn& ref, uint64_t seed = 31) {
  const EngineRun cpu = testing::run_engine_op(Device::CPU, shapes, ref, seed);
  const EngineRun gpu = testing::run_engine_op(Device::CUDA, shapes, op, seed);
  CHECK(expect_close(gpu.output, cpu.output, kReduceTol, kReduceTol, name + " forward"));
  for (size_t i = 0; i < shapes.size(); ++i)
    CHECK(expect_close(gpu.grads[i], cpu.grads[i], kReduceTol, kReduceTol,
                       name + " gradient of input " + std::to_string(i)));
}

Tensor unfused(const std::vector<Tensor>& in) {
  return conv2d(upsample_bilinear2x(in[0]), in[1], in[2]);
}

// The decoder's pattern: cat([upsample_conv2d(x) written in place, relu(skip)]), then a conv.
Tensor up_concat(const std::vector<Tensor>& in) {
  const Tensor skip = relu(in[3]);
  const int64_t up_c = in[1].n();
  Tensor buffer = Tensor::empty({skip.n(), up_c + skip.c(), skip.h(), skip.w()}, skip.device());
  Tensor u = upsample_conv2d(in[0], in[1], in[2], buffer.channel_slice(0, up_c));
  Tensor cat = concat_into(buffer, u, skip);
  REQUIRE(cat.data() == buffer.data());
  REQUIRE(u.data() == buffer.data());  // the up path wrote its slice in place
  return conv2d(cat, in[4], in[5]);
}

Tensor up_concat_ref(const std::vector<Tensor>& in) {
  return conv2d(concat(unfused(in), relu(in[3])), in[4], in[5]);
}

TEST_CASE("engine on cuda: upsample_conv2d and concat_into match the cpu's unfused ops",
          "[upsample_conv][engine]") {
  const std::vector<Shape> conv_shapes{{2, 5, 3, 5}, {4, 5, 3, 3}, {4, 1, 1, 1}};
  check_engine(
      "upsample_conv2d", conv_shapes, [](auto& in) { return upsample_conv2d(in[0], in[1], in[2]); },
      unfused);
  // Up path 4 channels, skip 3: the second conv reads all 7 through the in-place buffer.
  const std::vector<Shape> cat_shapes{{2, 5, 3, 5},  {4, 5, 3, 3}, {4, 1, 1, 1},
                                      {2, 3, 6, 10}, {2, 7, 3, 3}, {2, 1, 1, 1}};
  check_engine("concat_into", cat_shapes, up_concat, up_concat_ref);
}

TEST_CASE("engine on cuda: concat_into with both producers in place copies nothing",
          "[upsample_conv][engine]") {
  // Two upsample-convs write both halves; the buffer's values are then exactly theirs.
  const Tensor x = random_tensor({1, 3, 3, 4}, 41).to(Device::CUDA);
  const Tensor w1 = random_tensor({2, 3, 3, 3}, 42).to(Device::CUDA);
  const Tensor w2 = random_tensor({3, 3, 3, 3}, 43).to(Device::CUDA);
  Tensor buffer = Tensor::empty({1, 5, 6, 8}, Device::CUDA);
  Tensor a = upsample_conv2d(x, w1, Tensor(), buffer.channel_slice(0, 2));
  Tensor b = upsample_conv2d(x, w2, Tensor(), buffer.channel_slice(2, 3));
  Tensor cat = concat_into(buffer, a, b);
  const Tensor ref = concat(upsample_conv2d(x, w1, Tensor()), upsample_conv2d(x, w2, Tensor()));
  CHECK(expect_close(cat.to_vector(), ref.to_vector(), 0.0, 0.0, "in-place halves"));
}

// Restores the conv backend when the test ends, passed or not.
struct BackendGuard {
  ConvBackend previous = conv_backend();
  ~BackendGuard() { set_conv_backend(previous); }
};

TEST_CASE("engine on cuda: with the cudnn conv backend, upsample_conv2d is upsample then conv2d",
          "[upsample_conv][engine]") {
  const BackendGuard guard;
  set_conv_backend(ConvBackend::Cudnn);
  const Tensor x = random_tensor({1, 3, 3, 4}, 51).to(Device::CUDA);
  const Tensor w = random_tensor({2, 3, 3, 3}, 52).to(Device::CUDA);
  if (!cudnn::available()) {
    // No cuDNN here: the op must reach conv2d's cuDNN branch, which says so.
    CHECK_THROWS_WITH(upsample_conv2d(x, w, Tensor()), Catch::Contains("cuDNN"));
    return;
  }
  Tensor buffer = Tensor::empty({1, 2, 6, 8}, Device::CUDA);
  const Tensor y = upsample_conv2d(x, w, Tensor(), buffer);
  CHECK(expect_close(y.to_vector(), conv2d(upsample_bilinear2x(x), w, Tensor()).to_vector(), 0.0,
                     0.0, "cudnn path"));
  // It returns its own tensor, which concat_into then copies into place.
  CHECK(y.data() != buffer.data());
}

}  // namespace
}  // namespace deblur
