// Every CUDA kernel, run in the simulator, against its CPU twin (kernels/cpu/*) on random and odd
// shapes (batch > 1, odd and unit H and W), each both on contiguous tensors and on channel slices
// of larger ones (batch_stride > C*H*W), where the channels outside the slice must stay as they
// were. Outputs start as garbage on both sides, so an element a kernel forgets to assign shows.
// Exact comparisons are bitwise (any NaN matches any NaN); each tolerance says where it comes from, and
// holds for the GPU too (which contracts a * b + c into one FMA, a rounding fewer).
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "kernels/cpu/pointwise.h"
#include "kernels/cpu/resample.h"
#include "kernels/cuda/pointwise.cuh"
#include "kernels/cuda/resample.cuh"
#include "tests/sim/device_testing.h"
#include "tests/testing.h"

namespace deblur {
namespace {

using cuda::DeviceBuffer;
using testing::expect_close;
using testing::expect_identical;
using testing::HostTensor;
using testing::kUnitRoundoff;
using testing::label;
using testing::random_host;
using View = cpu::NchwView<float>;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Unit, odd, batch > 1, single rows and columns, and a larger plane (many blocks per plane).
const std::vector<Shape> kShapes = {{1, 1, 1, 1},  {2, 3, 5, 7},   {3, 2, 9, 1},   {1, 4, 33, 17},
                                    {2, 1, 1, 65}, {2, 5, 16, 16}, {1, 2, 31, 64}, {1, 3, 90, 77}};

// The first values of every sample: zeros of both signs, NaN, infinities.
void put_specials(HostTensor& b) {
  const float specials[] = {0.0f, -0.0f, kNaN, -kInf, kInf};
  const int64_t plane = b.shape.h * b.shape.w, stride = b.total_channels() * plane;
  const int64_t first = b.first * plane, size = b.shape.c * plane;
  for (int64_t i = 0; i < b.shape.n; ++i)
    for (int64_t k = 0; k < 5 && k < size; ++k) b.values[i * stride + first + k] = specials[k];
}

using Op = std::function<void(View a, View b, View y)>;

// Runs op on (a, b) -> y both ways, with a and b random (then `prepare`d) and y garbage, and
// compares the whole of y's buffer: bitwise when atol is 0.
void check_elementwise(const char* name, const Op& cpu_op, const Op& gpu_op, double atol,
                       const std::function<void(HostTensor&)>& prepare = {}) {
  uint64_t seed = 100;
  for (const Shape& s : kShapes)
    for (bool slice : {false, true}) {
      HostTensor a = random_host(s, slice, ++seed), b = random_host(s, slice, ++seed);
      const HostTensor y = random_host(s, slice, ++seed, 5.0, 9.0);
      if (prepare) prepare(a);
      std::vector<float> a_cpu = a.values, b_cpu = b.values, y_cpu = y.values;
      cpu_op(a.view(a_cpu.data()), b.view(b_cpu.data()), y.view(y_cpu.data()));
      DeviceBuffer<float> a_gpu(a.values), b_gpu(b.values), y_gpu(y.values);
      gpu_op(a.view(a_gpu.data()), b.view(b_gpu.data()), y.view(y_gpu.data()));
      const std::string what = label(name, s, slice);
      if (atol == 0.0)
        CHECK(expect_identical(y_gpu.download(), y_cpu, what));
      else
        CHECK(expect_close(y_gpu.download(), y_cpu, atol, 0.0, what));
    }
}

TEST_CASE("cuda relu forward and backward match the CPU bitwise (NaN, zeros, infinities)") {
  check_elementwise(
      "relu_forward", [](View x, View, View y) { cpu::relu_forward<float>(x, y); },
      [](View x, View, View y) { cuda::relu_forward(x, y, nullptr); }, 0.0, put_specials);
  check_elementwise(
      "relu_backward", [](View y, View g, View gx) { cpu::relu_backward<float>(y, g, gx); },
      [](View y, View g, View gx) { cuda::relu_backward(y, g, gx, nullptr); }, 0.0, put_specials);
}

TEST_CASE("cuda add, accumulate and fill match the CPU bitwise") {
  check_elementwise(
      "add_forward", [](View a, View b, View y) { cpu::add_forward<float>(a, b, y); },
      [](View a, View b, View y) { cuda::add_forward(a, b, y, nullptr); }, 0.0);
  // accumulate adds into y, the garbage buffer, from a.
  check_elementwise(
      "accumulate", [](View a, View, View y) { cpu::accumulate<float>(y, a); },
      [](View a, View, View y) { cuda::accumulate(y, a, nullptr); }, 0.0);
  check_elementwise(
      "fill", [](View, View, View y) { cpu::fill<float>(y, -2.5f); },
      [](View, View, View y) { cuda::fill(y, -2.5f, nullptr); }, 0.0);
}

TEST_CASE("cuda scale matches the CPU within the rounding an FMA skips") {
  const float factor = 1.7f, shift = -0.3f;
  // A GPU may fuse factor * x + shift into one FMA, skipping the product's rounding (at most
  // u |factor x|) and rounding the sum differently (at most u |y| each way); |x| < 1 bounds
  // each by u (|factor| + |shift|).
  const double atol = 3 * kUnitRoundoff * (std::abs(factor) + std::abs(shift));
  check_elementwise(
      "scale_forward",
      [&](View x, View, View y) { cpu::scale_forward<float>(x, factor, shift, y); },
      [&](View x, View, View y) { cuda::scale_forward(x, factor, shift, y, nullptr); }, atol);
}

TEST_CASE("cuda lerp matches the CPU within the rounding an FMA skips") {
  const float weight = 0.3f;
  // y (the garbage buffer, |y| < 9) moves toward a (|a| < 1): a GPU may fuse y + weight * d
  // (|d| < 10) into one FMA, skipping the product's rounding (u |weight d|) and rounding the sum
  // differently (u |result| each way, |result| < 9).
  const double atol = 3 * kUnitRoundoff * (10 * weight + 9);
  check_elementwise(
      "lerp", [&](View a, View, View y) { cpu::lerp<float>(y, a, weight); },
      [&](View a, View, View y) { cuda::lerp(y, a, weight, nullptr); }, atol);
}

TEST_CASE("cuda clamp forward and backward match the CPU bitwise, at the bounds too") {
  const float lo = -0.5f, hi = 0.25f;
  // Every 7th value sits exactly on a bound, where the gradient must pass; plus the specials.
  const auto prepare = [&](HostTensor& b) {
    for (size_t k = 0; k < b.values.size(); k += 7) b.values[k] = k % 2 ? lo : hi;
    put_specials(b);
  };
  check_elementwise(
      "clamp_forward", [&](View x, View, View y) { cpu::clamp_forward<float>(x, lo, hi, y); },
      [&](View x, View, View y) { cuda::clamp_forward(x, lo, hi, y, nullptr); }, 0.0, prepare);
  check_elementwise(
      "clamp_backward",
      [&](View x, View g, View gx) { cpu::clamp_backward<float>(x, lo, hi, g, gx); },
      [&](View x, View g, View gx) { cuda::clamp_backward(x, lo, hi, g, gx, nullptr); }, 0.0,
      prepare);
}

float cuda_sum(const HostTensor& x) {
  DeviceBuffer<float> x_gpu(x.values), out(1);
  cuda::sum(x.view(x_gpu.data()), out.data(), nullptr);
  return out.download()[0];
}

TEST_CASE("cuda sum is exact where float sums are, and within its rounding bound elsewhere") {
  uint64_t seed = 500;
  for (const Shape& s : kShapes)
    for (bool slice : {false, true}) {
      INFO(label("sum", s, slice));
      // Multiples of 1/64 in [-1, 1]: every partial sum of fewer than 2^18 of them is a float,
      // so any order gives the exact sum. A dropped or doubled element cannot hide here.
      HostTensor exact = random_host(s, slice, ++seed);
      for (float& v : exact.values) v = std::round(v * 64.0f) / 64.0f;
      std::vector<float> host = exact.values;
      CHECK(cuda_sum(exact) == static_cast<float>(cpu::sum<float>(exact.view(host.data()))));

      // Random floats: a sum whose longest chain of additions is k terms errs by at most
      // k u sum|x|. Here k <= (values per thread, at most size / 256) + 10 (5 warp shuffles,
      // 5 over the block's warps) + (blocks adding atomically, at most n * size / 1024 + n).
      const HostTensor x = random_host(s, slice, ++seed);
      host = x.values;
      const View v = x.view(host.data());
      const double ref = cpu::sum<float>(v);
      double abs_sum = 0.0;
      for (int64_t i = 0; i < v.n; ++i)
        for (int64_t k = 0; k < v.sample_size(); ++k) abs_sum += std::abs(v.sample(i)[k]);
      const double size = double(v.sample_size());
      const double chain = std::ceil(size / 256) + 10 + double(v.n) * (std::ceil(size / 1024) + 1);
      CHECK(std::abs(cuda_sum(x) - ref) <= chain * kUnitRoundoff * abs_sum);
    }
  // An empty tensor sums to 0.
  DeviceBuffer<float> out(1);
  cuda::sum(cpu::contiguous_view<const float>(nullptr, 0, 3, 4, 4), out.data(), nullptr);
  CHECK(out.download()[0] == 0.0f);
}

// Pooling inputs: few distinct values (ties everywhere), some NaN and -inf.
HostTensor pool_input(Shape s, bool slice, uint64_t seed) {
  HostTensor b = random_host(s, slice, seed, -2.0, 2.0);
  for (size_t k = 0; k < b.values.size(); ++k) {
    b.values[k] = std::round(b.values[k]);
    if (k % 13 == 5) b.values[k] = kNaN;
    if (k % 17 == 3) b.values[k] = -kInf;
  }
  return b;
}

const std::vector<Shape> kPoolShapes = {{1, 1, 1, 1}, {2, 3, 2, 2},  {1, 2, 7, 5},
                                        {3, 2, 8, 9}, {2, 4, 17, 1}, {1, 3, 33, 64}};

TEST_CASE("cuda max_pool2d 2x2 forward and backward match the CPU bitwise (ties, NaN, -inf)") {
  uint64_t seed = 900;
  for (const Shape& s : kPoolShapes)
    for (bool slice : {false, true}) {
      const Shape pooled{s.n, s.c, s.h / 2, s.w / 2};
      const HostTensor x = pool_input(s, slice, ++seed);
      const HostTensor y = random_host(pooled, slice, ++seed, 5.0, 9.0);
      const HostTensor gy = random_host(pooled, slice, ++seed);
      const HostTensor gx = random_host(s, slice, ++seed, 5.0, 9.0);
      std::vector<float> x_cpu = x.values, y_cpu = y.values, gy_cpu = gy.values, gx_cpu = gx.values;
      cpu::max_pool2d_2x2_forward<float>(x.view(x_cpu.data()), y.view(y_cpu.data()));
      cpu::max_pool2d_2x2_backward<float>(x.view(x_cpu.data()), gy.view(gy_cpu.data()),
                                          gx.view(gx_cpu.data()));
      DeviceBuffer<float> x_gpu(x.values), y_gpu(y.values), gy_gpu(gy.values), gx_gpu(gx.values);
      cuda::max_pool2d_2x2_forward(x.view(x_gpu.data()), y.view(y_gpu.data()), nullptr);
      cuda::max_pool2d_2x2_backward(x.view(x_gpu.data()), gy.view(gy_gpu.data()),
                                    gx.view(gx_gpu.data()), nullptr);
      CHECK(expect_identical(y_gpu.download(), y_cpu, label("max_pool2d_2x2_forward", s, slice)));
      CHECK(
          expect_identical(gx_gpu.download(), gx_cpu, label("max_pool2d_2x2_backward", s, slice)));
    }
}

const std::vector<Shape> kUpsampleShapes = {{1, 1, 1, 1}, {2, 3, 1, 4},  {1, 2, 5, 7},
                                            {3, 2, 2, 1}, {2, 4, 9, 16}, {1, 3, 33, 40}};

TEST_CASE("cuda bilinear x2 upsample forward and backward match the CPU") {
  uint64_t seed = 1300;
  for (const Shape& s : kUpsampleShapes)
    for (bool slice : {false, true}) {
      const Shape up{s.n, s.c, 2 * s.h, 2 * s.w};
      const HostTensor x = random_host(s, slice, ++seed);
      const HostTensor y = random_host(up, slice, ++seed, 5.0, 9.0);
      const HostTensor gy = random_host(up, slice, ++seed);
      const HostTensor gx = random_host(s, slice, ++seed, 5.0, 9.0);
      std::vector<float> x_cpu = x.values, y_cpu = y.values, gy_cpu = gy.values, gx_cpu = gx.values;
      cpu::upsample_bilinear2x_forward<float>(x.view(x_cpu.data()), y.view(y_cpu.data()));
      cpu::upsample_bilinear2x_backward<float>(gy.view(gy_cpu.data()), gx.view(gx_cpu.data()));
      DeviceBuffer<float> x_gpu(x.values), y_gpu(y.values), gy_gpu(gy.values), gx_gpu(gx.values);
      cuda::upsample_bilinear2x_forward(x.view(x_gpu.data()), y.view(y_gpu.data()), nullptr);
      cuda::upsample_bilinear2x_backward(gy.view(gy_gpu.data()), gx.view(gx_gpu.data()), nullptr);
      // Forward: the same expression in the same order, so the simulator matches bitwise; on the
      // GPU, FMA contraction skips some of its 6 roundings, each at most u max|x|.
      CHECK(expect_close(y_gpu.download(), y_cpu, 2 * 6 * kUnitRoundoff, 0.0,
                         label("upsample_bilinear2x_forward", s, slice)));
      // Backward: the same products, summed in another order (a gather, not the CPU's scatter).
      // An input's weights sum to 2 along each axis, so its at most 36 terms have sum|t| <=
      // 4 max|dy| = 4; each order is within 35 u sum|t| of the exact sum.
      CHECK(expect_close(gx_gpu.download(), gx_cpu, 2 * 35 * kUnitRoundoff * 4, 0.0,
                         label("upsample_bilinear2x_backward", s, slice)));
    }
}

TEST_CASE("cuda upsample backward carries a NaN or inf gradient as the CPU does") {
  std::vector<float> gy(48, 0.5f);
  gy[0] = kNaN;  // output 0 gives input 1 a zero weight: 0 * NaN is NaN there too
  gy[13] = kInf;
  std::vector<float> gx_cpu(12, 7.0f);
  cpu::upsample_bilinear2x_backward<float>(cpu::contiguous_view<const float>(gy.data(), 1, 1, 6, 8),
                                           cpu::contiguous_view(gx_cpu.data(), 1, 1, 3, 4));
  DeviceBuffer<float> gy_gpu(gy), gx_gpu(12);
  cuda::upsample_bilinear2x_backward(cpu::contiguous_view<const float>(gy_gpu.data(), 1, 1, 6, 8),
                                     cpu::contiguous_view(gx_gpu.data(), 1, 1, 3, 4), nullptr);
  const auto got = gx_gpu.download();
  for (size_t i = 0; i < 12; ++i) {
    INFO("input " << i << ": " << got[i] << " vs " << gx_cpu[i]);
    CHECK(std::isnan(got[i]) == std::isnan(gx_cpu[i]));
    CHECK(std::isinf(got[i]) == std::isinf(gx_cpu[i]));
  }
}

}  // namespace
}  // namespace deblur
