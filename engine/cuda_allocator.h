// CUDA device memory for the engine: a caching allocator, the stream every op runs on, and
// DEBLUR_CUDA_CHECK. Compiled in two builds from the same source: the CUDA backend
// (DEBLUR_WITH_CUDA, the real runtime) and the simulator build of the engine (DEBLUR_CUDA_SIM,
// kernels/cuda/sim/cuda_sim.h's cudaMalloc/cudaMemcpy), both of which define
// DEBLUR_HAS_CUDA_KERNELS here; a CPU-only build sees nothing of this header.
//
// The allocator keeps freed blocks in free lists keyed by their rounded size and hands them out
// again, so a training step in steady state calls cudaMalloc never. It is safe without events
// because every op runs on the one engine stream: a block freed after a kernel was queued can
// only be reused by work queued after that kernel. cudaMalloc failing empties the cache and
// retries once before throwing.
#pragma once

#if defined(DEBLUR_WITH_CUDA) || defined(DEBLUR_CUDA_SIM)
#define DEBLUR_HAS_CUDA_KERNELS 1

#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/check.h"
#include "kernels/cuda/launch.cuh"

// Throws deblur::Error with the call's text, file:line and CUDA's message.
#define DEBLUR_CUDA_CHECK(call)                                                             \
  do {                                                                                      \
    const cudaError_t status_ = (call);                                                     \
    if (status_ != cudaSuccess)                                                             \
      throw ::deblur::Error(std::string(#call) + " failed at " __FILE__ ":" +               \
                            std::to_string(__LINE__) + ": " + cudaGetErrorString(status_)); \
  } while (0)

namespace deblur {

// The stream every engine op and copy runs on: the legacy default stream, which cudaMemcpy
// (host copies, item(), to_vector()) also orders with, so a copy back sees every queued kernel.
cudaStream_t cuda_stream();

struct CudaMemoryStats {
  size_t in_use_bytes = 0;       // handed out and not yet freed (rounded sizes)
  size_t peak_in_use_bytes = 0;  // the most in_use_bytes has been
  size_t reserved_bytes = 0;     // held from cudaMalloc: in use plus cached
  int64_t malloc_calls = 0;      // cudaMalloc calls so far (flat in steady state)
};
CudaMemoryStats cuda_memory_stats();
void cuda_reset_peak_memory();  // peak_in_use_bytes = in_use_bytes
void cuda_empty_cache();        // cudaFree every cached (unused) block

// Device memory of at least `bytes` bytes from the cache, 16-byte aligned (kernel workspaces);
// returned to the cache with cuda_free_bytes.
void* cuda_alloc_bytes(size_t bytes);
void cuda_free_bytes(void* pointer);

// The device side of engine/device_memory.h (engine/device_memory.cpp dispatches to these).
bool cuda_device_present();
float* cuda_alloc(int64_t count);
void cuda_free(float* data);
void cuda_copy(float* dst, bool dst_on_device, const float* src, bool src_on_device, int64_t count);
void cuda_zero(float* data, int64_t count);  // queued on the engine stream

// Page-locked host memory for `count` floats: the source of asynchronous host-to-device copies
// (pageable memory would make the copy wait for the stream and block the host).
class PinnedHostBuffer {
 public:
  explicit PinnedHostBuffer(int64_t count);
  ~PinnedHostBuffer();
  PinnedHostBuffer(const PinnedHostBuffer&) = delete;
  PinnedHostBuffer& operator=(const PinnedHostBuffer&) = delete;
  float* data() const { return data_; }
  int64_t size() const { return count_; }

 private:
  float* data_ = nullptr;
  int64_t count_ = 0;
};

// Queues a copy of `count` floats from page-locked host memory to device memory on the engine
// stream and returns at once; `src` must stay untouched until an event recorded after it ran.
void cuda_copy_to_device_async(float* dst, const PinnedHostBuffer& src, int64_t count);

// A point in the engine stream: record() marks the work queued so far, wait() blocks the host
// until that work has run.
class CudaEvent {
 public:
  CudaEvent();
  ~CudaEvent();
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;
  void record();
  void wait() const;

 private:
  cudaEvent_t event_ = nullptr;
};

// A kernel's scratch memory for the duration of one launcher call.
class CudaWorkspace {
 public:
  explicit CudaWorkspace(size_t bytes) : data_(bytes > 0 ? cuda_alloc_bytes(bytes) : nullptr) {}
  ~CudaWorkspace() { cuda_free_bytes(data_); }
  CudaWorkspace(const CudaWorkspace&) = delete;
  CudaWorkspace& operator=(const CudaWorkspace&) = delete;
  void* data() const { return data_; }

 private:
  void* data_;
};

}  // namespace deblur

#endif
