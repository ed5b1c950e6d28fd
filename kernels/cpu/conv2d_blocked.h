// The fast float32 CPU convolution: register-blocked microkernels and a Winograd F(4x4, 3x3)
// forward, compiled once per instruction set (kernels/cpu/isa/, built by CMake with -mavx512f, with
// -mavx2 -mfma, and with the target's baseline flags) and chosen at run time, so one binary
// runs everywhere and uses the widest vectors the CPU has.
//
// Semantics are conv2d.h's (stride 1, zero padding k/2, OIHW weights, k = 1 or 3); the
// float conv2d_forward / conv2d_backward_input / conv2d_backward_params go through here, the
// double ones keep the direct loops that the gradchecks and these kernels' tests trust.
#pragma once

#include <string>
#include <vector>

#include "kernels/cpu/nchw.h"

namespace deblur::cpu {

struct Conv2dIsa {
  const char* name;  // "avx512", "avx2" or "generic"
  // y = conv(x, weight) + bias (bias may be null); y is assigned.
  void (*forward)(NchwView<const float> x, const float* weight, const float* bias, int kernel,
                  NchwView<float> y);
  // grad_weight += d(sum grad_y * y) / d(weight).
  void (*backward_weight)(NchwView<const float> x, NchwView<const float> grad_y, int kernel,
                          float* grad_weight);
  // The 3x3 forward through Winograd F(4x4, 3x3) (kernels/cpu/isa/conv2d_winograd.cpp). With
  // upsample, x is the low-resolution input and the conv reads its bilinear x2 upsample
  // (y is 2x x's height and width), made a band row at a time and never stored whole. With
  // cache_weights the transformed weights are kept, by the weights' address and contents, for
  // the next call (inference); without, they are made for this call alone (training, where the
  // weights change every step, and the input gradient's flipped copy).
  void (*forward_winograd)(NchwView<const float> x, const float* weight, const float* bias,
                           NchwView<float> y, bool upsample, bool cache_weights);
};

// The instruction sets this build has and this CPU runs, widest first.
std::vector<const Conv2dIsa*> supported_conv2d_isas();

// The one the float kernels use: the widest supported, unless the DEBLUR_CPU_ISA environment
// variable names another supported one (an unknown or unsupported name is an error).
const Conv2dIsa& active_conv2d_isa();
// Switches the float kernels to the named supported instruction set (throws otherwise): for
// benchmarks comparing them, and for tests that need the baseline's rounding (no FMA).
void use_conv2d_isa(const std::string& name);

}  // namespace deblur::cpu
