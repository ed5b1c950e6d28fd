// Pointwise CUDA kernels (semantics in pointwise.cuh: PyTorch's, as kernels/cpu/pointwise.h).
// Elementwise kernels put the sample in grid.y and stride over that sample's contiguous C*H*W
// values along x, each thread taking about kItems of them: no per-element division, and a
// channel-slice view (batch_stride > C*H*W) costs nothing. sum reduces each thread's values,
// then each warp with __shfl_down_sync, then the block's warp totals through shared memory, and
// adds the block's total to *out with one atomicAdd.
#include <algorithm>
#include <cstdint>

#include "kernels/cuda/pointwise.cuh"

namespace deblur::cuda {

namespace {

constexpr unsigned kThreads = 256;     // a multiple of the warp size (sum's reduction needs it)
constexpr int64_t kItems = 4;          // values per thread, about
constexpr int64_t kMaxBlocksX = 4096;  // beyond that the threads take more values each

int64_t sample_size(cpu::NchwView<const float> v) {
  return v.c * v.h * v.w;
}

// Samples along y, a sample's values along x; n and size are both positive.
dim3 elementwise_grid(int64_t n, int64_t size) {
  DEBLUR_CHECK(n <= 65535, "cuda pointwise kernels: batch ", n, " exceeds the grid's 65535");
  const int64_t per_block = kThreads * kItems;
  return dim3(static_cast<unsigned>(std::min((size + per_block - 1) / per_block, kMaxBlocksX)),
              static_cast<unsigned>(n));
}

__device__ __forceinline__ int64_t first_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ int64_t grid_stride() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x;
}

struct Relu {
  // NaN passes through, as in PyTorch.
  __device__ float operator()(float v) const { return v > 0.0f || v != v ? v : 0.0f; }
};
struct ReluBackward {
  __device__ float operator()(float y, float gy) const { return y > 0.0f ? gy : 0.0f; }
};
struct Add {
  __device__ float operator()(float a, float b) const { return a + b; }
};
struct Lerp {
  float weight;
  __device__ float operator()(float y, float x) const { return y + weight * (x - y); }
};
struct Scale {
  float factor, shift;
  __device__ float operator()(float v) const { return factor * v + shift; }
};
struct Clamp {
  float lo, hi;
  __device__ float operator()(float v) const { return v < lo ? lo : (v > hi ? hi : v); }
};
struct ClampBackward {
  float lo, hi;
  __device__ float operator()(float x, float gy) const { return x >= lo && x <= hi ? gy : 0.0f; }
};

__global__ void fill_kernel(cpu::NchwView<float> y, float value) {
  const int64_t size = y.c * y.h * y.w;
  float* out = y.data + blockIdx.y * y.batch_stride;
  for (int64_t k = first_index(); k < size; k += grid_stride()) out[k] = value;
}

template <class Op>
__global__ void map1_kernel(Op op, cpu::NchwView<const float> x, cpu::NchwView<float> y) {
  const int64_t size = x.c * x.h * x.w;
  const float* in = x.data + blockIdx.y * x.batch_stride;
  float* out = y.data + blockIdx.y * y.batch_stride;
  for (int64_t k = first_index(); k < size; k += grid_stride()) out[k] = op(in[k]);
}

template <class Op>
__global__ void map2_kernel(Op op, cpu::NchwView<const float> a, cpu::NchwView<const float> b,
                            cpu::NchwView<float> y) {
  const int64_t size = a.c * a.h * a.w;
  const float* in_a = a.data + blockIdx.y * a.batch_stride;
  const float* in_b = b.data + blockIdx.y * b.batch_stride;
  float* out = y.data + blockIdx.y * y.batch_stride;
  for (int64_t k = first_index(); k < size; k += grid_stride()) out[k] = op(in_a[k], in_b[k]);
}

// The sum of v over the warp, in lane 0.
__device__ __forceinline__ float warp_sum(float v) {
  for (unsigned offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

__global__ void sum_kernel(cpu::NchwView<const float> x, float* out) {
  __shared__ float warp_totals[32];
  const int64_t size = x.c * x.h * x.w;
  const float* in = x.data + blockIdx.y * x.batch_stride;
  float s = 0.0f;
  for (int64_t k = first_index(); k < size; k += grid_stride()) s += in[k];
  s = warp_sum(s);
  const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) warp_totals[warp] = s;
  __syncthreads();
  if (warp == 0) {
    s = lane < blockDim.x / 32 ? warp_totals[lane] : 0.0f;
    s = warp_sum(s);
    if (lane == 0) atomicAdd(out, s);
  }
}

template <class Op>
void map1(const char* name, Op op, cpu::NchwView<const float> x, cpu::NchwView<float> y,
          cudaStream_t stream) {
  if (x.n == 0 || sample_size(x) == 0) return;
  launch(name, map1_kernel<Op>, elementwise_grid(x.n, sample_size(x)), dim3(kThreads), 0, stream,
         op, x, y);
}

template <class Op>
void map2(const char* name, Op op, cpu::NchwView<const float> a, cpu::NchwView<const float> b,
          cpu::NchwView<float> y, cudaStream_t stream) {
  if (a.n == 0 || sample_size(a) == 0) return;
  launch(name, map2_kernel<Op>, elementwise_grid(a.n, sample_size(a)), dim3(kThreads), 0, stream,
         op, a, b, y);
}

}  // namespace

void relu_forward(cpu::NchwView<const float> x, cpu::NchwView<float> y, cudaStream_t stream) {
  map1("relu_forward", Relu{}, x, y, stream);
}

void relu_backward(cpu::NchwView<const float> y, cpu::NchwView<const float> grad_y,
                   cpu::NchwView<float> grad_x, cudaStream_t stream) {
  map2("relu_backward", ReluBackward{}, y, grad_y, grad_x, stream);
}

void add_forward(cpu::NchwView<const float> a, cpu::NchwView<const float> b, cpu::NchwView<float> y,
                 cudaStream_t stream) {
  map2("add_forward", Add{}, a, b, y, stream);
}

void scale_forward(cpu::NchwView<const float> x, float factor, float shift, cpu::NchwView<float> y,
                   cudaStream_t stream) {
  map1("scale_forward", Scale{factor, shift}, x, y, stream);
}

void clamp_forward(cpu::NchwView<const float> x, float lo, float hi, cpu::NchwView<float> y,
                   cudaStream_t stream) {
  map1("clamp_forward", Clamp{lo, hi}, x, y, stream);
}

void clamp_backward(cpu::NchwView<const float> x, float lo, float hi,
                    cpu::NchwView<const float> grad_y, cpu::NchwView<float> grad_x,
                    cudaStream_t stream) {
  map2("clamp_backward", ClampBackward{lo, hi}, x, grad_y, grad_x, stream);
}

void sum(cpu::NchwView<const float> x, float* out, cudaStream_t stream) {
  fill(cpu::contiguous_view(out, 1, 1, 1, 1), 0.0f, stream);
  if (x.n == 0 || sample_size(x) == 0) return;
  launch("sum", sum_kernel, elementwise_grid(x.n, sample_size(x)), dim3(kThreads), 0, stream, x,
         out);
}

void fill(cpu::NchwView<float> y, float value, cudaStream_t stream) {
  if (y.n == 0 || sample_size(y) == 0) return;
  launch("fill", fill_kernel, elementwise_grid(y.n, sample_size(y)), dim3(kThreads), 0, stream, y,
         value);
}

void accumulate(cpu::NchwView<float> dst, cpu::NchwView<const float> src, cudaStream_t stream) {
  map2("accumulate", Add{}, dst, src, dst, stream);
}

void lerp(cpu::NchwView<float> y, cpu::NchwView<const float> x, float weight, cudaStream_t stream) {
  map2("lerp", Lerp{weight}, y, x, y, stream);
}

}  // namespace deblur::cuda
