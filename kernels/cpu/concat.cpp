// Channel concat CPU kernel: one plane copy per output channel.
#include "kernels/cpu/concat.h"

#include <algorithm>

#include "kernels/cpu/parallel.h"

namespace deblur::cpu {

template <class T>
void concat_forward(NchwView<const T> a, NchwView<const T> b, NchwView<T> y) {
  parallel_for(y.n * y.c, [&](int64_t p) {
    const int64_t i = p / y.c, ch = p % y.c;
    const T* src = ch < a.c ? a.channel(i, ch) : b.channel(i, ch - a.c);
    std::copy(src, src + y.plane(), y.channel(i, ch));
  });
}

template void concat_forward<float>(NchwView<const float>, NchwView<const float>, NchwView<float>);
template void concat_forward<double>(NchwView<const double>, NchwView<const double>,
                                     NchwView<double>);

}  // namespace deblur::cpu
