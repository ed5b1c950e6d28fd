// The pixel-loss and concat CUDA kernels (kernels/cuda/losses.cu, concat.cu), run in the
// simulator, against their CPU twins (kernels/cpu/losses.h, concat.h) on odd shapes (batch > 1,
// unit and odd H and W, planes spanning many blocks), each on contiguous tensors and on channel
// slices of larger ones whose other channels must stay as they were. Outputs start as garbage on
// both sides, so an element a kernel forgets to assign shows. Each tolerance says where it comes
// from and holds for the GPU too (which contracts a * b + c into one FMA).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "kernels/cpu/concat.h"
#include "kernels/cpu/losses.h"
#include "kernels/cuda/concat.cuh"
#include "kernels/cuda/losses.cuh"
#include "tests/sim/device_testing.h"
#include "tests/testing.h"

namespace deblur {
namespace {

using cuda::DeviceBuffer;
using testing::close_or_both_nan;
using testing::expect_close;
using testing::HostTensor;
using testing::identical;
using testing::kUnitRoundoff;
using testing::label;
using View = cpu::NchwView<float>;
using ConstView = cpu::NchwView<const float>;

constexpr float kEps = 1e-3f;  // the seed's Charbonnier eps

// Values for a view of the whole tensor, or (extra > 0) of channels [1, 1 + c) of a tensor with
// `extra` more channels.
HostTensor random_tensor(Shape shape, int64_t extra, uint64_t seed, double lo = -1.0,
                         double hi = 1.0) {
  return testing::random_host_channels(shape, extra ? 1 : 0, extra, seed, lo, hi);
}

// Unit, odd, batch > 1, single rows and columns, and planes of many blocks (1024 values each).
const std::vector<Shape> kShapes = {{1, 1, 1, 1},  {2, 3, 5, 7},   {3, 2, 9, 1},    {1, 4, 33, 17},
                                    {2, 1, 1, 65}, {1, 3, 90, 77}, {2, 3, 129, 131}};

enum class Loss { charbonnier, l1 };

double cpu_sum(Loss loss, ConstView p, ConstView t) {
  return loss == Loss::charbonnier ? cpu::charbonnier_sum<float>(p, t, kEps)
                                   : cpu::l1_sum<float>(p, t);
}

float cuda_sum(Loss loss, ConstView p, ConstView t) {
  DeviceBuffer<unsigned char> workspace(cuda::loss_sum_workspace_bytes(p));
  DeviceBuffer<float> out(std::vector<float>{123.0f});
  if (loss == Loss::charbonnier)
    cuda::charbonnier_sum(p, t, kEps, out.data(), workspace.data(), nullptr);
  else
    cuda::l1_sum(p, t, out.data(), workspace.data(), nullptr);
  return out.download()[0];
}

void check_sums(Loss loss, const char* name) {
  uint64_t seed = loss == Loss::l1 ? 200 : 100;
  for (const Shape& s : kShapes)
    for (bool slice : {false, true}) {
      INFO(label(name, s, slice));
      const int64_t extra = slice ? 2 : 0;
      HostTensor p = random_tensor(s, extra, ++seed), t = random_tensor(s, extra, ++seed);
      const ConstView pv = p.view(p.values.data()), tv = t.view(t.values.data());
      const double ref = cpu_sum(loss, pv, tv);
      DeviceBuffer<float> p_gpu(p.values), t_gpu(t.values);
      const ConstView pg = p.view(p_gpu.data()), tg = t.view(t_gpu.data());
      const float got = cuda_sum(loss, pg, tg);
      // The terms are non-negative, so sum|term| = ref. Each GPU term is within 2 u of the CPU's
      // (an FMA in d^2 + eps^2 moves the square root's argument by at most 2 u, its result by
      // half that, plus its own rounding). A float sum whose longest chain of additions is k
      // terms errs by at most k u sum: k = the values per thread (256 threads, a block per 1024
      // values up to 1024 blocks per sample) + 8 tree levels. The double stage and the final
      // rounding to float add about 1 u.
      const double size = double(s.c * s.h * s.w);
      const double blocks = std::min(std::ceil(size / 1024.0), 1024.0);
      const double chain = std::ceil(size / (256.0 * blocks)) + 8;
      CHECK(std::abs(double(got) - ref) <= (chain + 3) * kUnitRoundoff * ref);
      // Deterministic: a second run gives the same bits.
      CHECK(cuda_sum(loss, pg, tg) == got);
    }
  // A sample of more than 1024 blocks' worth of values: the grid stops at 1024 blocks and the
  // threads take more values each.
  {
    const Shape big{1, 1, 1031, 1029};
    INFO(label(name, big, false));
    HostTensor p = random_tensor(big, 0, ++seed), t = random_tensor(big, 0, ++seed);
    const double ref = cpu_sum(loss, p.view(p.values.data()), t.view(t.values.data()));
    DeviceBuffer<float> p_gpu(p.values), t_gpu(t.values);
    const float got = cuda_sum(loss, p.view(p_gpu.data()), t.view(t_gpu.data()));
    const double chain = std::ceil(double(big.h * big.w) / (256.0 * 1024.0)) + 8;
    CHECK(std::abs(double(got) - ref) <= (chain + 3) * kUnitRoundoff * ref);
  }
  // An empty tensor sums to 0 (overwriting *out).
  CHECK(cuda_sum(loss, cpu::contiguous_view<const float>(nullptr, 0, 3, 4, 4),
                 cpu::contiguous_view<const float>(nullptr, 0, 3, 4, 4)) == 0.0f);
}

TEST_CASE("cuda charbonnier and l1 sums match the CPU within their rounding, reproducibly",
          "[losses]") {
  check_sums(Loss::charbonnier, "charbonnier_sum");
  check_sums(Loss::l1, "l1_sum");
}

TEST_CASE("cuda charbonnier and l1 sums are exact where float sums are", "[losses]") {
  // Multiples of 1/64 in [-1, 1] with target 0: every |d| and every partial sum of fewer than
  // 2^18 of them is a float, so any order gives the exact sum; a dropped or doubled element
  // cannot hide.
  const Shape s{2, 3, 129, 131};
  HostTensor p = random_tensor(s, 2, 7);
  for (float& v : p.values) v = std::round(v * 64.0f) / 64.0f;
  HostTensor t{s, 1, 2, std::vector<float>(p.values.size(), 0.0f)};
  const double ref = cpu::l1_sum<float>(p.view(p.values.data()), t.view(t.values.data()));
  DeviceBuffer<float> p_gpu(p.values), t_gpu(t.values);
  CHECK(cuda_sum(Loss::l1, p.view(p_gpu.data()), t.view(t_gpu.data())) == float(ref));
}

void check_backward(Loss loss, const char* name) {
  uint64_t seed = loss == Loss::l1 ? 400 : 300;
  const float scale = -0.37f;
  for (const Shape& s : kShapes)
    for (bool slice : {false, true})
      for (bool want_target : {true, false}) {
        const int64_t extra = slice ? 3 : 0;
        HostTensor p = random_tensor(s, extra, ++seed), t = random_tensor(s, extra, ++seed);
        // Ties (d == 0, where sign gives 0) and a NaN (0 for l1, NaN for charbonnier).
        for (size_t k = 0; k < p.values.size(); k += 5) t.values[k] = p.values[k];
        p.values[0] = std::numeric_limits<float>::quiet_NaN();
        const HostTensor gp = random_tensor(s, extra, ++seed, 5.0, 9.0);
        const HostTensor gt = random_tensor(s, extra, ++seed, 5.0, 9.0);

        std::vector<float> gp_cpu = gp.values, gt_cpu = gt.values;
        const View gt_cpu_view = want_target ? gt.view(gt_cpu.data()) : View{};
        const ConstView pv = p.view(p.values.data()), tv = t.view(t.values.data());
        if (loss == Loss::charbonnier)
          cpu::charbonnier_backward<float>(pv, tv, kEps, scale, gp.view(gp_cpu.data()),
                                           gt_cpu_view);
        else
          cpu::l1_backward<float>(pv, tv, scale, gp.view(gp_cpu.data()), gt_cpu_view);

        DeviceBuffer<float> p_gpu(p.values), t_gpu(t.values), gp_gpu(gp.values), gt_gpu(gt.values);
        const View gt_gpu_view = want_target ? gt.view(gt_gpu.data()) : View{};
        const ConstView pg = p.view(p_gpu.data()), tg = t.view(t_gpu.data());
        if (loss == Loss::charbonnier)
          cuda::charbonnier_backward(pg, tg, kEps, scale, gp.view(gp_gpu.data()), gt_gpu_view,
                                     nullptr);
        else
          cuda::l1_backward(pg, tg, scale, gp.view(gp_gpu.data()), gt_gpu_view, nullptr);

        const std::string what = label(name, s, slice) + (want_target ? "" : " (no grad_target)");
        INFO(what);
        if (loss == Loss::l1) {
          // scale * (+-1 or 0): one exact product on both sides.
          CHECK(identical(gp_gpu.download(), gp_cpu));
          CHECK(identical(gt_gpu.download(), gt_cpu));
        } else {
          // An FMA in d^2 + eps^2 moves the square root's argument by at most 2 u and so the
          // slope by at most 1 u, on top of the same 3 roundings: 4 u relative.
          CHECK(close_or_both_nan(gp_gpu.download(), gp_cpu, 4 * kUnitRoundoff, what));
          CHECK(close_or_both_nan(gt_gpu.download(), gt_cpu, 4 * kUnitRoundoff, what));
        }
      }
}

TEST_CASE("cuda charbonnier and l1 backward match the CPU (ties, NaN, optional grad_target)",
          "[losses]") {
  check_backward(Loss::charbonnier, "charbonnier_backward");
  check_backward(Loss::l1, "l1_backward");
}

TEST_CASE("cuda concat_forward matches the CPU bitwise, into and from channel slices", "[concat]") {
  uint64_t seed = 600;
  for (const Shape& s : kShapes)
    for (int64_t cb : {1, 2, 5})
      for (bool slice : {false, true}) {
        const Shape sa = s, sb{s.n, cb, s.h, s.w}, sy{s.n, s.c + cb, s.h, s.w};
        // Slices: a and b inside larger tensors, y a channel range of a tensor with 4 more
        // (the way the engine writes a skip connection's concat in place).
        const HostTensor a = random_tensor(sa, slice ? 2 : 0, ++seed);
        const HostTensor b = random_tensor(sb, slice ? 1 : 0, ++seed);
        const HostTensor y = random_tensor(sy, slice ? 4 : 0, ++seed, 5.0, 9.0);
        std::vector<float> a_cpu = a.values, b_cpu = b.values, y_cpu = y.values;
        cpu::concat_forward<float>(a.view(a_cpu.data()), b.view(b_cpu.data()),
                                   y.view(y_cpu.data()));
        DeviceBuffer<float> a_gpu(a.values), b_gpu(b.values), y_gpu(y.values);
        cuda::concat_forward(a.view(a_gpu.data()), b.view(b_gpu.data()), y.view(y_gpu.data()),
                             nullptr);
        INFO(label("concat_forward", sy, slice));
        CHECK(identical(y_gpu.download(), y_cpu));
      }
}

TEST_CASE("cuda concat_forward rejects mismatched shapes", "[concat]") {
  DeviceBuffer<float> a(2 * 3 * 4), b(2 * 2 * 4), y(2 * 6 * 4);
  const ConstView av = cpu::contiguous_view<const float>(a.data(), 2, 3, 2, 2);
  const ConstView bv = cpu::contiguous_view<const float>(b.data(), 2, 2, 2, 2);
  CHECK_THROWS_AS(cuda::concat_forward(av, bv, cpu::contiguous_view(y.data(), 2, 6, 2, 2), nullptr),
                  Error);
}

}  // namespace
}  // namespace deblur
