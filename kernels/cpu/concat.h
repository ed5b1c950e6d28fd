// Channel concat CPU kernel, float and double.
//   concat_forward: PyTorch's torch.cat([a, b], dim=1): y[:, :Ca] = a, y[:, Ca:] = b, with
//     a [N, Ca, H, W], b [N, Cb, H, W], y [N, Ca + Cb, H, W].
// There is no backward kernel: the gradients of a and b are the channel ranges of dy, which the
// engine hands on as zero-copy channel_slice views.
#pragma once

#include "kernels/cpu/nchw.h"

namespace deblur::cpu {

template <class T>
void concat_forward(NchwView<const T> a, NchwView<const T> b, NchwView<T> y);

}  // namespace deblur::cpu
