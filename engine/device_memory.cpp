// Host memory for CPU storage, and the dispatch to the CUDA caching allocator
// (engine/cuda_allocator.cpp) in the CUDA and simulator builds.
#include "engine/device_memory.h"

#include <cstdlib>
#include <cstring>
#include <new>

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

float* device_alloc(int64_t count, Device device) {
  if (device == Device::CUDA) {
#ifdef DEBLUR_HAS_CUDA_KERNELS
    return cuda_alloc(count);
#else
    no_cuda();
#endif
  }
  size_t bytes = (static_cast<size_t>(count) * sizeof(float) + kHostAlignment - 1) /
                 kHostAlignment * kHostAlignment;
  void* p = std::aligned_alloc(kHostAlignment, bytes == 0 ? kHostAlignment : bytes);
  if (!p) throw std::bad_alloc();
  return static_cast<float*>(p);
}

void device_free(float* data, Device device) {
  if (device == Device::CUDA) {
#ifdef DEBLUR_HAS_CUDA_KERNELS
    cuda_free(data);
#endif
    return;
  }
  std::free(data);
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
