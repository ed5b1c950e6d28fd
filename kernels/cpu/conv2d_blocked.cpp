// Run-time choice among the instruction sets kernels/cpu/isa/conv2d_blocked.cpp was built for.
#include "kernels/cpu/conv2d_blocked.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace deblur::cpu {

#if DEBLUR_CPU_ISA_AVX512
namespace avx512 {
extern const Conv2dIsa conv2d_isa;
}
#endif
#if DEBLUR_CPU_ISA_AVX2
namespace avx2 {
extern const Conv2dIsa conv2d_isa;
}
#endif
namespace generic {
extern const Conv2dIsa conv2d_isa;
}

std::vector<const Conv2dIsa*> supported_conv2d_isas() {
  std::vector<const Conv2dIsa*> isas;
#if DEBLUR_CPU_ISA_AVX512
  if (__builtin_cpu_supports("avx512f")) isas.push_back(&avx512::conv2d_isa);
#endif
#if DEBLUR_CPU_ISA_AVX2
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    isas.push_back(&avx2::conv2d_isa);
#endif
  isas.push_back(&generic::conv2d_isa);
  return isas;
}

namespace {
const Conv2dIsa* find_isa(const std::string& wanted, const char* what) {
  std::string names;
  for (const Conv2dIsa* isa : supported_conv2d_isas()) {
    if (wanted == isa->name) return isa;
    names += std::string(names.empty() ? "" : ", ") + isa->name;
  }
  throw std::runtime_error(std::string(what) + wanted +
                           ": not an instruction set this build and CPU support (" + names + ")");
}

const Conv2dIsa* initial_isa() {
  const char* wanted = std::getenv("DEBLUR_CPU_ISA");
  if (!wanted || !*wanted) return supported_conv2d_isas().front();
  return find_isa(wanted, "DEBLUR_CPU_ISA=");
}

std::atomic<const Conv2dIsa*>& active() {
  static std::atomic<const Conv2dIsa*> isa{initial_isa()};
  return isa;
}
}  // namespace

const Conv2dIsa& active_conv2d_isa() {
  return *active().load();
}

void use_conv2d_isa(const std::string& name) {
  active().store(find_isa(name, "conv2d instruction set "));
}

}  // namespace deblur::cpu
