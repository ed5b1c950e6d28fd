// Helpers shared by the device-agnostic kernel tests (tests/sim/test_sim_*.cpp built into both
// deblur_sim_tests and deblur_gpu_tests): float's unit roundoff, a host tensor seen through a
// (possibly channel-sliced) view, random fills, and the bitwise and NaN-aware comparisons
// next to testing::expect_close; and an engine op run through autograd on a device. Host-side
// only: nothing here depends on the simulator.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "kernels/cpu/nchw.h"

namespace deblur::testing {

constexpr double kUnitRoundoff = 0x1p-24;  // float's u: a rounding's relative error

// Host values holding a view: channels [first, first + shape.c) of a tensor with `extra` more
// channels than the view (first == extra == 0: the whole tensor). A slice's batch_stride is then
// larger than C*H*W, and a kernel must leave the channels outside it as they were.
struct HostTensor {
  Shape shape;
  int64_t first = 0;
  int64_t extra = 0;
  std::vector<float> values;

  int64_t total_channels() const { return shape.c + extra; }
  cpu::NchwView<float> view(float* base) const {
    const int64_t plane = shape.h * shape.w;
    return {base + first * plane, shape.n, shape.c, shape.h, shape.w, total_channels() * plane};
  }
};

// `count` uniform floats in [lo, hi) from a fixed seed.
std::vector<float> random_floats(int64_t count, uint64_t seed, double lo = -1.0, double hi = 1.0);

// Uniform values in [lo, hi) from a fixed seed over the whole tensor, slice or not.
HostTensor random_host_channels(Shape shape, int64_t first, int64_t extra, uint64_t seed,
                                double lo = -1.0, double hi = 1.0);
// The whole tensor, or (slice) channels [2, 2 + c) of one with 3 more channels.
HostTensor random_host(Shape shape, bool slice, uint64_t seed, double lo = -1.0, double hi = 1.0);

// "op [n, c, h, w]", marked when on a channel slice.
std::string label(const char* op, Shape s, bool slice);

// Bitwise equality (NaN payloads included).
bool identical(const std::vector<float>& actual, const std::vector<float>& ref);
// Bitwise equality, except that any NaN matches any NaN (the GPU returns its canonical NaN
// where the CPU keeps the payload); prints (to stderr) the first differences and how many.
bool expect_identical(const std::vector<float>& actual, const std::vector<float>& ref,
                      const std::string& what);

// NaN where ref is NaN (then set to 0 on both sides) and within rtol elsewhere.
bool close_or_both_nan(std::vector<float> actual, std::vector<float> ref, double rtol,
                       const std::string& what);

// An engine op through autograd on one device: its output and every input's gradient.
using EngineOpFn = std::function<Tensor(const std::vector<Tensor>&)>;
struct EngineRun {
  std::vector<float> output;
  std::vector<std::vector<float>> grads;  // per input
};
// op(inputs) on `device`, inputs random_tensor(shapes[i], seed + i) requiring grad, then
// backward seeded with random_tensor(output shape, seed + 100); results copied to the host.
// Fails the test (REQUIRE) when the output or a gradient is missing or on another device.
EngineRun run_engine_op(Device device, const std::vector<Shape>& shapes, const EngineOpFn& op,
                        uint64_t seed);

}  // namespace deblur::testing
