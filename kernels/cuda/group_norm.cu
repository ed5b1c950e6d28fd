// GroupNorm + ReLU CUDA kernels (semantics in group_norm.cuh: PyTorch's nn.GroupNorm then
// F.relu, biased variance, as kernels/cpu/group_norm.h).
//
// Forward, three launches:
//   1. stats: grid (chunks, N*groups). A group's C/groups channels are contiguous within a
//      sample, so each block reduces one contiguous chunk of its group into the sums of
//      d = x - K and d^2 in double, K being the group's first value: the shift keeps
//      E[d^2] - E[d]^2 from cancelling when |mean| >> std, and double keeps long sums exact
//      enough. The partial sums go to the workspace.
//   2. finalize: one thread per (sample, group) sums its chunks in order and writes mean and
//      rstd (float, for the backward, and double in the workspace, for pass 3).
//   3. normalise: one thread per element, y = x * a + b with a = rstd * gamma and
//      b = beta - mean * rstd * gamma folded in double exactly as the CPU twin does (+ReLU).
// Backward, three launches:
//   1. sums: grid (chunks, C, N); each block reduces a chunk of one channel's plane into the
//      sums of dz and dz * xhat (dz = dy masked by the ReLU) in double.
//   2. finalize: threads [0, N*groups) turn their group's channel sums into
//      mean(dxhat) and mean(dxhat * xhat) (dxhat = dz * gamma); threads [N*groups, +C) add
//      their channel's sums over samples and chunks to grad_beta and grad_gamma (+=).
//   3. dx = rstd * (dz * gamma - mean(dxhat) - xhat * mean(dxhat * xhat)), one thread per
//      element, in double as the CPU twin (a few FP64 operations per 12 bytes read: hidden by
//      memory traffic on datacenter GPUs).
// Every sum runs in an order fixed by the shapes: no atomics, reproducible bit for bit.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/cuda/group_norm.cuh"

namespace deblur::cuda {

namespace {

constexpr unsigned kThreads = 256;   // a multiple of the warp size (block_sum2 needs it)
constexpr int64_t kMinChunk = 1024;  // values per reducing block, at least
constexpr int64_t kMaxChunks = 256;  // reducing blocks per group or channel, at most

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// How `values` split into reducing blocks: `count` chunks of `len` values (the last shorter).
struct Chunking {
  int64_t len, count;
};
Chunking chunking(int64_t values) {
  const int64_t len = std::max(kMinChunk, ceil_div(values, kMaxChunks));
  return {len, ceil_div(values, len)};
}

// Workspace layout, in doubles: the partial sums, then two values per (sample, group).
int64_t forward_partials(cpu::NchwView<const float> x, int groups) {
  return x.n * groups * chunking(x.c / groups * x.h * x.w).count * 2;
}
int64_t backward_partials(cpu::NchwView<const float> x) {
  return x.n * x.c * chunking(x.h * x.w).count * 2;
}

__device__ __forceinline__ double warp_sum(double v) {
  for (unsigned offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

// The block's sums of a and b, in thread 0.
__device__ void block_sum2(double& a, double& b) {
  __shared__ double warp_a[32], warp_b[32];
  a = warp_sum(a);
  b = warp_sum(b);
  const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) {
    warp_a[warp] = a;
    warp_b[warp] = b;
  }
  __syncthreads();
  if (warp == 0) {
    a = lane < blockDim.x / 32 ? warp_a[lane] : 0.0;
    b = lane < blockDim.x / 32 ? warp_b[lane] : 0.0;
    a = warp_sum(a);
    b = warp_sum(b);
  }
}

// (std::min is a host function to nvcc.)
__device__ __forceinline__ int64_t min64(int64_t a, int64_t b) {
  return a < b ? a : b;
}

__device__ __forceinline__ int64_t pixel_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

// dz: dy where the ReLU passed its input (y > 0), else 0; dy itself without the ReLU.
__device__ __forceinline__ float masked(float dy, float y, bool relu) {
  return relu && !(y > 0.0f) ? 0.0f : dy;
}

__global__ void stats_kernel(cpu::NchwView<const float> x, int groups, int64_t chunk_len,
                             double* partials) {
  const int64_t ng = blockIdx.y, count = x.c / groups * x.h * x.w;
  const float* in = x.data + ng / groups * x.batch_stride + ng % groups * count;
  const double shift = in[0];
  const int64_t end = min64(count, (blockIdx.x + 1) * chunk_len);
  double s1 = 0.0, s2 = 0.0;
  for (int64_t i = blockIdx.x * chunk_len + threadIdx.x; i < end; i += blockDim.x) {
    const double d = in[i] - shift;
    s1 += d;
    s2 += d * d;
  }
  block_sum2(s1, s2);
  if (threadIdx.x != 0) return;
  double* p = partials + (ng * gridDim.x + blockIdx.x) * 2;
  p[0] = s1;
  p[1] = s2;
}

__global__ void stats_finalize_kernel(cpu::NchwView<const float> x, int groups, int64_t chunks,
                                      float eps, const double* partials, double* stats, float* mean,
                                      float* rstd) {
  const int64_t ng = pixel_index();
  if (ng >= x.n * groups) return;
  const int64_t count = x.c / groups * x.h * x.w;
  const double shift = x.data[ng / groups * x.batch_stride + ng % groups * count];
  double s1 = 0.0, s2 = 0.0;
  for (int64_t k = 0; k < chunks; ++k) {
    s1 += partials[(ng * chunks + k) * 2];
    s2 += partials[(ng * chunks + k) * 2 + 1];
  }
  const double m = s1 / count;
  const double mu = shift + m;
  const double inv_std = 1.0 / sqrt(fmax(s2 / count - m * m, 0.0) + double(eps));
  stats[ng * 2] = mu;
  stats[ng * 2 + 1] = inv_std;
  mean[ng] = static_cast<float>(mu);
  rstd[ng] = static_cast<float>(inv_std);
}

// Grid: (plane / kThreads, C, N).
__global__ void normalize_kernel(cpu::NchwView<const float> x, const float* gamma,
                                 const float* beta, int groups, bool relu, const double* stats,
                                 cpu::NchwView<float> y) {
  const int64_t p = pixel_index(), plane = x.h * x.w;
  if (p >= plane) return;
  const int64_t c = blockIdx.y, ng = blockIdx.z * groups + c / (x.c / groups);
  const double mu = stats[ng * 2], inv_std = stats[ng * 2 + 1];
  const float a = static_cast<float>(inv_std * gamma[c]);
  const float b = static_cast<float>(beta[c] - mu * inv_std * gamma[c]);
  const float z = x.data[blockIdx.z * x.batch_stride + c * plane + p] * a + b;
  y.data[blockIdx.z * y.batch_stride + c * plane + p] = relu && !(z > 0.0f || z != z) ? 0.0f : z;
}

// Grid: (chunks, C, N); partials[((n * C + c) * chunks + chunk) * 2 + {0, 1}] = sums of dz and
// dz * xhat.
__global__ void backward_sums_kernel(cpu::NchwView<const float> x, cpu::NchwView<const float> y,
                                     const float* mean, const float* rstd, int groups, bool relu,
                                     cpu::NchwView<const float> grad_y, int64_t chunk_len,
                                     double* partials) {
  const int64_t c = blockIdx.y, n = blockIdx.z, plane = x.h * x.w;
  const int64_t ng = n * groups + c / (x.c / groups);
  const double mu = mean[ng], inv_std = rstd[ng];
  const int64_t at = c * plane, end = min64(plane, (blockIdx.x + 1) * chunk_len);
  const float* xs = x.data + n * x.batch_stride + at;
  const float* gys = grad_y.data + n * grad_y.batch_stride + at;
  double dz_sum = 0.0, dz_xhat = 0.0;
  for (int64_t i = blockIdx.x * chunk_len + threadIdx.x; i < end; i += blockDim.x) {
    const double dz = masked(gys[i], relu ? y.data[n * y.batch_stride + at + i] : 0.0f, relu);
    dz_sum += dz;
    dz_xhat += dz * ((xs[i] - mu) * inv_std);
  }
  block_sum2(dz_sum, dz_xhat);
  if (threadIdx.x != 0) return;
  double* p = partials + ((n * x.c + c) * gridDim.x + blockIdx.x) * 2;
  p[0] = dz_sum;
  p[1] = dz_xhat;
}

__global__ void backward_finalize_kernel(int64_t n_samples, int64_t channels, int64_t plane,
                                         int groups, int64_t chunks, const float* gamma,
                                         const double* partials, double* coefs, float* grad_gamma,
                                         float* grad_beta) {
  const int64_t i = pixel_index(), groups_total = n_samples * groups;
  const int64_t per_group = channels / groups;
  // sums(n, c)[k]: the sum of dz (k = 0) or dz * xhat (k = 1) over the channel's chunks.
  const auto sums = [&](int64_t n, int64_t c, int k) {
    double s = 0.0;
    for (int64_t j = 0; j < chunks; ++j) s += partials[((n * channels + c) * chunks + j) * 2 + k];
    return s;
  };
  if (i < groups_total) {
    const int64_t n = i / groups, c0 = i % groups * per_group;
    double mean_dxhat = 0.0, mean_dxhat_xhat = 0.0;
    for (int64_t c = c0; c < c0 + per_group; ++c) {
      mean_dxhat += sums(n, c, 0) * gamma[c];
      mean_dxhat_xhat += sums(n, c, 1) * gamma[c];
    }
    coefs[i * 2] = mean_dxhat / (per_group * plane);
    coefs[i * 2 + 1] = mean_dxhat_xhat / (per_group * plane);
  } else if (i < groups_total + channels) {
    const int64_t c = i - groups_total;
    double g = 0.0, b = 0.0;
    for (int64_t n = 0; n < n_samples; ++n) {
      b += sums(n, c, 0);
      g += sums(n, c, 1);
    }
    if (grad_gamma) grad_gamma[c] += static_cast<float>(g);
    if (grad_beta) grad_beta[c] += static_cast<float>(b);
  }
}

// Grid: (plane / kThreads, C, N).
__global__ void backward_dx_kernel(cpu::NchwView<const float> x, cpu::NchwView<const float> y,
                                   const float* gamma, const float* mean, const float* rstd,
                                   int groups, bool relu, cpu::NchwView<const float> grad_y,
                                   const double* coefs, cpu::NchwView<float> grad_x) {
  const int64_t p = pixel_index(), plane = x.h * x.w;
  if (p >= plane) return;
  const int64_t c = blockIdx.y, n = blockIdx.z, at = c * plane + p;
  const int64_t ng = n * groups + c / (x.c / groups);
  const double mu = mean[ng], inv_std = rstd[ng];
  const double dz = masked(grad_y.data[n * grad_y.batch_stride + at],
                           relu ? y.data[n * y.batch_stride + at] : 0.0f, relu);
  const double xhat = (x.data[n * x.batch_stride + at] - mu) * inv_std;
  grad_x.data[n * grad_x.batch_stride + at] =
      static_cast<float>(inv_std * (dz * gamma[c] - coefs[ng * 2] - xhat * coefs[ng * 2 + 1]));
}

void check_shape(const char* name, cpu::NchwView<const float> x, int groups) {
  DEBLUR_CHECK(groups > 0 && x.c % groups == 0, name, ": ", x.c, " channels in ", groups,
               " groups");
  DEBLUR_CHECK(x.c <= 65535 && x.n <= 65535 && x.n * groups <= 65535, name, ": ", x.c,
               " channels and batch ", x.n, " exceed the grid");
}

dim3 element_grid(cpu::NchwView<const float> x) {
  return dim3(static_cast<unsigned>(ceil_div(x.h * x.w, kThreads)), static_cast<unsigned>(x.c),
              static_cast<unsigned>(x.n));
}

}  // namespace

size_t group_norm_workspace_bytes(cpu::NchwView<const float> x, int groups) {
  check_shape("group_norm_workspace_bytes", x, groups);
  const int64_t doubles =
      std::max(forward_partials(x, groups), backward_partials(x)) + x.n * groups * 2;
  return static_cast<size_t>(doubles) * sizeof(double);
}

void group_norm_forward(cpu::NchwView<const float> x, const float* gamma, const float* beta,
                        int groups, float eps, bool relu, cpu::NchwView<float> y, float* mean,
                        float* rstd, void* workspace, cudaStream_t stream) {
  check_shape("group_norm_forward", x, groups);
  if (x.n == 0 || x.c == 0 || x.h * x.w == 0) return;
  const Chunking chunks = chunking(x.c / groups * x.h * x.w);
  auto* partials = static_cast<double*>(workspace);
  double* stats = partials + forward_partials(x, groups);
  launch("group_norm_stats", stats_kernel,
         dim3(static_cast<unsigned>(chunks.count), static_cast<unsigned>(x.n * groups)),
         dim3(kThreads), 0, stream, x, groups, chunks.len, partials);
  launch("group_norm_stats_finalize", stats_finalize_kernel,
         dim3(static_cast<unsigned>(ceil_div(x.n * groups, kThreads))), dim3(kThreads), 0, stream,
         x, groups, chunks.count, eps, partials, stats, mean, rstd);
  launch("group_norm_forward", normalize_kernel, element_grid(x), dim3(kThreads), 0, stream, x,
         gamma, beta, groups, relu, stats, y);
}

void group_norm_backward(cpu::NchwView<const float> x, cpu::NchwView<const float> y,
                         const float* gamma, const float* mean, const float* rstd, int groups,
                         bool relu, cpu::NchwView<const float> grad_y, cpu::NchwView<float> grad_x,
                         float* grad_gamma, float* grad_beta, void* workspace,
                         cudaStream_t stream) {
  check_shape("group_norm_backward", x, groups);
  if (x.n == 0 || x.c == 0 || x.h * x.w == 0) return;  // no gradient to add to the parameters
  const Chunking chunks = chunking(x.h * x.w);
  auto* partials = static_cast<double*>(workspace);
  double* coefs = partials + backward_partials(x);
  launch("group_norm_backward_sums", backward_sums_kernel,
         dim3(static_cast<unsigned>(chunks.count), static_cast<unsigned>(x.c),
              static_cast<unsigned>(x.n)),
         dim3(kThreads), 0, stream, x, y, mean, rstd, groups, relu, grad_y, chunks.len, partials);
  launch("group_norm_backward_finalize", backward_finalize_kernel,
         dim3(static_cast<unsigned>(ceil_div(x.n * groups + x.c, kThreads))), dim3(kThreads), 0,
         stream, x.n, x.c, x.h * x.w, groups, chunks.count, gamma, partials, coefs, grad_gamma,
         grad_beta);
  launch("group_norm_backward", backward_dx_kernel, element_grid(x), dim3(kThreads), 0, stream, x,
         y, gamma, mean, rstd, groups, relu, grad_y, coefs, grad_x);
}

}  // namespace deblur::cuda
