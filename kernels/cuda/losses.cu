// Pixel loss CUDA kernels (semantics in losses.cuh: PyTorch's, as kernels/cpu/losses.h).
// The sum is two launches: loss_partials_kernel puts the sample in grid.y and strides over its
// contiguous C*H*W values along x, reduces each thread's terms in float, then the block's in a
// fixed shared-memory tree, and writes one float per block to the workspace; reduce_partials
// (one block) adds those partials in double, each thread a fixed strided subset and then a fixed
// tree, and writes the float total. The grid depends on the shape alone, so the order of every
// addition does too. The backward is one elementwise pass writing both gradients.
#include <algorithm>
#include <cstdint>

#include "kernels/cuda/losses.cuh"

namespace deblur::cuda {

namespace {

constexpr unsigned kThreads = 256;     // a power of two (the tree reductions halve it)
constexpr int64_t kItems = 4;          // values per thread, about
constexpr int64_t kMaxBlocksX = 1024;  // beyond that threads take more values (fewer partials)

dim3 loss_grid(const cpu::NchwView<const float>& v) {
  DEBLUR_CHECK(v.n <= 65535, "cuda loss kernels: batch ", v.n, " exceeds the grid's 65535");
  const int64_t per_block = kThreads * kItems;
  const int64_t blocks = (v.sample_size() + per_block - 1) / per_block;
  return dim3(static_cast<unsigned>(std::min(blocks, kMaxBlocksX)), static_cast<unsigned>(v.n));
}

bool is_empty(const cpu::NchwView<const float>& v) {
  return v.n == 0 || v.sample_size() == 0;
}

struct CharbonnierTerm {
  float eps2;
  __device__ float operator()(float d) const { return sqrtf(d * d + eps2); }
};
struct CharbonnierSlope {
  float eps2;
  __device__ float operator()(float d) const { return d / sqrtf(d * d + eps2); }
};
struct L1Term {
  __device__ float operator()(float d) const { return fabsf(d); }
};
struct L1Slope {
  // sign(d), 0 at 0 and at NaN (both comparisons false).
  __device__ float operator()(float d) const { return float((d > 0.0f) - (d < 0.0f)); }
};

template <class Term>
__global__ void loss_partials_kernel(Term term, cpu::NchwView<const float> pred,
                                     cpu::NchwView<const float> target, float* partials) {
  __shared__ float block_sums[kThreads];
  const int64_t size = pred.c * pred.h * pred.w;
  const float* p = pred.data + blockIdx.y * pred.batch_stride;
  const float* t = target.data + blockIdx.y * target.batch_stride;
  float s = 0.0f;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < size;
       k += static_cast<int64_t>(gridDim.x) * blockDim.x)
    s += term(p[k] - t[k]);
  block_sums[threadIdx.x] = s;
  __syncthreads();
  for (unsigned half = kThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) block_sums[threadIdx.x] += block_sums[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) partials[blockIdx.y * gridDim.x + blockIdx.x] = block_sums[0];
}

// One block: *out = the sum of partials[0, count), in double, in an order fixed by count.
__global__ void reduce_partials_kernel(const float* partials, int64_t count, float* out) {
  __shared__ double sums[kThreads];
  double s = 0.0;
  for (int64_t k = threadIdx.x; k < count; k += kThreads) s += partials[k];
  sums[threadIdx.x] = s;
  __syncthreads();
  for (unsigned half = kThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) sums[threadIdx.x] += sums[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) *out = static_cast<float>(sums[0]);
}

template <class Slope>
__global__ void loss_backward_kernel(Slope slope, cpu::NchwView<const float> pred,
                                     cpu::NchwView<const float> target, float scale,
                                     cpu::NchwView<float> grad_pred,
                                     cpu::NchwView<float> grad_target) {
  const int64_t size = pred.c * pred.h * pred.w;
  const float* p = pred.data + blockIdx.y * pred.batch_stride;
  const float* t = target.data + blockIdx.y * target.batch_stride;
  float* gp = grad_pred.data + blockIdx.y * grad_pred.batch_stride;
  float* gt = grad_target.data ? grad_target.data + blockIdx.y * grad_target.batch_stride : nullptr;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < size;
       k += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = scale * slope(p[k] - t[k]);
    gp[k] = g;
    if (gt) gt[k] = -g;
  }
}

template <class Term>
void loss_sum(const char* name, Term term, cpu::NchwView<const float> pred,
              cpu::NchwView<const float> target, float* out, void* workspace, cudaStream_t stream) {
  float* partials = static_cast<float*>(workspace);
  int64_t count = 0;
  if (!is_empty(pred)) {
    const dim3 grid = loss_grid(pred);
    count = static_cast<int64_t>(grid.x) * grid.y;
    launch(name, loss_partials_kernel<Term>, grid, dim3(kThreads), 0, stream, term, pred, target,
           partials);
  }
  // Also for an empty tensor, whose sum (0) must still land in *out.
  launch("reduce_partials", reduce_partials_kernel, dim3(1), dim3(kThreads), 0, stream,
         static_cast<const float*>(partials), count, out);
}

template <class Slope>
void loss_backward(const char* name, Slope slope, cpu::NchwView<const float> pred,
                   cpu::NchwView<const float> target, float scale, cpu::NchwView<float> grad_pred,
                   cpu::NchwView<float> grad_target, cudaStream_t stream) {
  if (is_empty(pred)) return;
  launch(name, loss_backward_kernel<Slope>, loss_grid(pred), dim3(kThreads), 0, stream, slope, pred,
         target, scale, grad_pred, grad_target);
}

}  // namespace

size_t loss_sum_workspace_bytes(cpu::NchwView<const float> pred) {
  if (is_empty(pred)) return 0;
  const dim3 grid = loss_grid(pred);
  return static_cast<size_t>(grid.x) * grid.y * sizeof(float);
}

void charbonnier_sum(cpu::NchwView<const float> pred, cpu::NchwView<const float> target, float eps,
                     float* out, void* workspace, cudaStream_t stream) {
  loss_sum("charbonnier_partials", CharbonnierTerm{eps * eps}, pred, target, out, workspace,
           stream);
}

void charbonnier_backward(cpu::NchwView<const float> pred, cpu::NchwView<const float> target,
                          float eps, float scale, cpu::NchwView<float> grad_pred,
                          cpu::NchwView<float> grad_target, cudaStream_t stream) {
  loss_backward("charbonnier_backward", CharbonnierSlope{eps * eps}, pred, target, scale, grad_pred,
                grad_target, stream);
}

void l1_sum(cpu::NchwView<const float> pred, cpu::NchwView<const float> target, float* out,
            void* workspace, cudaStream_t stream) {
  loss_sum("l1_partials", L1Term{}, pred, target, out, workspace, stream);
}

void l1_backward(cpu::NchwView<const float> pred, cpu::NchwView<const float> target, float scale,
                 cpu::NchwView<float> grad_pred, cpu::NchwView<float> grad_target,
                 cudaStream_t stream) {
  loss_backward("l1_backward", L1Slope{}, pred, target, scale, grad_pred, grad_target, stream);
}

}  // namespace deblur::cuda
