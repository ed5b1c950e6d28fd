// The SSIM / MS-SSIM CUDA kernels (kernels/cuda/ssim.cu) against their CPU twins
// (kernels/cpu/ssim.h), device-agnostic (launchers, DeviceBuffer and engine ops only): one scale's
// per-(n, c) statistics and its backward on odd shapes spanning several tiles, channel slices
// (the channels outside a slice must stay as they were), the padded 2x2 average pool, the scalar
// ssim and ms_ssim at the smallest legal size, bitwise reproducibility, and the engine ops on
// Device::CUDA through autograd.
//
// Tolerances. Both backends compute each pixel's statistics and terms in float with the same
// expressions in the same order; the per-(n, c) means add those floats in double in different
// orders (~1e-16). In the simulator every per-(n, c) value and every gradient here was measured
// equal to the CPU's, bit for bit. On a GPU, nvcc contracts a * b + c into FMAs, which moves a
// pixel's filtered values by an ulp or so and its ratios by a few ulps, amplified where
// E[X^2] - mu^2 cancels. Inputs here are in [0, 1] with local variance ~1/12 against E[X^2] ~1/3
// (a factor ~4), so one pixel's ssim or cs moves by < 100 u ~ 6e-6 and their means (of O(1)
// values) by less: kValueTol = 2e-5 absolute. Gradients are sums of 121 filtered terms of both
// signs, so their error is relative to the largest gradient, not to each element: kGradTol =
// 1e-4 of the largest reference gradient, plus 1e-4 relative.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "engine/ops.h"
#include "kernels/cpu/ssim.h"
#include "kernels/cuda/ssim.cuh"
#include "tests/sim/device_testing.h"
#include "tests/testing.h"

namespace deblur {
namespace {

using cuda::DeviceBuffer;
using testing::expect_close;
using testing::HostTensor;
using testing::identical;
using testing::label;
using View = cpu::NchwView<float>;
using ConstView = cpu::NchwView<const float>;

constexpr double kValueTol = 2e-5;  // per-(n, c) and scalar values (file comment)
constexpr double kGradTol = 1e-4;   // gradients, relative to the largest one (file comment)

// x uniform in [0, 1); y = 0.7 x + 0.3 noise, so ssim and cs are well away from 0 (a useful
// product for MS-SSIM) yet not 1. Channel slices as testing::random_host.
struct Pair {
  HostTensor x, y;
};
Pair random_pair(Shape s, bool slice, uint64_t seed) {
  Pair p{testing::random_host(s, slice, seed, 0.0, 1.0),
         testing::random_host(s, slice, seed + 1, 0.0, 1.0)};
  for (size_t k = 0; k < p.y.values.size(); ++k)
    p.y.values[k] = 0.7f * p.x.values[k] + 0.3f * p.y.values[k];
  return p;
}

double max_abs(const std::vector<float>& v) {
  double m = 0.0;
  for (float f : v) m = std::max(m, std::abs(double(f)));
  return m;
}

// Compares whole buffers (a slice's other channels must be untouched on both sides), with the
// gradient tolerance scaled by the largest reference value.
bool grads_close(const std::vector<float>& got, const std::vector<float>& ref,
                 const std::string& what) {
  return expect_close(got, ref, kGradTol * max_abs(ref), kGradTol, what);
}

// Odd sides, the 11 x 11 minimum (one output pixel), and planes of several 32 x 8 tiles with
// partial last tiles.
const std::vector<Shape> kLevelShapes = {
    {2, 3, 11, 11}, {1, 2, 12, 43}, {2, 3, 23, 17}, {1, 1, 45, 70}};

TEST_CASE("cuda ssim one scale: per-(n, c) ssim, cs and the backward match the CPU",
          "[ssim_cuda]") {
  uint64_t seed = 1000;
  for (const Shape& s : kLevelShapes)
    for (bool slice : {false, true}) {
      const std::string what = label("ssim_level", s, slice);
      INFO(what);
      const double data_range = slice ? 2.0 : 1.0;
      Pair p = random_pair(s, slice, seed += 2);
      const int64_t planes = s.n * s.c;
      const ConstView xv = p.x.view(p.x.values.data());
      const ConstView yv = p.y.view(p.y.values.data());

      std::vector<double> ssim_ref(planes), cs_ref(planes);
      cpu::ssim_level_forward<float>(xv, yv, data_range, ssim_ref.data(), cs_ref.data());

      DeviceBuffer<float> x_gpu(p.x.values), y_gpu(p.y.values);
      const ConstView xg = p.x.view(x_gpu.data()), yg = p.y.view(y_gpu.data());
      DeviceBuffer<unsigned char> workspace(cuda::ssim_workspace_bytes(xg));
      DeviceBuffer<double> ssim_gpu(std::vector<double>(planes, 5.0));
      DeviceBuffer<double> cs_gpu(std::vector<double>(planes, 5.0));
      cuda::ssim_level_forward(xg, yg, data_range, ssim_gpu.data(), cs_gpu.data(), workspace.data(),
                               nullptr);
      CHECK(expect_close(ssim_gpu.download(), ssim_ref, kValueTol, 0.0, what + " ssim"));
      CHECK(expect_close(cs_gpu.download(), cs_ref, kValueTol, 0.0, what + " cs"));

      // Both per-(n, c) gradients nonzero and different per plane: the ssim and cs paths and the
      // plane indexing all show.
      const std::vector<double> grad_ssim = testing::random_values(planes, seed + 7, -2.0, 2.0);
      const std::vector<double> grad_cs = testing::random_values(planes, seed + 8, -2.0, 2.0);
      // Outputs start as the same garbage on both sides.
      const HostTensor gx0 = testing::random_host(s, slice, seed + 9, 5.0, 9.0);
      const HostTensor gy0 = testing::random_host(s, slice, seed + 10, 5.0, 9.0);
      std::vector<float> gx_ref = gx0.values, gy_ref = gy0.values;
      cpu::ssim_level_backward<float>(xv, yv, data_range, grad_ssim.data(), grad_cs.data(),
                                      gx0.view(gx_ref.data()), gy0.view(gy_ref.data()));
      DeviceBuffer<double> grad_ssim_gpu(grad_ssim), grad_cs_gpu(grad_cs);
      DeviceBuffer<float> gx_gpu(gx0.values), gy_gpu(gy0.values);
      cuda::ssim_level_backward(xg, yg, data_range, grad_ssim_gpu.data(), grad_cs_gpu.data(),
                                gx0.view(gx_gpu.data()), gy0.view(gy_gpu.data()), workspace.data(),
                                nullptr);
      CHECK(grads_close(gx_gpu.download(), gx_ref, what + " grad_x"));
      CHECK(grads_close(gy_gpu.download(), gy_ref, what + " grad_y"));
    }
}

TEST_CASE("cuda padded 2x2 avg pool forward and backward match the CPU bitwise", "[ssim_cuda]") {
  // Even and odd sides (odd pads a zero on both ends), a single pixel, and many blocks.
  const std::vector<Shape> shapes = {{2, 3, 11, 11}, {1, 2, 12, 7}, {2, 1, 1, 1}, {1, 3, 33, 64}};
  uint64_t seed = 2000;
  for (const Shape& s : shapes)
    for (bool slice : {false, true}) {
      const std::string what = label("avg_pool2x2_padded", s, slice);
      INFO(what);
      const Shape so{s.n, s.c, cpu::avg_pool_padded_size(s.h), cpu::avg_pool_padded_size(s.w)};
      const HostTensor x = testing::random_host(s, slice, ++seed);
      const HostTensor y0 = testing::random_host(so, slice, ++seed, 5.0, 9.0);
      std::vector<float> x_host = x.values, y_ref = y0.values;
      cpu::avg_pool2x2_padded_forward<float>(x.view(x_host.data()), y0.view(y_ref.data()));
      DeviceBuffer<float> x_gpu(x.values), y_gpu(y0.values);
      cuda::avg_pool2x2_padded_forward(x.view(x_gpu.data()), y0.view(y_gpu.data()), nullptr);
      // The same additions in the same order, and a division by 4 (exact): identical bits.
      CHECK(identical(y_gpu.download(), y_ref));

      const HostTensor gy = testing::random_host(so, slice, ++seed);
      const HostTensor gx0 = testing::random_host(s, slice, ++seed, 5.0, 9.0);
      std::vector<float> gy_host = gy.values, gx_ref = gx0.values;
      cpu::avg_pool2x2_padded_backward<float>(gy.view(gy_host.data()), gx0.view(gx_ref.data()));
      DeviceBuffer<float> gy_gpu(gy.values), gx_gpu(gx0.values);
      cuda::avg_pool2x2_padded_backward(gy.view(gy_gpu.data()), gx0.view(gx_gpu.data()), nullptr);
      CHECK(identical(gx_gpu.download(), gx_ref));  // a division by 4: exact
    }
}

// The scalar launchers (ssim_* or ms_ssim_*) against the CPU twins, forward and backward, and the
// same bits from a second run.
struct ScalarOp {
  const char* name;
  double (*cpu_forward)(ConstView, ConstView, double);
  void (*cpu_backward)(ConstView, ConstView, double, double, View, View);
  size_t (*workspace_bytes)(ConstView);
  void (*forward)(ConstView, ConstView, double, float*, void*, cudaStream_t);
  void (*backward)(ConstView, ConstView, double, double, View, View, void*, cudaStream_t);
};
const ScalarOp kSsim{"ssim",
                     &cpu::ssim_forward<float>,
                     &cpu::ssim_backward<float>,
                     &cuda::ssim_workspace_bytes,
                     &cuda::ssim_forward,
                     &cuda::ssim_backward};
const ScalarOp kMsSsim{"ms_ssim",
                       &cpu::ms_ssim_forward<float>,
                       &cpu::ms_ssim_backward<float>,
                       &cuda::ms_ssim_workspace_bytes,
                       &cuda::ms_ssim_forward,
                       &cuda::ms_ssim_backward};

void check_scalar(const ScalarOp& op, Shape s, bool slice, double data_range, uint64_t seed) {
  const std::string what = label(op.name, s, slice);
  INFO(what);
  Pair p = random_pair(s, slice, seed);
  const ConstView xv = p.x.view(p.x.values.data());
  const ConstView yv = p.y.view(p.y.values.data());
  const double ref = op.cpu_forward(xv, yv, data_range);

  DeviceBuffer<float> x_gpu(p.x.values), y_gpu(p.y.values);
  const ConstView xg = p.x.view(x_gpu.data()), yg = p.y.view(y_gpu.data());
  DeviceBuffer<unsigned char> workspace(op.workspace_bytes(xg));
  DeviceBuffer<float> out(std::vector<float>{123.0f});
  op.forward(xg, yg, data_range, out.data(), workspace.data(), nullptr);
  const float got = out.download()[0];
  CHECK(std::abs(double(got) - ref) <= kValueTol);
  op.forward(xg, yg, data_range, out.data(), workspace.data(), nullptr);
  CHECK(out.download()[0] == got);  // deterministic: no atomics, fixed reduction order

  const double grad = -0.75;
  const HostTensor gx0 = testing::random_host(s, slice, seed + 5, 5.0, 9.0);
  const HostTensor gy0 = testing::random_host(s, slice, seed + 6, 5.0, 9.0);
  std::vector<float> gx_ref = gx0.values, gy_ref = gy0.values;
  op.cpu_backward(xv, yv, data_range, grad, gx0.view(gx_ref.data()), gy0.view(gy_ref.data()));
  DeviceBuffer<float> gx_gpu(gx0.values), gy_gpu(gy0.values);
  op.backward(xg, yg, data_range, grad, gx0.view(gx_gpu.data()), gy0.view(gy_gpu.data()),
              workspace.data(), nullptr);
  const std::vector<float> gx = gx_gpu.download(), gy = gy_gpu.download();
  CHECK(grads_close(gx, gx_ref, what + " grad_x"));
  CHECK(grads_close(gy, gy_ref, what + " grad_y"));
  op.backward(xg, yg, data_range, grad, gx0.view(gx_gpu.data()), gy0.view(gy_gpu.data()),
              workspace.data(), nullptr);
  CHECK(identical(gx_gpu.download(), gx));
}

TEST_CASE("cuda ssim scalar forward and backward match the CPU, reproducibly", "[ssim_cuda]") {
  check_scalar(kSsim, {2, 3, 11, 11}, false, 1.0, 3000);
  check_scalar(kSsim, {2, 3, 23, 37}, true, 2.0, 3010);
}

TEST_CASE("cuda ms_ssim forward and backward match the CPU at the smallest size, batch 1",
          "[ssim_cuda]") {
  // 161 x 161: every scale odd (161, 81, 41, 21, 11), the last one a single output pixel.
  check_scalar(kMsSsim, {1, 2, 161, 161}, false, 1.0, 4000);
}

TEST_CASE("cuda ms_ssim forward and backward match the CPU, batch 2 on a channel slice",
          "[ssim_cuda]") {
  // 161 x 164: even and odd sides at different scales; data_range 2 (the seed's form).
  check_scalar(kMsSsim, {2, 1, 161, 164}, true, 2.0, 4010);
}

// Same NaN positions; elsewhere grads_close.
bool grads_close_or_both_nan(std::vector<float> got, std::vector<float> ref,
                             const std::string& what) {
  for (size_t k = 0; k < ref.size(); ++k) {
    if (std::isnan(ref[k]) != std::isnan(got[k])) return false;
    if (std::isnan(ref[k])) got[k] = ref[k] = 0.0f;
  }
  return grads_close(got, ref, what);
}

TEST_CASE("cuda ssim and ms_ssim carry a NaN input through as the CPU does", "[ssim_cuda]") {
  // A NaN must reach the value (the loss falls back to L1 on a non-finite MS-SSIM): relu keeps
  // NaN (std::max(NaN, 0) is NaN), where fmax would have made it 0.
  for (const ScalarOp* op : {&kSsim, &kMsSsim}) {
    const Shape s = op == &kSsim ? Shape{1, 2, 13, 15} : Shape{1, 2, 161, 161};
    const std::string what = label(op->name, s, false) + " with a NaN";
    INFO(what);
    Pair p = random_pair(s, false, 6000);
    p.x.values[s.h * s.w + 3 * s.w + 4] = std::nanf("");  // in channel 1
    const ConstView xv = p.x.view(p.x.values.data()), yv = p.y.view(p.y.values.data());
    CHECK(std::isnan(op->cpu_forward(xv, yv, 1.0)));
    DeviceBuffer<float> x_gpu(p.x.values), y_gpu(p.y.values);
    const ConstView xg = p.x.view(x_gpu.data()), yg = p.y.view(y_gpu.data());
    DeviceBuffer<unsigned char> workspace(op->workspace_bytes(xg));
    DeviceBuffer<float> out(std::vector<float>{123.0f});
    op->forward(xg, yg, 1.0, out.data(), workspace.data(), nullptr);
    CHECK(std::isnan(out.download()[0]));

    std::vector<float> gx_ref(p.x.values.size()), gy_ref(p.y.values.size());
    op->cpu_backward(xv, yv, 1.0, 1.0, p.x.view(gx_ref.data()), p.y.view(gy_ref.data()));
    DeviceBuffer<float> gx_gpu(gx_ref.size()), gy_gpu(gy_ref.size());
    op->backward(xg, yg, 1.0, 1.0, p.x.view(gx_gpu.data()), p.y.view(gy_gpu.data()),
                 workspace.data(), nullptr);
    CHECK(grads_close_or_both_nan(gx_gpu.download(), gx_ref, what + " grad_x"));
    CHECK(grads_close_or_both_nan(gy_gpu.download(), gy_ref, what + " grad_y"));
  }
}

// op(x, y) on `device` through autograd, seeded with a gradient of 0.5; value and gradients back
// on the host.
struct OpRun {
  float value;
  std::vector<float> grad_x, grad_y;
};
OpRun run_op(Tensor (*op)(const Tensor&, const Tensor&, float), const Tensor& x_host,
             const Tensor& y_host, Device device) {
  Tensor x = x_host.to(device).set_requires_grad(true);
  Tensor y = y_host.to(device).set_requires_grad(true);
  Tensor value = scale(op(x, y, 1.0f), 0.5f);
  REQUIRE(value.device() == device);
  value.backward();
  REQUIRE(x.grad().device() == device);
  return {value.item(), x.grad().to_vector(), y.grad().to_vector()};
}

TEST_CASE("engine ssim and ms_ssim on cuda match the cpu through autograd", "[ssim_cuda]") {
  struct Case {
    const char* name;
    Tensor (*op)(const Tensor&, const Tensor&, float);
    Shape shape;
  };
  for (const Case& c :
       {Case{"ssim", &ssim, {2, 3, 13, 19}}, Case{"ms_ssim", &ms_ssim, {1, 1, 161, 163}}}) {
    INFO(c.name);
    const Tensor x = testing::random_tensor(c.shape, 5000, 0.0, 1.0);
    const Tensor y =
        add(scale(x, 0.7f), scale(testing::random_tensor(c.shape, 5001, 0.0, 1.0), 0.3f));
    const OpRun cpu = run_op(c.op, x, y, Device::CPU);
    const OpRun gpu = run_op(c.op, x, y, Device::CUDA);
    CHECK(std::abs(double(gpu.value) - cpu.value) <= kValueTol);
    CHECK(grads_close(gpu.grad_x, cpu.grad_x, std::string(c.name) + " grad x"));
    CHECK(grads_close(gpu.grad_y, cpu.grad_y, std::string(c.name) + " grad y"));
  }
}

TEST_CASE("cuda ssim launchers refuse planes smaller than the window", "[ssim_cuda]") {
  DeviceBuffer<float> x(2 * 10 * 20);
  const ConstView small = cpu::contiguous_view<const float>(x.data(), 1, 2, 10, 20);
  CHECK_THROWS_AS(cuda::ssim_workspace_bytes(small), Error);
  const ConstView under = cpu::contiguous_view<const float>(x.data(), 1, 1, 20, 20);
  CHECK_THROWS_AS(cuda::ms_ssim_forward(under, under, 1.0, nullptr, nullptr, nullptr), Error);
}

}  // namespace
}  // namespace deblur
