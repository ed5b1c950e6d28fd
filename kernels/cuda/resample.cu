// Resampling CUDA kernels (semantics in resample.cuh: PyTorch's, as kernels/cpu/resample.h).
// One thread per output element in the forwards and per input element in the backwards; each
// backward thread gathers what its element needs, so no thread writes another's element and no
// atomics are needed: the max-pool backward recomputes its window's argmax, the upsample
// backward sums over the outputs whose taps reach its input. Grid: (plane / 256, C, N).
#include <cmath>
#include <cstdint>

#include "kernels/common/bilinear.h"
#include "kernels/cuda/resample.cuh"

namespace deblur::cuda {

namespace {

constexpr unsigned kThreads = 256;

// Pixels of one plane along x, channels along y, samples along z; all three are positive.
dim3 plane_grid(int64_t pixels, int64_t channels, int64_t n) {
  DEBLUR_CHECK(channels <= 65535 && n <= 65535, "cuda resample kernels: ", channels,
               " channels and batch ", n, " must each fit the grid's 65535");
  return dim3(static_cast<unsigned>((pixels + kThreads - 1) / kThreads),
              static_cast<unsigned>(channels), static_cast<unsigned>(n));
}

template <class T>
__device__ __forceinline__ T* plane_of(cpu::NchwView<T> v) {
  return v.data + blockIdx.z * v.batch_stride + blockIdx.y * v.h * v.w;
}

__device__ __forceinline__ int64_t pixel_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

// Offset in the input plane of the maximum of output (oy, ox)'s window, by PyTorch's CPU rule.
__device__ __forceinline__ int64_t window_argmax(const float* plane, int64_t width, int64_t oy,
                                                 int64_t ox) {
  const int64_t top = 2 * oy * width + 2 * ox;
  const int64_t window[4] = {top, top + 1, top + width, top + width + 1};
  int64_t best = top;
  float max = -INFINITY;
  for (int k = 0; k < 4; ++k) {
    const float v = plane[window[k]];
    if (v > max || v != v) {
      max = v;
      best = window[k];
    }
  }
  return best;
}

__global__ void max_pool_forward_kernel(cpu::NchwView<const float> x, cpu::NchwView<float> y) {
  const int64_t p = pixel_index();
  if (p >= y.h * y.w) return;
  const float* in = plane_of(x);
  plane_of(y)[p] = in[window_argmax(in, x.w, p / y.w, p % y.w)];
}

__global__ void max_pool_backward_kernel(cpu::NchwView<const float> x,
                                         cpu::NchwView<const float> grad_y,
                                         cpu::NchwView<float> grad_x) {
  const int64_t p = pixel_index();
  if (p >= x.h * x.w) return;
  const int64_t oy = p / x.w / 2, ox = p % x.w / 2;
  float g = 0.0f;  // also for the dropped odd row and column
  if (oy < grad_y.h && ox < grad_y.w && window_argmax(plane_of(x), x.w, oy, ox) == p)
    g = plane_of(grad_y)[oy * grad_y.w + ox];
  plane_of(grad_x)[p] = g;
}

__global__ void upsample_forward_kernel(cpu::NchwView<const float> x, cpu::NchwView<float> y) {
  const int64_t p = pixel_index();
  if (p >= y.h * y.w) return;
  const auto row = common::upsample2x_tap<float>(p / y.w, x.h);
  const auto col = common::upsample2x_tap<float>(p % y.w, x.w);
  const float* r0 = plane_of(x) + row.i0 * x.w;
  const float* r1 = plane_of(x) + row.i1 * x.w;
  // PyTorch's order, as the CPU twin: H weights outside, W-weighted sums inside.
  plane_of(y)[p] = row.w0 * (col.w0 * r0[col.i0] + col.w1 * r0[col.i1]) +
                   row.w1 * (col.w0 * r1[col.i0] + col.w1 * r1[col.i1]);
}

// The outputs along one axis whose taps reach input i: 2i - 1 .. 2i + 2, and output 0 = 2i - 2
// for input 1 (output 0's clamped source gives input 1 a zero weight, which still carries a NaN
// or inf gradient, as in the CPU twin's scatter; for i > 1, output 2i - 2 adds nothing).
__device__ __forceinline__ int64_t first_output(int64_t i) {
  return 2 * i - 2 > 0 ? 2 * i - 2 : 0;
}
__device__ __forceinline__ int64_t last_output(int64_t i, int64_t out_size) {
  return 2 * i + 2 < out_size - 1 ? 2 * i + 2 : out_size - 1;
}

__global__ void upsample_backward_kernel(cpu::NchwView<const float> grad_y,
                                         cpu::NchwView<float> grad_x) {
  const int64_t p = pixel_index();
  if (p >= grad_x.h * grad_x.w) return;
  const int64_t iy = p / grad_x.w, ix = p % grad_x.w;
  const float* gy = plane_of(grad_y);
  float acc = 0.0f;
  for (int64_t oy = first_output(iy); oy <= last_output(iy, grad_y.h); ++oy) {
    const auto row = common::upsample2x_tap<float>(oy, grad_x.h);
    for (int64_t ox = first_output(ix); ox <= last_output(ix, grad_y.w); ++ox) {
      const auto col = common::upsample2x_tap<float>(ox, grad_x.w);
      const float g = gy[oy * grad_y.w + ox];
      // The CPU twin's four products, for those that land on this input.
      if (row.i0 == iy && col.i0 == ix) acc += row.w0 * col.w0 * g;
      if (row.i0 == iy && col.i1 == ix) acc += row.w0 * col.w1 * g;
      if (row.i1 == iy && col.i0 == ix) acc += row.w1 * col.w0 * g;
      if (row.i1 == iy && col.i1 == ix) acc += row.w1 * col.w1 * g;
    }
  }
  plane_of(grad_x)[p] = acc;
}

}  // namespace

void max_pool2d_2x2_forward(cpu::NchwView<const float> x, cpu::NchwView<float> y,
                            cudaStream_t stream) {
  if (y.n == 0 || y.c == 0 || y.h * y.w == 0) return;
  launch("max_pool2d_2x2_forward", max_pool_forward_kernel, plane_grid(y.h * y.w, y.c, y.n),
         dim3(kThreads), 0, stream, x, y);
}

void max_pool2d_2x2_backward(cpu::NchwView<const float> x, cpu::NchwView<const float> grad_y,
                             cpu::NchwView<float> grad_x, cudaStream_t stream) {
  if (x.n == 0 || x.c == 0 || x.h * x.w == 0) return;
  launch("max_pool2d_2x2_backward", max_pool_backward_kernel, plane_grid(x.h * x.w, x.c, x.n),
         dim3(kThreads), 0, stream, x, grad_y, grad_x);
}

void upsample_bilinear2x_forward(cpu::NchwView<const float> x, cpu::NchwView<float> y,
                                 cudaStream_t stream) {
  if (y.n == 0 || y.c == 0 || y.h * y.w == 0) return;
  launch("upsample_bilinear2x_forward", upsample_forward_kernel, plane_grid(y.h * y.w, y.c, y.n),
         dim3(kThreads), 0, stream, x, y);
}

void upsample_bilinear2x_backward(cpu::NchwView<const float> grad_y, cpu::NchwView<float> grad_x,
                                  cudaStream_t stream) {
  if (grad_x.n == 0 || grad_x.c == 0 || grad_x.h * grad_x.w == 0) return;
  launch("upsample_bilinear2x_backward", upsample_backward_kernel,
         plane_grid(grad_x.h * grad_x.w, grad_x.c, grad_x.n), dim3(kThreads), 0, stream, grad_y,
         grad_x);
}

}  // namespace deblur::cuda
