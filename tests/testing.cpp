// Shared test helpers (see testing.h).
#include "tests/testing.h"

#include <algorithm>
#include <cstdio>

namespace deblur::testing {

namespace {
template <class A, class B>
bool compare(const std::vector<A>& actual, const std::vector<B>& ref, double atol, double rtol,
             const std::string& what) {
  if (actual.size() != ref.size()) {
    std::fprintf(stderr, "%s: size %zu vs reference %zu\n", what.c_str(), actual.size(),
                 ref.size());
    return false;
  }
  size_t bad = 0, worst = 0;
  double worst_ratio = 0.0;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double a = actual[i], r = ref[i];
    const double tol = atol + rtol * std::abs(r);
    const double err = std::abs(a - r);
    // err / tol, with an exact match at zero tolerance counting as 0 (and NaN as infinite).
    const double ratio = !(err == err) ? INFINITY : err == 0 ? 0.0 : tol > 0 ? err / tol : INFINITY;
    if (!(ratio <= 1.0)) {
      if (bad < 5)
        std::fprintf(stderr, "%s: [%zu] got %.9g, want %.9g (error %.3g, tolerance %.3g)\n",
                     what.c_str(), i, a, r, err, tol);
      ++bad;
    }
    if (!(ratio <= worst_ratio)) {
      worst_ratio = ratio;
      worst = i;
    }
  }
  if (bad > 0)
    std::fprintf(stderr, "%s: %zu of %zu outside tolerance; worst [%zu] at %.3gx tolerance\n",
                 what.c_str(), bad, actual.size(), worst, worst_ratio);
  return bad == 0;
}
}  // namespace

bool expect_close(const std::vector<double>& actual, const std::vector<double>& ref, double atol,
                  double rtol, const std::string& what) {
  return compare(actual, ref, atol, rtol, what);
}

bool expect_close(const std::vector<float>& actual, const std::vector<float>& ref, double atol,
                  double rtol, const std::string& what) {
  return compare(actual, ref, atol, rtol, what);
}

bool expect_close(const Tensor& actual, const Tensor& ref, double atol, double rtol,
                  const std::string& what) {
  if (!(actual.shape() == ref.shape())) {
    std::fprintf(stderr, "%s: shape %s vs reference %s\n", what.c_str(),
                 actual.shape().str().c_str(), ref.shape().str().c_str());
    return false;
  }
  return compare(actual.to_vector(), ref.to_vector(), atol, rtol, what);
}

double relative_l2(const std::vector<float>& actual, const std::vector<float>& ref) {
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < ref.size() && i < actual.size(); ++i) {
    diff += (double(actual[i]) - ref[i]) * (double(actual[i]) - ref[i]);
    norm += double(ref[i]) * ref[i];
  }
  if (actual.size() != ref.size()) return INFINITY;
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

std::vector<double> random_values(size_t count, uint64_t seed, double lo, double hi) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> v(count);
  for (double& x : v) x = dist(rng);
  return v;
}

std::vector<float> to_float(const std::vector<double>& values) {
  return std::vector<float>(values.begin(), values.end());
}

std::vector<double> to_double(const std::vector<float>& values) {
  return std::vector<double>(values.begin(), values.end());
}

Tensor random_tensor(Shape shape, uint64_t seed, double lo, double hi) {
  return Tensor::from_vector(shape, to_float(random_values(shape.numel(), seed, lo, hi)));
}

double weighted_sum(const std::vector<double>& values, const std::vector<double>& weights) {
  double s = 0.0;
  for (size_t i = 0; i < values.size(); ++i) s += values[i] * weights[i];
  return s;
}

bool gradcheck(const ScalarFn& f, const GradFn& grad, std::vector<std::vector<double>> inputs,
               const std::string& what, const GradcheckOptions& options) {
  std::vector<size_t> check = options.inputs;
  if (check.empty())
    for (size_t k = 0; k < inputs.size(); ++k) check.push_back(k);
  const std::vector<std::vector<double>> analytic = grad(inputs);
  if (analytic.size() != inputs.size()) {
    std::fprintf(stderr, "%s: %zu gradients for %zu inputs\n", what.c_str(), analytic.size(),
                 inputs.size());
    return false;
  }
  bool ok = true;
  for (size_t k : check) {
    const size_t size = inputs[k].size();
    if (analytic[k].size() != size) {
      std::fprintf(stderr, "%s: gradient %zu has %zu values for an input of %zu\n", what.c_str(),
                   k, analytic[k].size(), size);
      ok = false;
      continue;
    }
    const size_t count = options.max_elements > 0 ? std::min(size, options.max_elements) : size;
    std::vector<double> numeric(count), expected(count);
    for (size_t j = 0; j < count; ++j) {
      const size_t i = j * size / count;  // evenly spaced; every element when count == size
      const double saved = inputs[k][i];
      inputs[k][i] = saved + options.step;
      const double up = f(inputs);
      inputs[k][i] = saved - options.step;
      const double down = f(inputs);
      inputs[k][i] = saved;
      numeric[j] = (up - down) / (2 * options.step);
      expected[j] = analytic[k][i];
    }
    ok = compare(expected, numeric, options.atol, options.rtol,
                 what + " d/dinput" + std::to_string(k)) &&
         ok;
  }
  return ok;
}

}  // namespace deblur::testing
