// Deterministic values shared with data_tools/make_fixtures.py, so fixtures need not store
// weights or inputs: splitmix64 on (stream << 32) + index, 53 bits to a double in [0, 1).
// The Python side computes the same with numpy uint64; tests/test_fixture_rng.cpp checks values
// the script printed. Every expression here mirrors the script's operation order exactly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace deblur::testing {

// One step of SplitMix64 (Steele, Lea, Flood 2014) on the state z; unsigned arithmetic wraps
// mod 2^64 as the format requires.
inline uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Element `index` of stream `stream`: a double in [0, 1) with 53 random bits.
inline double fixture_uniform(uint64_t stream, uint64_t index) {
  return static_cast<double>(splitmix64((stream << 32) + index) >> 11) * 0x1.0p-53;
}

// float32(lo + (hi - lo) * u) for index 0..count-1.
inline std::vector<float> fixture_values(uint64_t stream, size_t count, double lo, double hi) {
  std::vector<float> values(count);
  for (size_t i = 0; i < count; ++i)
    values[i] = static_cast<float>(lo + (hi - lo) * fixture_uniform(stream, i));
  return values;
}

// float32(offset + scale * (2u - 1)): the scheme of unet.safetensors (conv weights and biases:
// offset 0, scale 1/sqrt(fan_in); GroupNorm weight: offset 1, scale 0.2; GroupNorm bias:
// offset 0, scale 0.2; inputs: offset 0, scale 1). Not the same rounding as fixture_values.
inline std::vector<float> fixture_symmetric(uint64_t stream, size_t count, double scale,
                                            double offset = 0.0) {
  std::vector<float> values(count);
  for (size_t i = 0; i < count; ++i) {
    const double u = fixture_uniform(stream, i);
    values[i] = static_cast<float>(offset + scale * (2.0 * u - 1.0));
  }
  return values;
}

}  // namespace deblur::testing
