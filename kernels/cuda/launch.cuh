// The one way kernels are launched, and device memory for the kernel tests.
//   launch(name, kernel, grid, block, shared_bytes, stream, args...): under nvcc
//     kernel<<<grid, block, shared_bytes, stream>>>(args...) and a launch check that throws
//     deblur::Error with the kernel's name, the caller's file:line and CUDA's error; in the
//     simulator build (DEBLUR_CUDA_SIM, host compiler) it runs the grid on the CPU
//     (kernels/cuda/sim/cuda_sim.h), failing with the same kind of error.
//   DeviceBuffer<T>: an owning device array with upload/download (cudaMalloc and cudaMemcpy; in
//     the simulator these are its guarded allocations).
//   DEBLUR_DYNAMIC_SHARED(T, name): declares the launch's dynamic shared memory as T* name, the
//     form both builds accept (`extern __shared__` has no host-compiler equivalent).
// Host code of a CUDA build may include this header from plain C++ (for cudaStream_t and
// DeviceBuffer); launch() exists only where kernels compile: under nvcc and in the simulator.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

#include "engine/check.h"

#if defined(DEBLUR_CUDA_SIM)
#include "kernels/cuda/sim/cuda_sim.h"
#else
#include <cuda_runtime.h>
#if defined(__CUDACC__)
// 16-byte aligned bytes, viewed as T: one declaration that every kernel of a file can share.
#define DEBLUR_DYNAMIC_SHARED(T, name)                                   \
  extern __shared__ __align__(16) unsigned char deblur_dynamic_shared[]; \
  T* const name = reinterpret_cast<T*>(deblur_dynamic_shared)
#endif
#endif

namespace deblur::cuda {

// The simulator's and the device's inline code get different symbol names, so a test program
// that links both builds can never merge one with the other.
#if defined(DEBLUR_CUDA_SIM)
inline namespace on_simulator {
#else
inline namespace on_device {
#endif

// A kernel's name and where it was launched from (the caller's file:line, by default arguments
// evaluated at the call), for error messages.
struct KernelSite {
  const char* name;
  const char* file;
  int line;
  KernelSite(const char* kernel_name, const char* caller_file = __builtin_FILE(),
             int caller_line = __builtin_LINE())
      : name(kernel_name), file(caller_file), line(caller_line) {}
};

namespace detail {
inline void check(cudaError_t status, const char* what, const char* file, int line) {
  if (status != cudaSuccess)
    throw Error(::deblur::detail::concat(what, " failed at ", file, ":", line, ": ",
                                         cudaGetErrorString(status)));
}
}  // namespace detail

#if defined(__CUDACC__) || defined(DEBLUR_CUDA_SIM)
template <class... Params, class... Args>
void launch(KernelSite site, void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes,
            cudaStream_t stream, Args&&... args) {
#if defined(__CUDACC__)
  kernel<<<grid, block, shared_bytes, stream>>>(std::forward<Args>(args)...);
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess)
    throw Error(::deblur::detail::concat("kernel '", site.name, "' launched at ", site.file, ":",
                                         site.line, ": ", cudaGetErrorString(status)));
#else
  (void)stream;  // the simulator runs each launch to completion
  sim::launch(site.name, site.file, site.line, kernel, grid, block, shared_bytes,
              std::forward<Args>(args)...);
#endif
}
#endif

template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t count) : count_(count) {
    detail::check(cudaMalloc(reinterpret_cast<void**>(&data_), bytes()), "cudaMalloc", __FILE__,
                  __LINE__);
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), count_(std::exchange(other.count_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(count_, other.count_);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (data_) cudaFree(data_);
  }

  T* data() const { return data_; }
  size_t size() const { return count_; }

  void upload(const std::vector<T>& host) {
    DEBLUR_CHECK(host.size() == count_, "DeviceBuffer::upload: ", host.size(), " values into ",
                 count_);
    detail::check(cudaMemcpy(data_, host.data(), bytes(), cudaMemcpyHostToDevice), "cudaMemcpy",
                  __FILE__, __LINE__);
  }
  std::vector<T> download() const {
    std::vector<T> host(count_);
    detail::check(cudaMemcpy(host.data(), data_, bytes(), cudaMemcpyDeviceToHost), "cudaMemcpy",
                  __FILE__, __LINE__);
    return host;
  }

 private:
  size_t bytes() const { return count_ * sizeof(T); }

  T* data_ = nullptr;
  size_t count_ = 0;
};

}  // namespace on_simulator / on_device
}  // namespace deblur::cuda
