// parallel_for: the one place CPU kernels get their threads (OpenMP underneath). Work items
// are independent and each writes its own outputs, so no kernel needs a lock.
#pragma once

#include <algorithm>
#include <cstdint>

namespace deblur::cpu {

// Number of threads CPU kernels use; 0 restores the default (all cores or OMP_NUM_THREADS).
void set_num_threads(int threads);
int num_threads();

template <class Fn>
void parallel_for(int64_t count, Fn&& fn) {
  // A single item runs inline: waking the thread team would cost more than it does.
#pragma omp parallel for schedule(dynamic, 1) if (count > 1)
  for (int64_t i = 0; i < count; ++i) fn(i);
}

// Elementwise kernels split each sample into chunks of this many values, so the work spreads
// over threads even for a single large image.
constexpr int64_t kChunk = 1 << 14;

inline int64_t chunk_count(int64_t sample_size) {
  return (sample_size + kChunk - 1) / kChunk;
}

// Calls fn(i, begin, count) for every chunk [begin, begin + count) of every sample i; chunk
// (i, begin) is job i * chunk_count(sample_size) + begin / kChunk.
template <class Fn>
void for_each_chunk(int64_t n, int64_t sample_size, Fn&& fn) {
  const int64_t chunks = chunk_count(sample_size);
  parallel_for(n * chunks, [&](int64_t job) {
    const int64_t i = job / chunks, begin = (job % chunks) * kChunk;
    fn(i, begin, std::min(kChunk, sample_size - begin));
  });
}

}  // namespace deblur::cpu
