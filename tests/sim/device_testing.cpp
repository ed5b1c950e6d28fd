// Helpers shared by the device-agnostic kernel tests (see device_testing.h).
#include "tests/sim/device_testing.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "tests/testing.h"

namespace deblur::testing {

std::vector<float> random_floats(int64_t count, uint64_t seed, double lo, double hi) {
  return to_float(random_values(static_cast<size_t>(count), seed, lo, hi));
}

HostTensor random_host_channels(Shape shape, int64_t first, int64_t extra, uint64_t seed, double lo,
                                double hi) {
  HostTensor t{shape, first, extra, {}};
  const auto count = static_cast<size_t>(shape.n * t.total_channels() * shape.h * shape.w);
  t.values = to_float(random_values(count, seed, lo, hi));
  return t;
}

HostTensor random_host(Shape shape, bool slice, uint64_t seed, double lo, double hi) {
  return random_host_channels(shape, slice ? 2 : 0, slice ? 3 : 0, seed, lo, hi);
}

std::string label(const char* op, Shape s, bool slice) {
  return std::string(op) + " " + s.str() + (slice ? " (channel slice)" : "");
}

bool identical(const std::vector<float>& actual, const std::vector<float>& ref) {
  return actual.size() == ref.size() &&
         std::memcmp(actual.data(), ref.data(), ref.size() * sizeof(float)) == 0;
}

bool expect_identical(const std::vector<float>& actual, const std::vector<float>& ref,
                      const std::string& what) {
  if (actual.size() != ref.size()) return false;
  size_t bad = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (std::memcmp(&actual[i], &ref[i], sizeof(float)) == 0) continue;
    // NaN's payload is not part of any op's meaning: a GPU's min/max instructions return
    // their canonical NaN where the CPU passes the input's bits through.
    if (std::isnan(actual[i]) && std::isnan(ref[i])) continue;
    if (bad++ < 5)
      std::fprintf(stderr, "%s: [%zu] got %.9g, want %.9g\n", what.c_str(), i, actual[i], ref[i]);
  }
  if (bad) std::fprintf(stderr, "%s: %zu of %zu differ\n", what.c_str(), bad, ref.size());
  return bad == 0;
}

bool close_or_both_nan(std::vector<float> actual, std::vector<float> ref, double rtol,
                       const std::string& what) {
  for (size_t i = 0; i < ref.size(); ++i)
    if (std::isnan(ref[i])) {
      if (!std::isnan(actual[i])) return false;
      actual[i] = ref[i] = 0.0f;
    }
  return expect_close(actual, ref, 0.0, rtol, what);
}

EngineRun run_engine_op(Device device, const std::vector<Shape>& shapes, const EngineOpFn& op,
                        uint64_t seed) {
  std::vector<Tensor> inputs;
  for (size_t i = 0; i < shapes.size(); ++i) {
    Tensor t = random_tensor(shapes[i], seed + i).to(device);
    t.set_requires_grad(true);
    inputs.push_back(t);
  }
  Tensor y = op(inputs);
  REQUIRE(y.device() == device);
  y.backward(random_tensor(y.shape(), seed + 100).to(device));
  EngineRun run{y.to_vector(), {}};
  for (const Tensor& t : inputs) {
    REQUIRE(t.grad().defined());
    REQUIRE(t.grad().device() == device);
    run.grads.push_back(t.grad().to_vector());
  }
  return run;
}

}  // namespace deblur::testing
