// The vector type and helpers of the per-instruction-set kernels in this folder: DEBLUR_VEC_FLOATS
// floats in one register (set by CMake with DEBLUR_ISA; see kernels/cpu/conv2d_blocked.h).
#pragma once

#include <cstdint>
#include <cstring>

#if !defined(DEBLUR_ISA) || !defined(DEBLUR_VEC_FLOATS)
#error "built by CMake once per instruction set, with DEBLUR_ISA and DEBLUR_VEC_FLOATS set"
#endif

namespace deblur::cpu::DEBLUR_ISA {

constexpr int kVecFloats = DEBLUR_VEC_FLOATS;
typedef float Vec __attribute__((vector_size(kVecFloats * sizeof(float))));

inline Vec load(const float* p) {
  Vec v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline void store(float* p, Vec v) {
  std::memcpy(p, &v, sizeof v);
}

// v, pinned to a register: the compiler may otherwise re-load a value it was given once for each
// of its uses (a memory operand per FMA), which turns a register-bound loop into a load-bound one.
inline Vec in_register(Vec v) {
#if defined(__x86_64__) || defined(__SSE2__)
  asm("" : "+v"(v));
#elif defined(__aarch64__)
  asm("" : "+w"(v));
#endif
  return v;
}

inline int64_t round_up(int64_t v, int64_t m) {
  return (v + m - 1) / m * m;
}

inline int64_t ceil_div(int64_t v, int64_t m) {
  return (v + m - 1) / m;
}

}  // namespace deblur::cpu::DEBLUR_ISA
