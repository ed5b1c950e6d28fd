// The CUDA simulator: the CUDA execution model mapped onto the CPU, so that kernels/cuda/*.cu
// compile with the host compiler (no __CUDACC__) and run in tests on machines with no GPU. Kernels
// stay plain CUDA C++; kernels/cuda/launch.cuh includes this header in the simulator build
// (DEBLUR_CUDA_SIM) and <cuda_runtime.h> otherwise. It is built to find bugs, not to hide them:
//
// - Threads. A block's threads are fibers (ucontext, 64 KB stacks over a guard page) on the
//   launching OS thread; blocks run one at a time, in a shuffled order, and launches one at a
//   time (a process-wide lock), synchronously (streams are accepted and ignored).
// - Order. Between barriers the live threads of a block run in a shuffled order (seeded:
//   set_seed or DEBLUR_SIM_SEED, so a failure reproduces), each until it reaches __syncthreads,
//   a warp collective or its end. Nothing runs in lock-step: code that relies on implicit warp
//   synchrony sees the race. Nor is a thread ever preempted: one spinning on memory that another
//   thread of the block writes, with no barrier in the loop, hangs the simulator.
// - __syncthreads (and _count/_and/_or): every thread of the block must arrive, at the same call.
//   A thread that exited while others wait, or threads waiting at different calls, fail the launch
//   with a deblur::Error naming the kernel, the block and the barrier's file:line.
// - Warp collectives (__shfl*_sync, __ballot_sync, __any_sync, __all_sync, __syncwarp) meet per
//   warp, separately from the block barrier: every lane of the mask must call the same collective
//   with the same mask (from any call site, as sm_70+ allows), else the launch fails naming the
//   lane at fault. Each lane posts its value and receives its result in slots of its own
//   (double-buffered), so a lane that has moved on to the next exchange cannot overwrite one
//   still being read. A shuffle from a lane outside the mask returns poison (all bits set: NaN
//   for float and double).
// - Shared memory is per block and filled with 0xFF bytes (NaN as float, -1 as int) at each block
//   start. Static `__shared__ T a[N]` is thread_local storage: kernels must be built into a shared
//   library whose thread_local storage holds nothing but __shared__ arrays (CUDA code has no
//   thread_local of its own), and the simulator refills that library's whole thread_local block
//   before every block (a kernel in the main program, or in a library with initialised
//   thread_local data, is refused). Dynamic shared memory is declared with
//   DEBLUR_DYNAMIC_SHARED(T, name): `extern __shared__ T name[]` has no host-compiler equivalent.
// - Checked mode (on unless DEBLUR_SIM_CHECKED=0 or set_checked(false)): cudaMalloc allocations
//   and the dynamic shared buffer end flush against a PROT_NONE guard page (one precedes them
//   too), so the first element past the end faults; during a launch a SIGSEGV/SIGBUS handler
//   prints the kernel, block, thread and the allocation overrun, then aborts. cudaMemcpy checks
//   that its device side lies inside one allocation. Fresh allocations are 0xFF-filled.
//   A flush end means an allocation's base is aligned to the largest power of two dividing its
//   size (at most 256), not always to 256 as cudaMalloc's is.
#pragma once

#if defined(__CUDACC__)
#error "cuda_sim.h is the host compiler's stand-in for CUDA; nvcc uses the real runtime"
#endif

#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

namespace deblur::sim {

struct Uint3 {
  unsigned x = 0, y = 0, z = 0;
};

struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr Dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
  constexpr Dim3(Uint3 v) : x(v.x), y(v.y), z(v.z) {}
};

// Streams exist only as a type: every launch runs to completion before it returns.
struct Stream;

// A call site in kernel code, captured by default arguments at the caller: it names a barrier in
// messages and tells one barrier from another.
struct Site {
  const char* file;
  unsigned line;
  Site(const char* caller_file = __builtin_FILE(), unsigned caller_line = __builtin_LINE())
      : file(caller_file), line(caller_line) {}
};

// The seed of the thread and block orders; also restarts the launch count that each launch's
// orders are derived from, so the same seed replays the same orders.
void set_seed(uint64_t seed);
void set_checked(bool on);
bool checked();

namespace detail {

// The built-in index variables of the running fiber, set by the scheduler before it resumes one.
struct BuiltIns {
  Uint3 thread_idx, block_idx;
  Dim3 block_dim, grid_dim;
};
extern BuiltIns g_builtins;

enum class BlockSync : uint8_t { Sync, Count, And, Or };
enum class WarpOp : uint8_t { SyncWarp, Shfl, ShflUp, ShflDown, ShflXor, Ballot, Any, All };

// Suspends the calling thread at a block barrier; returns the count/and/or of the predicates.
int block_barrier(BlockSync kind, int predicate, Site where);
// Suspends the calling lane at a warp collective; returns the lane's result bits (the shuffled
// value, or the ballot of the predicates in `value`).
uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t value, unsigned arg, int width,
                         Site where);
void* dynamic_shared_memory();

using Invoke = void (*)(const void* call);
void run_grid(const char* name, const char* file, int line, const void* kernel, Dim3 grid,
              Dim3 block, size_t shared_bytes, Invoke invoke, const void* call);

template <class T>
uint64_t to_bits(T value) {
  static_assert(std::is_arithmetic_v<T> && sizeof(T) <= 8, "shuffles move scalars");
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  return bits;
}

template <class T>
T from_bits(uint64_t bits) {
  T value;
  std::memcpy(&value, &bits, sizeof(T));
  return value;
}

// CUDA's atomics return the old value; atomic_ref keeps them correct even if blocks ever run on
// several OS threads.
template <class T, class Fn>
T atomic_update(T* address, Fn fn) {
  std::atomic_ref<T> ref(*address);
  T old = ref.load();
  while (!ref.compare_exchange_weak(old, fn(old))) {
  }
  return old;
}

}  // namespace detail

// Runs kernel(args...) over the grid; the arguments are converted to the kernel's parameter
// types once, as a CUDA launch does, and each thread gets its own copies.
template <class... Params, class... Args>
void launch(const char* name, const char* file, int line, void (*kernel)(Params...), Dim3 grid,
            Dim3 block, size_t shared_bytes, Args&&... args) {
  struct Call {
    void (*kernel)(Params...);
    std::tuple<std::decay_t<Params>...> params;
  };
  const Call call{kernel, std::tuple<std::decay_t<Params>...>(std::forward<Args>(args)...)};
  detail::run_grid(
      name, file, line, reinterpret_cast<const void*>(kernel), grid, block, shared_bytes,
      [](const void* c) {
        const Call& self = *static_cast<const Call*>(c);
        std::apply(self.kernel, self.params);
      },
      &call);
}

}  // namespace deblur::sim

// --- CUDA's names, in the global namespace where CUDA puts them.
using uint3 = deblur::sim::Uint3;
using dim3 = deblur::sim::Dim3;
using cudaStream_t = deblur::sim::Stream*;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
// Per block: see the file comment. 16-byte aligned so float4 views of it work as on the GPU.
#define __shared__ static thread_local __attribute__((aligned(16)))
#define DEBLUR_DYNAMIC_SHARED(T, name) \
  T* const name = static_cast<T*>(::deblur::sim::detail::dynamic_shared_memory())

inline constexpr int warpSize = 32;
inline const uint3& threadIdx = deblur::sim::detail::g_builtins.thread_idx;
inline const uint3& blockIdx = deblur::sim::detail::g_builtins.block_idx;
inline const dim3& blockDim = deblur::sim::detail::g_builtins.block_dim;
inline const dim3& gridDim = deblur::sim::detail::g_builtins.grid_dim;

// --- Barriers and warp collectives; `where` defaults to the caller's file:line.
inline void __syncthreads(deblur::sim::Site where = {}) {
  deblur::sim::detail::block_barrier(deblur::sim::detail::BlockSync::Sync, 0, where);
}
inline int __syncthreads_count(int predicate, deblur::sim::Site where = {}) {
  return deblur::sim::detail::block_barrier(deblur::sim::detail::BlockSync::Count, predicate,
                                            where);
}
inline int __syncthreads_and(int predicate, deblur::sim::Site where = {}) {
  return deblur::sim::detail::block_barrier(deblur::sim::detail::BlockSync::And, predicate, where);
}
inline int __syncthreads_or(int predicate, deblur::sim::Site where = {}) {
  return deblur::sim::detail::block_barrier(deblur::sim::detail::BlockSync::Or, predicate, where);
}

inline void __syncwarp(unsigned mask = 0xffffffffu, deblur::sim::Site where = {}) {
  deblur::sim::detail::warp_collective(deblur::sim::detail::WarpOp::SyncWarp, mask, 0, 0, 32,
                                       where);
}

template <class T>
T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize,
              deblur::sim::Site where = {}) {
  using namespace deblur::sim::detail;
  return from_bits<T>(warp_collective(WarpOp::Shfl, mask, to_bits(var),
                                      static_cast<unsigned>(src_lane), width, where));
}
template <class T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                 deblur::sim::Site where = {}) {
  using namespace deblur::sim::detail;
  return from_bits<T>(warp_collective(WarpOp::ShflUp, mask, to_bits(var), delta, width, where));
}
template <class T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                   deblur::sim::Site where = {}) {
  using namespace deblur::sim::detail;
  return from_bits<T>(warp_collective(WarpOp::ShflDown, mask, to_bits(var), delta, width, where));
}
template <class T>
T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize,
                  deblur::sim::Site where = {}) {
  using namespace deblur::sim::detail;
  return from_bits<T>(warp_collective(WarpOp::ShflXor, mask, to_bits(var),
                                      static_cast<unsigned>(lane_mask), width, where));
}

inline unsigned __ballot_sync(unsigned mask, int predicate, deblur::sim::Site where = {}) {
  using namespace deblur::sim::detail;
  return static_cast<unsigned>(
      warp_collective(WarpOp::Ballot, mask, predicate != 0, 0, warpSize, where));
}
inline int __any_sync(unsigned mask, int predicate, deblur::sim::Site where = {}) {
  using namespace deblur::sim::detail;
  return warp_collective(WarpOp::Any, mask, predicate != 0, 0, warpSize, where) != 0;
}
inline int __all_sync(unsigned mask, int predicate, deblur::sim::Site where = {}) {
  using namespace deblur::sim::detail;
  return warp_collective(WarpOp::All, mask, predicate != 0, 0, warpSize, where) == mask;
}

// --- Atomics (the overloads CUDA has for these types).
inline int atomicAdd(int* address, int value) {
  return std::atomic_ref<int>(*address).fetch_add(value);
}
inline unsigned atomicAdd(unsigned* address, unsigned value) {
  return std::atomic_ref<unsigned>(*address).fetch_add(value);
}
inline float atomicAdd(float* address, float value) {
  return std::atomic_ref<float>(*address).fetch_add(value);
}
inline double atomicAdd(double* address, double value) {
  return std::atomic_ref<double>(*address).fetch_add(value);
}
inline int atomicMax(int* address, int value) {
  return deblur::sim::detail::atomic_update(address,
                                            [=](int old) { return old > value ? old : value; });
}
inline unsigned atomicMax(unsigned* address, unsigned value) {
  return deblur::sim::detail::atomic_update(
      address, [=](unsigned old) { return old > value ? old : value; });
}
inline int atomicMin(int* address, int value) {
  return deblur::sim::detail::atomic_update(address,
                                            [=](int old) { return old < value ? old : value; });
}
inline int atomicCAS(int* address, int compare, int value) {
  std::atomic_ref<int>(*address).compare_exchange_strong(compare, value);
  return compare;  // the old value, whether or not it was replaced
}

// --- Fast-math intrinsics, computed exactly (the GPU's are approximations: compare with
// tolerances that allow for them).
inline float __fdividef(float a, float b) {
  return a / b;
}
inline float rsqrtf(float x) {
  return 1.0f / std::sqrt(x);
}
inline float __expf(float x) {
  return std::exp(x);
}
inline float __saturatef(float x) {
  return x > 1.0f ? 1.0f : (x > 0.0f ? x : 0.0f);  // NaN -> 0, as on the GPU
}
template <class T>
T __ldg(const T* address) {
  return *address;
}

// --- The runtime API subset DeviceBuffer and the launchers use (kernels/cuda/launch.cuh).
enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2 };
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4
};
cudaError_t cudaMalloc(void** pointer, size_t bytes);
cudaError_t cudaFree(void* pointer);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
// Page-locked host memory is plain host memory here; an asynchronous copy is done when it
// returns (the simulator runs everything synchronously), so events are always complete.
cudaError_t cudaMallocHost(void** pointer, size_t bytes);
cudaError_t cudaFreeHost(void* pointer);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream);
cudaError_t cudaMemsetAsync(void* pointer, int value, size_t bytes, cudaStream_t stream);
struct CUevent_sim;
using cudaEvent_t = CUevent_sim*;
inline constexpr unsigned cudaEventDisableTiming = 2;
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
// The host time between the two records: the work queued between them ran in between.
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);
const char* cudaGetErrorString(cudaError_t error);
