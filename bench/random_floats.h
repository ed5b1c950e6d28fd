// The benchmark suites' inputs: uniform random floats from a fixed seed (values do not change
// the kernels' speed, but a fixed seed keeps runs comparable).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace deblur::bench {

inline std::vector<float> random_floats(int64_t count, uint32_t seed, float lo = -1, float hi = 1) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(count));
  for (float& x : v) x = dist(rng);
  return v;
}

}  // namespace deblur::bench
