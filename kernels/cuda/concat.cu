// Channel concat CUDA kernel (semantics in concat.cuh: torch.cat on dim 1). Within a sample the
// output's Ca*H*W + Cb*H*W values are contiguous and are a's values followed by b's, so one
// elementwise pass does it: the sample in grid.y, the output's values along x, each read from a
// or from b by one comparison (no division by the plane size).
#include <algorithm>
#include <cstdint>

#include "kernels/cuda/concat.cuh"

namespace deblur::cuda {

namespace {

constexpr unsigned kThreads = 256;
constexpr int64_t kItems = 4;          // values per thread, about
constexpr int64_t kMaxBlocksX = 4096;  // beyond that the threads take more values each

__global__ void concat_kernel(cpu::NchwView<const float> a, cpu::NchwView<const float> b,
                              cpu::NchwView<float> y) {
  const int64_t a_size = a.c * a.h * a.w, size = y.c * y.h * y.w;
  const float* in_a = a.data + blockIdx.y * a.batch_stride;
  const float* in_b = b.data + blockIdx.y * b.batch_stride;
  float* out = y.data + blockIdx.y * y.batch_stride;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < size;
       k += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[k] = k < a_size ? in_a[k] : in_b[k - a_size];
}

}  // namespace

void concat_forward(cpu::NchwView<const float> a, cpu::NchwView<const float> b,
                    cpu::NchwView<float> y, cudaStream_t stream) {
  DEBLUR_CHECK(a.n == y.n && b.n == y.n && a.c + b.c == y.c && a.h == y.h && b.h == y.h &&
                   a.w == y.w && b.w == y.w,
               "cuda concat_forward: inputs [", a.n, ", ", a.c, ", ", a.h, ", ", a.w, "] and [",
               b.n, ", ", b.c, ", ", b.h, ", ", b.w, "] do not make the output [", y.n, ", ", y.c,
               ", ", y.h, ", ", y.w, "]");
  DEBLUR_CHECK(y.n <= 65535, "cuda concat_forward: batch ", y.n, " exceeds the grid's 65535");
  const int64_t size = y.c * y.h * y.w;
  if (y.n == 0 || size == 0) return;
  const int64_t per_block = kThreads * kItems;
  const dim3 grid(static_cast<unsigned>(std::min((size + per_block - 1) / per_block, kMaxBlocksX)),
                  static_cast<unsigned>(y.n));
  launch("concat_forward", concat_kernel, grid, dim3(kThreads), 0, stream, a, b, y);
}

}  // namespace deblur::cuda
