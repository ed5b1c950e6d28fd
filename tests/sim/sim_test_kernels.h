// Host launchers of the CUDA simulator's own test kernels (tests/sim/sim_test_kernels.cpp): small
// kernels that exercise one rule of the execution model each, some of them broken on purpose.
// Pointers are device pointers (DeviceBuffer); every launcher runs one launch.
#pragma once

#include "kernels/cuda/launch.cuh"

namespace deblur::sim_test {

// Each thread writes its slot of a static __shared__ array, __syncthreads, reads its neighbour's:
// out[block][t] = 1000 * block + (t + 1) % threads. fresh[block][t] is 1 when the slot read as
// poison (-1) before the thread wrote it.
void barrier_exchange(int* out, int* fresh, unsigned blocks, dim3 block);
// The same without the barrier: a data race the shuffled order exposes.
void racy_exchange(int* out, unsigned threads);
// fresh_static / fresh_dynamic[block][t]: 1 when the thread's float of the static / dynamic shared
// array was NaN at block start (each block then overwrites it).
void shared_poison(int* fresh_static, int* fresh_dynamic, unsigned blocks, unsigned threads);

// Threads below exit_below return before the __syncthreads the others wait at.
void partial_barrier(unsigned threads, unsigned exit_below);
// Odd and even threads wait at different __syncthreads.
void divergent_barriers(unsigned threads);
// out[0 / 1 / 2][t] = __syncthreads_count / _and / _or of (in[t] != 0).
void block_votes(const int* in, int* out, unsigned threads);

// For each thread t (linear index over `block`) and op k, out[k * threads + t] =
// k 0: __shfl_sync(in, (7 * lane + 3) % 32, width), 1: __shfl_up_sync(in, 3, width),
// 2: __shfl_down_sync(in, 5, width), 3: __shfl_xor_sync(in, 6, width),
// 4: __ballot_sync(in odd), 5: __any_sync(in > threshold), 6: __all_sync(in > -1),
// 7: __shfl_down_sync of float(in) by 1 (as bits), all with the full mask; threads a multiple
// of 32.
void warp_ops(const int* in, int* out, dim3 block, int width, int threshold);
// Two half-warp groups with masks 0x0000ffff and 0xffff0000 (__syncwarp, then shuffles):
// out[t] = xor-shuffle by 1 within the half; out[32 + t] = __shfl_sync from lane (lane + 16) % 32,
// outside the caller's mask (poison).
void half_warp_masks(const int* in, int* out);
// Warp 0 shuffles while warp 1 is already waiting at __syncthreads: out[t] = the warp's sum.
void warp_then_block(const int* in, int* out);
// Lane 7 exits; the others __shfl_down_sync with the full mask.
void shuffle_after_exit();
// Diverged half-warps meet at two different __syncwarp calls (legal since sm_70); out[t] = t.
void diverged_syncwarp(int* out);
// Lanes 0-15 call __syncwarp, lanes 16-31 __ballot_sync, both with the full mask.
void mismatched_collectives();
// Lane 0 calls __shfl_sync with a mask that does not include it.
void mask_without_caller();

// counters: [0] atomicAdd(int) of 1 per thread, [1] atomicMax(int) of the global thread index,
// [2] atomicMin(int) of it, [3] the threads whose atomicCAS(0 -> index + 1) on [4] succeeded,
// [5] atomicAdd(unsigned) of 2, [6] atomicMax(unsigned) of 3 * index; sums: [0] atomicAdd(float)
// of 0.5, [1] atomicAdd(double) of 0.25.
void atomics(int* counters, float* float_sum, double* double_sum, unsigned blocks,
             unsigned threads);
// order[phase * threads + k] = the k-th thread to run in phase 0 (before a __syncthreads) and
// phase 1 (after it), one block; counter is one device int, zeroed by the caller.
void record_order(int* order, int* counter, unsigned threads);
// out[5 * i ...] = __fdividef(a, b), rsqrtf(a), __expf(b), __saturatef(b), __ldg(&a) for
// a = in[2 i], b = in[2 i + 1].
void intrinsics(const float* in, float* out, unsigned count);
// y[t] = x[t] for t <= n: reads one element past the end of x.
void read_past_end(const float* x, float* y, unsigned n);
// An empty kernel with the given configuration.
void configured(dim3 grid, dim3 block, size_t shared_bytes);

}  // namespace deblur::sim_test
