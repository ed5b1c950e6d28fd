// The AdamW and gradient-clipping CUDA kernels (kernels/cuda/adamw.cu), run in the simulator,
// against the CPU kernels in float (kernels/cpu/adamw.h) over several steps on a slab of odd
// length, with the clip scale, lr and step living in device memory as in training. Each
// tolerance says where it comes from and holds for the GPU too (which contracts a * b + c into
// one FMA).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/cpu/adamw.h"
#include "kernels/cuda/adamw.cuh"
#include "tests/sim/device_testing.h"
#include "tests/testing.h"

namespace deblur {
namespace {

using cuda::DeviceBuffer;
using testing::expect_close;
using testing::kUnitRoundoff;
using testing::random_floats;

float cpu_clip_scale(const std::vector<float>& grads, double max_norm) {
  return static_cast<float>(common::clip_grad_scale(
      cpu::grad_norm_squared(grads.data(), static_cast<int64_t>(grads.size())), max_norm));
}

TEST_CASE("cuda clip scale and AdamW match the CPU in float over several steps", "[adamw]") {
  // Odd, several blocks of the norm and the update, a ragged last block.
  const int64_t n = 5003;
  const auto size = static_cast<size_t>(n);
  std::vector<float> params = random_floats(n, 1);
  std::vector<float> m(size, 0.0f), v(size, 0.0f);
  DeviceBuffer<float> params_gpu(params), m_gpu(m), v_gpu(v), grads_gpu(size);
  DeviceBuffer<float> lr_gpu(1), scale_gpu(1), norm_gpu(1);
  DeviceBuffer<int64_t> step_gpu(1);
  DeviceBuffer<unsigned char> workspace(cuda::clip_grad_norm_workspace_bytes(n));
  cpu::AdamWHyper h;
  // Global norms ~ sqrt(n / 3) * amplitude: clipped, not clipped, clipped, not clipped.
  const double amplitudes[] = {0.5, 0.01, 0.2, 0.005};
  int clipped = 0;
  for (int64_t step = 1; step <= 4; ++step) {
    INFO("step " << step);
    std::vector<float> grads =
        random_floats(n, 10 + step, -amplitudes[step - 1], amplitudes[step - 1]);
    grads_gpu.upload(grads);
    const float lr = static_cast<float>(cpu::cosine_annealing_lr(2e-4, 1e-6, step - 1, 4));
    lr_gpu.upload({lr});
    step_gpu.upload({step});

    cuda::clip_grad_norm_scale(grads_gpu.data(), n, h.max_norm, scale_gpu.data(), norm_gpu.data(),
                               workspace.data(), nullptr);
    cuda::adamw_step(params_gpu.data(), grads_gpu.data(), m_gpu.data(), v_gpu.data(), n, h,
                     lr_gpu.data(), step_gpu.data(), scale_gpu.data(), nullptr);

    // Both squared norms are sums of exact double squares, in different orders: ~1e-13 apart,
    // far inside float's rounding of the scale, so the float scales are equal for this data.
    const float scale = cpu_clip_scale(grads, h.max_norm);
    CHECK(scale_gpu.download()[0] == scale);
    clipped += scale < 1.0f;
    const double norm = std::sqrt(cpu::grad_norm_squared(grads.data(), n));
    CHECK(norm_gpu.download()[0] == static_cast<float>(norm));

    h.lr = lr;  // the float the device reads, so both derive the same step constants
    cpu::adamw_step(params.data(), grads.data(), m.data(), v.data(), n, h, step, scale);

    // The same float expressions; an FMA on the GPU skips a product's rounding, each at most
    // u times its operands. Per step: m moves by at most 2 u max|g| (and carries the previous
    // step's difference, times beta1 < 1); v by 3 u of itself; p by 2 u |p| (|p| < 1.1) plus a
    // few u of the update, which is at most lr0 / (1 - beta1^t) * |m_hat / sqrt(v_hat)| <~
    // 10 * lr0 * 3 in these early steps. Summed over the steps so far.
    const double max_g = amplitudes[0];
    const auto steps = static_cast<double>(step);
    CHECK(expect_close(m_gpu.download(), m, steps * 2 * kUnitRoundoff * max_g, 0.0, "adamw m"));
    CHECK(expect_close(v_gpu.download(), v, 0.0, steps * 3 * kUnitRoundoff, "adamw v"));
    CHECK(expect_close(params_gpu.download(), params,
                       steps * (2 * kUnitRoundoff * 1.1 + 8 * kUnitRoundoff * 10 * 2e-4 * 3), 0.0,
                       "adamw params"));
  }
  CHECK(clipped == 2);
}

TEST_CASE("cuda clip scale: 1 for zero and empty gradients, reproducible bits", "[adamw]") {
  DeviceBuffer<float> scale(1), norm(1);
  DeviceBuffer<unsigned char> workspace(cuda::clip_grad_norm_workspace_bytes(0));
  cuda::clip_grad_norm_scale(nullptr, 0, 1.0, scale.data(), nullptr, workspace.data(), nullptr);
  CHECK(scale.download()[0] == 1.0f);

  const int64_t n = 4099;
  const std::vector<float> grads = random_floats(n, 3);
  DeviceBuffer<float> grads_gpu(grads);
  DeviceBuffer<unsigned char> ws(cuda::clip_grad_norm_workspace_bytes(n));
  cuda::clip_grad_norm_scale(grads_gpu.data(), n, 1.0, scale.data(), norm.data(), ws.data(),
                             nullptr);
  const float first = scale.download()[0], first_norm = norm.download()[0];
  cuda::clip_grad_norm_scale(grads_gpu.data(), n, 1.0, scale.data(), norm.data(), ws.data(),
                             nullptr);
  CHECK(scale.download()[0] == first);
  CHECK(norm.download()[0] == first_norm);
  CHECK(first == cpu_clip_scale(grads, 1.0));
}

}  // namespace
}  // namespace deblur
