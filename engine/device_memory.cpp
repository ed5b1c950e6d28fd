// Host memory for CPU storage, and the dispatch to the CUDA caching allocator
// (engine/cuda_allocator.cpp) in the CUDA and simulator builds.
#include "engine/device_memory.h"

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <unordered_map>
#include <utility>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#define DEBLUR_HOST_MMAP 1
#else
#define DEBLUR_HOST_MMAP 0
#endif

#include "engine/check.h"
#include "engine/cuda_allocator.h"

namespace deblur {

namespace {
// 64-byte alignment: a cache line, and a full AVX-512 vector.
constexpr size_t kHostAlignment = 64;

#ifndef DEBLUR_HAS_CUDA_KERNELS
[[noreturn]] void no_cuda() {
  throw Error("this build of deblur has no CUDA backend (configure with -DDEBLUR_CUDA=ON)");
}
#endif
}  // namespace

bool cuda_available() {
#ifdef DEBLUR_HAS_CUDA_KERNELS
  return cuda_device_present();
#else
  return false;
#endif
}

namespace {
constexpr size_t kCachedMinBytes = size_t(1) << 20;

// Sizes from 1 MiB up round to 8 classes per power of two.
size_t size_class(size_t bytes) {
  const size_t step = std::bit_floor(bytes) / 8;
  return (bytes + step - 1) / step * step;
}

// A cached block serves a request up to this much smaller than itself.
constexpr size_t kReuseSlackDivisor = 4;
// Held (in use + cached) stays within this many times the most ever in use at once. One would
// be the least memory, but the mix of sizes in use changes along a forward, and a cache that
// must evict at every change faults the next block's pages in afresh: at 512x512 inference, 1x
// faulted in about 330 MiB per forward (0.60 s against 0.53 s on 2 cores), while 2x evicts
// nothing in steady state (what is held settles near 1.4x the peak in use).
constexpr size_t kHeldPerPeak = 2;

class HostBlockCache {
 public:
  void* allocate(size_t bytes) {
    if (bytes < kCachedMinBytes) return small_alloc(bytes);
    bytes = size_class(bytes);
    void* block = nullptr;
    std::vector<std::pair<size_t, void*>> evicted;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      // Best fit: the smallest cached block that holds the request without wasting much.
      auto it = free_.lower_bound(bytes);
      if (it != free_.end() && it->first <= bytes + bytes / kReuseSlackDivisor) {
        block = it->second;
        bytes = it->first;
        stats_.cached_bytes -= bytes;
        free_.erase(it);
      } else {
        // A miss: make room so that what is held (in use + cached) stays within twice the most
        // ever in use at once. Largest blocks go first: fewest evictions for the room needed.
        // (The new peak itself is recorded once the block exists: a failed request sets none.)
        const size_t peak = std::max(peak_ever_bytes_, stats_.in_use_bytes + bytes);
        while (!free_.empty() &&
               stats_.in_use_bytes + stats_.cached_bytes + bytes > kHeldPerPeak * peak) {
          auto largest = std::prev(free_.end());
          evicted.push_back(*largest);
          stats_.cached_bytes -= largest->first;
          free_.erase(largest);
        }
      }
    }
    for (auto& [size, old] : evicted) large_free(old, size);
    if (!block) block = large_alloc(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    sizes_[block] = bytes;
    stats_.in_use_bytes += bytes;
    stats_.peak_in_use_bytes = std::max(stats_.peak_in_use_bytes, stats_.in_use_bytes);
    peak_ever_bytes_ = std::max(peak_ever_bytes_, stats_.in_use_bytes);
    return block;
  }

  void release(void* block) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = sizes_.find(block);
      if (it != sizes_.end()) {  // a large block: kept (what is held does not change)
        const size_t bytes = it->second;
        sizes_.erase(it);
        stats_.in_use_bytes -= bytes;
        free_.emplace(bytes, block);
        stats_.cached_bytes += bytes;
        return;
      }
    }
    std::free(block);
  }

  HostMemoryStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

  void reset_peak() {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.peak_in_use_bytes = stats_.in_use_bytes;
  }

  void empty() {
    std::multimap<size_t, void*> blocks;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      blocks.swap(free_);
      stats_.cached_bytes = 0;
    }
    for (auto& [bytes, block] : blocks) large_free(block, bytes);
  }

 private:
  static void* small_alloc(size_t bytes) {
    bytes = (bytes + kHostAlignment - 1) / kHostAlignment * kHostAlignment;
    void* p = std::aligned_alloc(kHostAlignment, bytes == 0 ? kHostAlignment : bytes);
    if (!p) throw std::bad_alloc();
    return p;
  }

  // Large blocks are mapped and unmapped whole where the system can, so that an evicted block's
  // pages leave the resident set at once (malloc may keep a freed block's pages in its heap).
  static void* large_alloc(size_t bytes) {
#if DEBLUR_HOST_MMAP
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    return p;
#else
    return small_alloc(bytes);
#endif
  }

  static void large_free(void* block, size_t bytes) {
#if DEBLUR_HOST_MMAP
    munmap(block, bytes);
#else
    (void)bytes;
    std::free(block);
#endif
  }

  std::mutex mutex_;
  std::multimap<size_t, void*> free_;          // cached blocks by size class
  std::unordered_map<void*, size_t> sizes_;    // large blocks in use
  HostMemoryStats stats_;
  size_t peak_ever_bytes_ = 0;  // the most in use at once since the start (never reset)
};

// Never destroyed: tensors held by statics may be freed after it would have been.
HostBlockCache& host_cache() {
  static HostBlockCache* cache = new HostBlockCache;
  return *cache;
}
}  // namespace

HostMemoryStats host_memory_stats() {
  return host_cache().stats();
}

void host_reset_peak_memory() {
  host_cache().reset_peak();
}

void host_empty_cache() {
  host_cache().empty();
}

float* device_alloc(int64_t count, Device device) {
  if (device == Device::CUDA) {
#ifdef DEBLUR_HAS_CUDA_KERNELS
    return cuda_alloc(count);
#else
    no_cuda();
#endif
  }
  return static_cast<float*>(host_cache().allocate(static_cast<size_t>(count) * sizeof(float)));
}

void device_free(float* data, Device device) {
  if (device == Device::CUDA) {
#ifdef DEBLUR_HAS_CUDA_KERNELS
    cuda_free(data);
#endif
    return;
  }
  host_cache().release(data);
}

void device_zero(float* data, int64_t count, Device device) {
  if (count == 0) return;
  if (device == Device::CPU) {
    std::memset(data, 0, static_cast<size_t>(count) * sizeof(float));
    return;
  }
#ifdef DEBLUR_HAS_CUDA_KERNELS
  cuda_zero(data, count);
#else
  no_cuda();
#endif
}

void device_copy(float* dst, Device dst_device, const float* src, Device src_device,
                 int64_t count) {
  if (count == 0) return;
  if (dst_device == Device::CPU && src_device == Device::CPU) {
    std::memcpy(dst, src, static_cast<size_t>(count) * sizeof(float));
    return;
  }
#ifdef DEBLUR_HAS_CUDA_KERNELS
  cuda_copy(dst, dst_device == Device::CUDA, src, src_device == Device::CUDA, count);
#else
  no_cuda();
#endif
}

}  // namespace deblur
