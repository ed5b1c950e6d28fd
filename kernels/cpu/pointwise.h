// Pointwise CPU kernels, forward and backward, float and double.
//   relu:  y = max(x, 0), NaN kept; dx = dy where y > 0 (PyTorch: threshold_backward, 0 at 0)
//   add:   y = a + b
//   scale: y = factor * x + shift
//   clamp: y = min(max(x, lo), hi); dx = dy where lo <= x <= hi (PyTorch's clamp_backward)
//   sum:   the sum of all elements, accumulated in double (mean = sum / numel in the op)
//   fill:  y = value (the backward of a mean broadcasts its gradient this way)
//   accumulate: dst += src (how gradients are summed)
//   lerp:  y += weight * (x - y) (torch's y.lerp_(x, weight) for weight < 0.5: how a weight
//          average follows the weights)
// Backward kernels assign (=) their outputs.
#pragma once

#include "kernels/cpu/nchw.h"

namespace deblur::cpu {

template <class T>
void relu_forward(NchwView<const T> x, NchwView<T> y);
template <class T>
void relu_backward(NchwView<const T> y, NchwView<const T> grad_y, NchwView<T> grad_x);

template <class T>
void add_forward(NchwView<const T> a, NchwView<const T> b, NchwView<T> y);
template <class T>
void scale_forward(NchwView<const T> x, T factor, T shift, NchwView<T> y);
template <class T>
void clamp_forward(NchwView<const T> x, T lo, T hi, NchwView<T> y);
template <class T>
void clamp_backward(NchwView<const T> x, T lo, T hi, NchwView<const T> grad_y, NchwView<T> grad_x);
template <class T>
double sum(NchwView<const T> x);
template <class T>
void fill(NchwView<T> y, T value);
template <class T>
void accumulate(NchwView<T> dst, NchwView<const T> src);
template <class T>
void lerp(NchwView<T> y, NchwView<const T> x, T weight);

}  // namespace deblur::cpu
