// The CUDA caching allocator, the engine stream, and the device side of engine/device_memory.h
// (allocation and copies), for the CUDA backend and for the simulator build of the engine.
#include "engine/cuda_allocator.h"

#if defined(DEBLUR_HAS_CUDA_KERNELS)

#include <algorithm>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace deblur {
namespace {

// Small blocks round to 512 bytes, large ones to 1 MiB: few size classes, so a step's shapes
// come back to the same free lists, at most 1 MiB lost on a large block.
constexpr size_t kSmallRound = 512;
constexpr size_t kLargeRound = size_t{1} << 20;

size_t round_size(size_t bytes) {
  bytes = std::max<size_t>(bytes, 1);
#if defined(DEBLUR_CUDA_SIM)
  // In checked mode the simulator ends each allocation at a guard page: rounding only to 16
  // bytes (the workspaces' alignment) keeps an overrun within 12 bytes of the tensor's end.
  if (sim::checked()) return (bytes + 15) / 16 * 16;
#endif
  const size_t round = bytes < kLargeRound ? kSmallRound : kLargeRound;
  return (bytes + round - 1) / round * round;
}

class CachingAllocator {
 public:
  void* allocate(size_t bytes) {
    const size_t size = round_size(bytes);
    std::lock_guard lock(mutex_);
    void* pointer = nullptr;
    std::vector<void*>& cached = free_[size];
    if (!cached.empty()) {
      pointer = cached.back();
      cached.pop_back();
    } else {
      pointer = device_malloc(size);
    }
    live_[pointer] = size;
    stats_.in_use_bytes += size;
    stats_.peak_in_use_bytes = std::max(stats_.peak_in_use_bytes, stats_.in_use_bytes);
    return pointer;
  }

  void release(void* pointer) {
    if (!pointer) return;
    std::lock_guard lock(mutex_);
    const auto it = live_.find(pointer);
    DEBLUR_CHECK(it != live_.end(), "cuda allocator: freeing ", pointer,
                 ", which it did not allocate");
    stats_.in_use_bytes -= it->second;
    free_[it->second].push_back(pointer);
    live_.erase(it);
  }

  void empty_cache() {
    std::lock_guard lock(mutex_);
    release_cached();
  }

  CudaMemoryStats stats() {
    std::lock_guard lock(mutex_);
    return stats_;
  }

  void reset_peak() {
    std::lock_guard lock(mutex_);
    stats_.peak_in_use_bytes = stats_.in_use_bytes;
  }

 private:
  // Called with mutex_ held.
  void* device_malloc(size_t size) {
    void* pointer = nullptr;
    if (cudaMalloc(&pointer, size) != cudaSuccess) {
#if !defined(DEBLUR_CUDA_SIM)
      (void)cudaGetLastError();  // else the next launch check would report this failure
#endif
      release_cached();
      DEBLUR_CUDA_CHECK(cudaMalloc(&pointer, size));
    }
    ++stats_.malloc_calls;
    stats_.reserved_bytes += size;
    return pointer;
  }

  void release_cached() {
    for (auto& [size, pointers] : free_) {
      for (void* pointer : pointers) DEBLUR_CUDA_CHECK(cudaFree(pointer));
      stats_.reserved_bytes -= size * pointers.size();
      pointers.clear();
    }
  }

  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_;  // by rounded size
  std::unordered_map<void*, size_t> live_;               // handed out: rounded size
  CudaMemoryStats stats_;
};

// Never destroyed: tensors in static storage may be freed after any static destructor ran, and
// the driver reclaims the memory at exit anyway.
CachingAllocator& allocator() {
  static CachingAllocator* const instance = new CachingAllocator;
  return *instance;
}

}  // namespace

cudaStream_t cuda_stream() {
  return nullptr;
}

CudaMemoryStats cuda_memory_stats() {
  return allocator().stats();
}

void cuda_reset_peak_memory() {
  allocator().reset_peak();
}

void cuda_empty_cache() {
  allocator().empty_cache();
}

void* cuda_alloc_bytes(size_t bytes) {
  return allocator().allocate(bytes);
}

void cuda_free_bytes(void* pointer) {
  allocator().release(pointer);
}

// --- The device side of engine/device_memory.cpp.

bool cuda_device_present() {
#if defined(DEBLUR_CUDA_SIM)
  return true;  // the simulator is the device
#else
  int count = 0;
  const bool present = cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
  (void)cudaGetLastError();  // no device is an answer here, not an error for the next launch
  return present;
#endif
}

float* cuda_alloc(int64_t count) {
  return static_cast<float*>(cuda_alloc_bytes(static_cast<size_t>(count) * sizeof(float)));
}

void cuda_free(float* data) {
  cuda_free_bytes(data);
}

void cuda_copy(float* dst, bool dst_on_device, const float* src, bool src_on_device,
               int64_t count) {
  const cudaMemcpyKind kind =
      dst_on_device ? (src_on_device ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                    : cudaMemcpyDeviceToHost;
  DEBLUR_CUDA_CHECK(cudaMemcpy(dst, src, static_cast<size_t>(count) * sizeof(float), kind));
}

void cuda_zero(float* data, int64_t count) {
  DEBLUR_CUDA_CHECK(
      cudaMemsetAsync(data, 0, static_cast<size_t>(count) * sizeof(float), cuda_stream()));
}

PinnedHostBuffer::PinnedHostBuffer(int64_t count) : count_(count) {
  DEBLUR_CHECK(count >= 0, "PinnedHostBuffer: negative size ", count);
  void* pointer = nullptr;
  DEBLUR_CUDA_CHECK(cudaMallocHost(&pointer, static_cast<size_t>(count) * sizeof(float)));
  data_ = static_cast<float*>(pointer);
}

PinnedHostBuffer::~PinnedHostBuffer() {
  cudaFreeHost(data_);
}

void cuda_copy_to_device_async(float* dst, const PinnedHostBuffer& src, int64_t count) {
  DEBLUR_CHECK(count >= 0 && count <= src.size(), "cuda_copy_to_device_async: ", count,
               " floats from a pinned buffer of ", src.size());
  DEBLUR_CUDA_CHECK(cudaMemcpyAsync(dst, src.data(), static_cast<size_t>(count) * sizeof(float),
                                    cudaMemcpyHostToDevice, cuda_stream()));
}

CudaEvent::CudaEvent() {
  DEBLUR_CUDA_CHECK(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming));
}

CudaEvent::~CudaEvent() {
  cudaEventDestroy(event_);
}

void CudaEvent::record() {
  DEBLUR_CUDA_CHECK(cudaEventRecord(event_, cuda_stream()));
}

void CudaEvent::wait() const {
  DEBLUR_CUDA_CHECK(cudaEventSynchronize(event_));
}

}  // namespace deblur

#endif
