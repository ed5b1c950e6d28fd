// parallel_for: the one place CPU kernels get their threads (OpenMP underneath). Work items
// are independent and each writes its own outputs, so no kernel needs a lock.
#pragma once

#include <cstdint>

namespace deblur::cpu {

// Number of threads CPU kernels use; 0 restores the default (all cores or OMP_NUM_THREADS).
void set_num_threads(int threads);
int num_threads();

template <class Fn>
void parallel_for(int64_t count, Fn&& fn) {
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < count; ++i) fn(i);
}

}  // namespace deblur::cpu
