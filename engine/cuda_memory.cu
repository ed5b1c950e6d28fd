// CUDA memory for the engine's storage: allocation and host/device copies. The caching
// allocator and streams come with the CUDA backend; this is the seam they plug into.
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "engine/check.h"

#define DEBLUR_CUDA_CHECK(call)                                                             \
  do {                                                                                      \
    cudaError_t status_ = (call);                                                           \
    if (status_ != cudaSuccess)                                                             \
      throw ::deblur::Error(std::string(#call) + " failed at " __FILE__ ":" +               \
                            std::to_string(__LINE__) + ": " + cudaGetErrorString(status_)); \
  } while (0)

namespace deblur {

bool cuda_device_present() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

float* cuda_alloc(int64_t count) {
  void* p = nullptr;
  DEBLUR_CUDA_CHECK(cudaMalloc(&p, static_cast<size_t>(count > 0 ? count : 1) * sizeof(float)));
  return static_cast<float*>(p);
}

void cuda_free(float* data) {
  cudaFree(data);
}

void cuda_copy(float* dst, bool dst_on_device, const float* src, bool src_on_device,
               int64_t count) {
  cudaMemcpyKind kind = dst_on_device
                            ? (src_on_device ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                            : cudaMemcpyDeviceToHost;
  DEBLUR_CUDA_CHECK(cudaMemcpy(dst, src, static_cast<size_t>(count) * sizeof(float), kind));
}

}  // namespace deblur
