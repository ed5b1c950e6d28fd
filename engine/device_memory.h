// Raw memory per device: the seam between the engine and a backend's allocator. The CPU side is
// aligned host memory; the CUDA side is the caching allocator of engine/cuda_allocator.cpp and
// exists only in the CUDA and simulator builds (elsewhere it throws a clear error).
#pragma once

#include <cstdint>

#include "engine/tensor.h"

namespace deblur {

bool cuda_available();  // built with CUDA and at least one device visible
float* device_alloc(int64_t count, Device device);
void device_free(float* data, Device device);
// Sets count floats to zero (on CUDA: queued on the engine stream, the host does not wait).
void device_zero(float* data, int64_t count, Device device);
// Copies count floats between any two devices.
void device_copy(float* dst, Device dst_device, const float* src, Device src_device, int64_t count);

}  // namespace deblur
