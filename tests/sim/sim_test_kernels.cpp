// The CUDA simulator's own test kernels (launchers declared in sim_test_kernels.h), written as
// plain CUDA C++. They live in a shared library of their own because the simulator refills the
// thread_local storage of a kernel's library, where static __shared__ arrays live, at each block
// start (kernels/cuda/sim/cuda_sim.h).
#include "tests/sim/sim_test_kernels.h"

namespace deblur::sim_test {

namespace {

__device__ unsigned linear_thread() {
  return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
}

__device__ unsigned threads_per_block() {
  return blockDim.x * blockDim.y * blockDim.z;
}

__global__ void barrier_exchange_kernel(int* out, int* fresh) {
  __shared__ int slots[1024];
  const unsigned t = linear_thread(), n = threads_per_block();
  const unsigned base = blockIdx.x * n;
  fresh[base + t] = slots[t] == -1;
  slots[t] = static_cast<int>(1000 * blockIdx.x + t);
  __syncthreads();
  out[base + t] = slots[(t + 1) % n];
}

__global__ void racy_exchange_kernel(int* out) {
  __shared__ int slots[1024];
  const unsigned t = threadIdx.x;
  slots[t] = static_cast<int>(t);
  out[t] = slots[(t + 1) % blockDim.x];  // missing __syncthreads: on purpose
}

__global__ void shared_poison_kernel(int* fresh_static, int* fresh_dynamic) {
  __shared__ float tile[1024];
  DEBLUR_DYNAMIC_SHARED(float, dynamic);
  const unsigned t = threadIdx.x, i = blockIdx.x * blockDim.x + t;
  fresh_static[i] = tile[t] != tile[t];
  fresh_dynamic[i] = dynamic[t] != dynamic[t];
  tile[t] = 1.0f;
  dynamic[t] = 2.0f;
}

__global__ void partial_barrier_kernel(unsigned exit_below) {
  if (threadIdx.x < exit_below) return;
  __syncthreads();
}

__global__ void divergent_barriers_kernel() {
  if (threadIdx.x % 2)
    __syncthreads();
  else
    __syncthreads();
}

__global__ void block_votes_kernel(const int* in, int* out) {
  const unsigned t = threadIdx.x, n = blockDim.x;
  const int count = __syncthreads_count(in[t] != 0);
  const int all = __syncthreads_and(in[t] != 0);
  const int any = __syncthreads_or(in[t] != 0);
  out[t] = count;
  out[n + t] = all;
  out[2 * n + t] = any;
}

__global__ void warp_ops_kernel(const int* in, int* out, int width, int threshold) {
  const unsigned t = linear_thread(), n = threads_per_block(), lane = t % 32;
  const unsigned full = 0xffffffffu;
  const int v = in[t];
  out[t] = __shfl_sync(full, v, static_cast<int>((7 * lane + 3) % 32), width);
  out[n + t] = __shfl_up_sync(full, v, 3, width);
  out[2 * n + t] = __shfl_down_sync(full, v, 5, width);
  out[3 * n + t] = __shfl_xor_sync(full, v, 6, width);
  out[4 * n + t] = static_cast<int>(__ballot_sync(full, v % 2 != 0));
  out[5 * n + t] = __any_sync(full, v > threshold);
  out[6 * n + t] = __all_sync(full, v > -1);
  const float moved = __shfl_down_sync(full, static_cast<float>(v), 1);
  out[7 * n + t] = static_cast<int>(moved);
}

__global__ void half_warp_masks_kernel(const int* in, int* out) {
  const unsigned lane = threadIdx.x;
  const unsigned mask = lane < 16 ? 0x0000ffffu : 0xffff0000u;
  __syncwarp(mask);
  out[lane] = __shfl_xor_sync(mask, in[lane], 1);
  out[32 + lane] = __shfl_sync(mask, in[lane], static_cast<int>((lane + 16) % 32));
}

__device__ int warp_total(int v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

__global__ void warp_then_block_kernel(const int* in, int* out) {
  const unsigned t = threadIdx.x, warp = t / 32;
  int v = in[t];
  if (warp == 0) v = warp_total(v);
  __syncthreads();
  if (warp == 1) v = warp_total(v);
  out[t] = v;
}

__global__ void shuffle_after_exit_kernel() {
  if (threadIdx.x == 7) return;
  const int v = __shfl_down_sync(0xffffffffu, static_cast<int>(threadIdx.x), 1);
  (void)v;
}

__global__ void diverged_syncwarp_kernel(int* out) {
  const unsigned lane = threadIdx.x;
  if (lane < 16)
    __syncwarp();
  else
    __syncwarp();
  out[lane] = static_cast<int>(lane);
}

__global__ void mismatched_collectives_kernel() {
  if (threadIdx.x < 16)
    __syncwarp();
  else
    (void)__ballot_sync(0xffffffffu, 1);
}

__global__ void mask_without_caller_kernel() {
  const unsigned mask = threadIdx.x == 0 ? 0x2u : 0xfffffffeu;
  const int v = __shfl_sync(mask, 1, 1);
  (void)v;
}

__global__ void atomics_kernel(int* counters, float* float_sum, double* double_sum) {
  const int g = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  atomicAdd(&counters[0], 1);
  atomicMax(&counters[1], g);
  atomicMin(&counters[2], g);
  if (atomicCAS(&counters[4], 0, g + 1) == 0) atomicAdd(&counters[3], 1);
  atomicAdd(reinterpret_cast<unsigned*>(&counters[5]), 2u);
  atomicMax(reinterpret_cast<unsigned*>(&counters[6]), 3u * static_cast<unsigned>(g));
  atomicAdd(float_sum, 0.5f);
  atomicAdd(double_sum, 0.25);
}

__global__ void record_order_kernel(int* order, int* counter) {
  const int t = static_cast<int>(threadIdx.x);
  order[atomicAdd(counter, 1)] = t;
  __syncthreads();
  order[atomicAdd(counter, 1)] = t;
}

__global__ void intrinsics_kernel(const float* in, float* out, unsigned count) {
  const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const float a = in[2 * i], b = in[2 * i + 1];
  out[5 * i] = __fdividef(a, b);
  out[5 * i + 1] = rsqrtf(a);
  out[5 * i + 2] = __expf(b);
  out[5 * i + 3] = __saturatef(b);
  out[5 * i + 4] = __ldg(&in[2 * i]);
}

__global__ void read_past_end_kernel(const float* x, float* y, unsigned n) {
  const unsigned t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t <= n) y[t] = x[t];  // x has n elements: t == n is the bug
}

__global__ void empty_kernel() {}

}  // namespace

void barrier_exchange(int* out, int* fresh, unsigned blocks, dim3 block) {
  cuda::launch("barrier_exchange", barrier_exchange_kernel, dim3(blocks), block, 0, nullptr, out,
               fresh);
}

void racy_exchange(int* out, unsigned threads) {
  cuda::launch("racy_exchange", racy_exchange_kernel, dim3(1), dim3(threads), 0, nullptr, out);
}

void shared_poison(int* fresh_static, int* fresh_dynamic, unsigned blocks, unsigned threads) {
  cuda::launch("shared_poison", shared_poison_kernel, dim3(blocks), dim3(threads),
               threads * sizeof(float), nullptr, fresh_static, fresh_dynamic);
}

void partial_barrier(unsigned threads, unsigned exit_below) {
  cuda::launch("partial_barrier", partial_barrier_kernel, dim3(1), dim3(threads), 0, nullptr,
               exit_below);
}

void divergent_barriers(unsigned threads) {
  cuda::launch("divergent_barriers", divergent_barriers_kernel, dim3(1), dim3(threads), 0, nullptr);
}

void block_votes(const int* in, int* out, unsigned threads) {
  cuda::launch("block_votes", block_votes_kernel, dim3(1), dim3(threads), 0, nullptr, in, out);
}

void warp_ops(const int* in, int* out, dim3 block, int width, int threshold) {
  cuda::launch("warp_ops", warp_ops_kernel, dim3(1), block, 0, nullptr, in, out, width, threshold);
}

void half_warp_masks(const int* in, int* out) {
  cuda::launch("half_warp_masks", half_warp_masks_kernel, dim3(1), dim3(32), 0, nullptr, in, out);
}

void warp_then_block(const int* in, int* out) {
  cuda::launch("warp_then_block", warp_then_block_kernel, dim3(1), dim3(64), 0, nullptr, in, out);
}

void shuffle_after_exit() {
  cuda::launch("shuffle_after_exit", shuffle_after_exit_kernel, dim3(1), dim3(32), 0, nullptr);
}

void diverged_syncwarp(int* out) {
  cuda::launch("diverged_syncwarp", diverged_syncwarp_kernel, dim3(1), dim3(32), 0, nullptr, out);
}

void mismatched_collectives() {
  cuda::launch("mismatched_collectives", mismatched_collectives_kernel, dim3(1), dim3(32), 0,
               nullptr);
}

void mask_without_caller() {
  cuda::launch("mask_without_caller", mask_without_caller_kernel, dim3(1), dim3(32), 0, nullptr);
}

void atomics(int* counters, float* float_sum, double* double_sum, unsigned blocks,
             unsigned threads) {
  cuda::launch("atomics", atomics_kernel, dim3(blocks), dim3(threads), 0, nullptr, counters,
               float_sum, double_sum);
}

void record_order(int* order, int* counter, unsigned threads) {
  cuda::launch("record_order", record_order_kernel, dim3(1), dim3(threads), 0, nullptr, order,
               counter);
}

void intrinsics(const float* in, float* out, unsigned count) {
  cuda::launch("intrinsics", intrinsics_kernel, dim3((count + 63) / 64), dim3(64), 0, nullptr, in,
               out, count);
}

void read_past_end(const float* x, float* y, unsigned n) {
  cuda::launch("read_past_end", read_past_end_kernel, dim3((n + 64) / 64), dim3(64), 0, nullptr, x,
               y, n);
}

void configured(dim3 grid, dim3 block, size_t shared_bytes) {
  cuda::launch("configured", empty_kernel, grid, block, shared_bytes, nullptr);
}

}  // namespace deblur::sim_test
