// Thread-count control for the CPU kernels.
#include "kernels/cpu/parallel.h"

#include <omp.h>

namespace deblur::cpu {

namespace {
const int kDefaultThreads = omp_get_max_threads();
}

void set_num_threads(int threads) {
  omp_set_num_threads(threads > 0 ? threads : kDefaultThreads);
}

int num_threads() {
  return omp_get_max_threads();
}

}  // namespace deblur::cpu
