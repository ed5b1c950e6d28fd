// AdamW and gradient-clipping CUDA kernels (semantics in adamw.cuh and kernels/common/adamw.h).
// grad_norm_partials_kernel: each thread adds the squares of its strided values in double (the
// square of a float is exact in double), then the block in a fixed shared-memory tree; one double
// per block goes to the workspace. clip_scale_kernel (one block) adds those partials in a fixed
// order and writes the clip scale. adamw_kernel: thread 0 of each block derives the step's
// constants from lr, step and the clip scale in device memory (once per block, not per element),
// then every thread updates its strided elements with common::adamw_update, the CPU's own code.
#include <algorithm>

#include "kernels/cuda/adamw.cuh"

namespace deblur::cuda {

namespace {

constexpr unsigned kThreads = 256;    // a power of two (the tree reductions halve it)
constexpr int64_t kItems = 4;         // values per thread, about
constexpr int64_t kMaxBlocks = 1024;  // beyond that threads take more values (fewer partials)
constexpr int64_t kMaxAdamWBlocks = 8192;

unsigned blocks_for(int64_t n, int64_t max_blocks) {
  const int64_t per_block = kThreads * kItems;
  return static_cast<unsigned>(std::clamp<int64_t>((n + per_block - 1) / per_block, 1, max_blocks));
}

__device__ __forceinline__ int64_t first_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ int64_t grid_stride() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x;
}

// The sum of every thread's s over the block, in an order fixed by the block size; valid in
// thread 0.
__device__ double block_sum(double s, double* sums) {
  sums[threadIdx.x] = s;
  __syncthreads();
  for (unsigned half = kThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) sums[threadIdx.x] += sums[threadIdx.x + half];
    __syncthreads();
  }
  return sums[0];
}

__global__ void grad_norm_partials_kernel(const float* grads, int64_t n, double* partials) {
  __shared__ double sums[kThreads];
  double s = 0.0;
  for (int64_t k = first_index(); k < n; k += grid_stride()) {
    const double g = grads[k];
    s += g * g;
  }
  const double total = block_sum(s, sums);
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

__global__ void clip_scale_kernel(const double* partials, int64_t count, double max_norm,
                                  float* clip_scale, float* grad_norm) {
  __shared__ double sums[kThreads];
  double s = 0.0;
  for (int64_t k = threadIdx.x; k < count; k += kThreads) s += partials[k];
  const double total = block_sum(s, sums);
  if (threadIdx.x == 0) {
    *clip_scale = static_cast<float>(common::clip_grad_scale(total, max_norm));
    if (grad_norm) *grad_norm = static_cast<float>(sqrt(total));
  }
}

__global__ void adamw_kernel(float* params, const float* grads, float* m, float* v, int64_t n,
                             AdamWHyper h, const float* lr, const int64_t* step,
                             const float* clip_scale) {
  __shared__ common::AdamWStep<float> constants;
  __shared__ float scale;
  if (threadIdx.x == 0) {
    constants = common::adamw_step_constants<float>(h, *lr, *step);
    scale = *clip_scale;
  }
  __syncthreads();
  const common::AdamWStep<float> s = constants;
  const float g_scale = scale;
  for (int64_t k = first_index(); k < n; k += grid_stride())
    common::adamw_update(params[k], m[k], v[k], grads[k] * g_scale, s);
}

// One thread writes the step's schedule: values travel as kernel arguments, so setting them is
// queued on the stream like any launch and the host never waits.
__global__ void set_schedule_kernel(float* lr, int64_t* step, float lr_value, int64_t step_value) {
  if (threadIdx.x == 0 && blockIdx.x == 0) {
    *lr = lr_value;
    *step = step_value;
  }
}

}  // namespace

void adamw_set_schedule(float* lr, int64_t* step, float lr_value, int64_t step_value,
                        cudaStream_t stream) {
  launch("adamw_set_schedule", set_schedule_kernel, dim3(1), dim3(1), 0, stream, lr, step,
         lr_value, step_value);
}

size_t clip_grad_norm_workspace_bytes(int64_t n) {
  return blocks_for(n, kMaxBlocks) * sizeof(double);
}

void clip_grad_norm_scale(const float* grads, int64_t n, double max_norm, float* clip_scale,
                          float* grad_norm, void* workspace, cudaStream_t stream) {
  DEBLUR_CHECK(n >= 0, "cuda clip_grad_norm_scale: negative size ", n);
  double* partials = static_cast<double*>(workspace);
  const unsigned blocks = blocks_for(n, kMaxBlocks);
  // Even for n == 0 (one block of zeros), so the scale is always written.
  launch("grad_norm_partials", grad_norm_partials_kernel, dim3(blocks), dim3(kThreads), 0, stream,
         grads, n, partials);
  launch("clip_scale", clip_scale_kernel, dim3(1), dim3(kThreads), 0, stream,
         static_cast<const double*>(partials), static_cast<int64_t>(blocks), max_norm, clip_scale,
         grad_norm);
}

void adamw_step(float* params, const float* grads, float* m, float* v, int64_t n,
                const AdamWHyper& h, const float* lr, const int64_t* step, const float* clip_scale,
                cudaStream_t stream) {
  DEBLUR_CHECK(n >= 0, "cuda adamw_step: negative size ", n);
  if (n == 0) return;
  launch("adamw", adamw_kernel, dim3(blocks_for(n, kMaxAdamWBlocks)), dim3(kThreads), 0, stream,
         params, grads, m, v, n, h, lr, step, clip_scale);
}

}  // namespace deblur::cuda
