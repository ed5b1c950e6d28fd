// Shared test helpers: expect_close (the one comparison every test uses), deterministic random
// data, and the finite-difference gradient check in double precision.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "kernels/cpu/nchw.h"

namespace deblur::testing {

// True when |actual - ref| <= atol + rtol * |ref| everywhere. Otherwise prints (to stderr) the
// first mismatches and the worst error as a multiple of its tolerance, so a failing test says
// where and by how much.
bool expect_close(const std::vector<double>& actual, const std::vector<double>& ref, double atol,
                  double rtol, const std::string& what);
bool expect_close(const std::vector<float>& actual, const std::vector<float>& ref, double atol,
                  double rtol, const std::string& what);
bool expect_close(const Tensor& actual, const Tensor& ref, double atol, double rtol,
                  const std::string& what);

// ||actual - ref|| / ||ref||.
double relative_l2(const std::vector<float>& actual, const std::vector<float>& ref);

// Uniform values in [lo, hi) from a fixed seed.
std::vector<double> random_values(size_t count, uint64_t seed, double lo = -1.0, double hi = 1.0);
std::vector<float> to_float(const std::vector<double>& values);
std::vector<double> to_double(const std::vector<float>& values);
Tensor random_tensor(Shape shape, uint64_t seed, double lo = -1.0, double hi = 1.0);

// A contiguous NCHW view of a test's buffer, for calling kernels directly.
template <class T>
cpu::NchwView<T> view(std::vector<T>& values, Shape s) {
  return cpu::contiguous_view(values.data(), s.n, s.c, s.h, s.w);
}

// A function of several double arrays to a scalar, and its analytic gradient.
using ScalarFn = std::function<double(const std::vector<std::vector<double>>& inputs)>;
using GradFn =
    std::function<std::vector<std::vector<double>>(const std::vector<std::vector<double>>& inputs)>;

struct GradcheckOptions {
  // Central-difference step: 1e-6 in double leaves truncation error ~1e-12 and rounding error
  // ~1e-10 relative for smooth f of order one; atol/rtol leave room above that.
  double step = 1e-6;
  double atol = 1e-7;
  double rtol = 1e-5;
  std::vector<size_t> inputs;  // which inputs to check; all when empty
  size_t max_elements = 0;     // check at most this many evenly spaced elements per input (0: all)
};

// Compares grad(inputs) with central differences of f, element by element.
bool gradcheck(const ScalarFn& f, const GradFn& grad, std::vector<std::vector<double>> inputs,
               const std::string& what, const GradcheckOptions& options = {});

// sum(weights * values): the scalar a gradcheck differentiates, so every output element is
// weighted differently and a transposed or shifted gradient cannot pass.
double weighted_sum(const std::vector<double>& values, const std::vector<double>& weights);

}  // namespace deblur::testing
