// Raw memory per device: the seam between the engine and a backend's allocator. The CPU side is
// aligned host memory with a cache of large blocks; the CUDA side is the caching allocator of
// engine/cuda_allocator.cpp and exists only in the CUDA and simulator builds (elsewhere it
// throws a clear error).
#pragma once

#include <cstdint>

#include "engine/tensor.h"

namespace deblur {

bool cuda_available();  // built with CUDA and at least one device visible

// Host (Device::CPU) memory. Blocks of 1 MiB and more are rounded up to a size class (at most
// 1/8 more) and, when freed, kept for the next request that fits (the smallest cached block at
// most 1/4 larger): a training step or a tile asks for the same activation sizes every time,
// and a fresh large block costs a page fault per 4 KiB (the kernel zeroing each page) on first
// touch. A request the cache cannot serve first evicts cached blocks (largest first, unmapped at
// once) until in use + cached + the request fit within twice the most ever in use at once, so
// the cache about doubles, at most, the footprint of a workload whose sizes keep changing
// (concurrent misses may pass it briefly: a request being mapped is not counted yet).
struct HostMemoryStats {
  size_t in_use_bytes = 0;       // handed out and not yet freed (large blocks, rounded)
  size_t peak_in_use_bytes = 0;  // the most in_use_bytes has been
  size_t cached_bytes = 0;       // freed large blocks kept for reuse
};
HostMemoryStats host_memory_stats();
void host_reset_peak_memory();  // peak_in_use_bytes = in_use_bytes
void host_empty_cache();        // returns every cached block to the system

float* device_alloc(int64_t count, Device device);
void device_free(float* data, Device device);
// Sets count floats to zero (on CUDA: queued on the engine stream, the host does not wait).
void device_zero(float* data, int64_t count, Device device);
// Copies count floats between any two devices.
void device_copy(float* dst, Device dst_device, const float* src, Device src_device, int64_t count);

}  // namespace deblur
