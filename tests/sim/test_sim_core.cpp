// The CUDA simulator's own tests: barriers, shared memory, warp collectives, atomics, the seeded
// thread order, launch checks and checked mode's out-of-bounds report. Each rule is checked both
// ways where it can be: a correct kernel passes and a kernel broken on purpose fails loudly.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <climits>
#include <cmath>
#include <csignal>
#include <functional>
#include <string>
#include <vector>

#include "kernels/cuda/launch.cuh"
#include "tests/sim/sim_test_kernels.h"

namespace deblur {
namespace {

using Catch::Matchers::Contains;
using cuda::DeviceBuffer;

std::vector<int> iota_values(size_t count, int start = 0) {
  std::vector<int> v(count);
  for (size_t i = 0; i < count; ++i) v[i] = start + static_cast<int>(i);
  return v;
}

// Runs fn in a child process with stderr captured; returns that stderr and whether the child
// died of SIGABRT (a fault report ends that way).
struct ChildEnd {
  bool aborted = false;
  std::string stderr_text;
};
ChildEnd run_in_child(const std::function<void()>& fn) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  std::fflush(nullptr);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], STDERR_FILENO);
    try {
      fn();
    } catch (...) {
    }
    _exit(0);
  }
  close(fds[1]);
  ChildEnd end;
  char buffer[4096];
  ssize_t got;
  while ((got = read(fds[0], buffer, sizeof(buffer))) > 0) end.stderr_text.append(buffer, got);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  end.aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
  return end;
}

TEST_CASE("__syncthreads orders shared memory within each block, over a 3-D block") {
  const dim3 block(8, 4, 2);
  const unsigned threads = 64, blocks = 3;
  DeviceBuffer<int> out(blocks * threads), fresh(blocks * threads);
  sim_test::barrier_exchange(out.data(), fresh.data(), blocks, block);
  const auto got = out.download(), was_fresh = fresh.download();
  for (unsigned b = 0; b < blocks; ++b)
    for (unsigned t = 0; t < threads; ++t) {
      CHECK(got[b * threads + t] == static_cast<int>(1000 * b + (t + 1) % threads));
      CHECK(was_fresh[b * threads + t] == 1);  // every block starts from poison
    }
}

TEST_CASE("a missing __syncthreads is a visible race: shuffled order and poisoned shared memory") {
  sim::set_seed(1);
  DeviceBuffer<int> out(64);
  sim_test::racy_exchange(out.data(), 64);
  const auto got = out.download();
  int poisoned = 0;
  for (int v : got) poisoned += v == -1;
  // Each read runs before its neighbour's write about half the time.
  CHECK(poisoned > 0);
  CHECK(poisoned < 64);
}

TEST_CASE("static and dynamic shared memory are NaN at the start of every block") {
  const unsigned blocks = 4, threads = 96;
  DeviceBuffer<int> fresh_static(blocks * threads), fresh_dynamic(blocks * threads);
  sim_test::shared_poison(fresh_static.data(), fresh_dynamic.data(), blocks, threads);
  for (int v : fresh_static.download()) CHECK(v == 1);
  for (int v : fresh_dynamic.download()) CHECK(v == 1);
}

TEST_CASE("a __syncthreads that part of the block skips fails, naming kernel, block and line") {
  REQUIRE_THROWS_WITH(sim_test::partial_barrier(64, 10),
                      Contains("kernel 'partial_barrier'") && Contains("block (0,0,0)") &&
                          Contains("__syncthreads at ") && Contains("sim_test_kernels.cpp:") &&
                          Contains("reached by 54 of 64 threads") &&
                          Contains("10 exited without reaching it"));
  // And the simulator is usable afterwards.
  DeviceBuffer<int> out(64), fresh(64);
  sim_test::barrier_exchange(out.data(), fresh.data(), 1, dim3(64));
  CHECK(out.download()[0] == 1);
}

TEST_CASE("threads waiting at different __syncthreads fail") {
  REQUIRE_THROWS_WITH(
      sim_test::divergent_barriers(32),
      Contains("kernel 'divergent_barriers'") && Contains("threads wait at different barriers"));
}

TEST_CASE("__syncthreads_count, _and and _or") {
  const unsigned n = 96;
  std::vector<int> in(n, 1);
  in[5] = 0;
  in[70] = 0;
  DeviceBuffer<int> d_in(in), out(3 * n);
  sim_test::block_votes(d_in.data(), out.data(), n);
  const auto got = out.download();
  for (unsigned t = 0; t < n; ++t) {
    CHECK(got[t] == 94);
    CHECK(got[n + t] == 0);
    CHECK(got[2 * n + t] == 1);
  }
}

TEST_CASE("warp shuffles, ballot, any and all follow CUDA's rules for every width") {
  const dim3 block(16, 4);  // two warps over a 2-D block: lanes follow the linear index
  const unsigned n = 64;
  std::vector<int> in = iota_values(n, 100);
  in[40] = -5;                // warp 1 is not all > -1
  const int threshold = 120;  // only warp 1 has values above it
  DeviceBuffer<int> d_in(in);
  for (int width : {32, 16, 8, 4}) {
    DeviceBuffer<int> out(8 * n);
    sim_test::warp_ops(d_in.data(), out.data(), block, width, threshold);
    const auto got = out.download();
    for (unsigned t = 0; t < n; ++t) {
      const unsigned lane = t % 32, base = t - lane, w = static_cast<unsigned>(width);
      const unsigned segment_start = lane / w * w, segment_end = segment_start + w - 1;
      const unsigned idx = segment_start + (7 * lane + 3) % 32 % w;
      const unsigned up = lane - segment_start >= 3 ? lane - 3 : lane;
      const unsigned down = lane + 5 <= segment_end ? lane + 5 : lane;
      const unsigned x = (lane ^ 6u) <= segment_end ? lane ^ 6u : lane;
      unsigned ballot = 0;
      bool any = false, all = true;
      for (unsigned k = 0; k < 32; ++k) {
        ballot |= (in[base + k] % 2 != 0 ? 1u : 0u) << k;
        any |= in[base + k] > threshold;
        all &= in[base + k] > -1;
      }
      INFO("width " << width << ", thread " << t);
      CHECK(got[t] == in[base + idx]);
      CHECK(got[n + t] == in[base + up]);
      CHECK(got[2 * n + t] == in[base + down]);
      CHECK(got[3 * n + t] == in[base + x]);
      CHECK(static_cast<unsigned>(got[4 * n + t]) == ballot);
      CHECK(got[5 * n + t] == (any ? 1 : 0));
      CHECK(got[6 * n + t] == (all ? 1 : 0));
      CHECK(got[7 * n + t] == in[lane == 31 ? t : t + 1]);
    }
  }
}

TEST_CASE("half-warp masks meet separately, and a shuffle from outside the mask reads poison") {
  const std::vector<int> in = iota_values(32, 10);
  DeviceBuffer<int> d_in(in), out(64);
  sim_test::half_warp_masks(d_in.data(), out.data());
  const auto got = out.download();
  for (unsigned lane = 0; lane < 32; ++lane) {
    CHECK(got[lane] == in[lane ^ 1u]);
    CHECK(got[32 + lane] == -1);
  }
}

TEST_CASE("a warp exchanges while another warp waits at __syncthreads") {
  const std::vector<int> in = iota_values(64);
  DeviceBuffer<int> d_in(in), out(64);
  sim_test::warp_then_block(d_in.data(), out.data());
  const auto got = out.download();
  for (unsigned t = 0; t < 64; ++t) CHECK(got[t] == (t < 32 ? 496 : 1520));
}

TEST_CASE("diverged lanes of a warp may meet at different __syncwarp calls") {
  DeviceBuffer<int> out(32);
  sim_test::diverged_syncwarp(out.data());
  CHECK(out.download() == iota_values(32));
}

TEST_CASE("a warp collective missing a lane of its mask fails, naming the lane") {
  REQUIRE_THROWS_WITH(sim_test::shuffle_after_exit(),
                      Contains("kernel 'shuffle_after_exit'") && Contains("__shfl_down_sync at ") &&
                          Contains("can never complete") &&
                          Contains("lane 7 (thread (7,0,0)) has exited"));
  REQUIRE_THROWS_WITH(sim_test::mismatched_collectives(),
                      Contains("__syncwarp at ") && Contains("can never complete: lane 16") &&
                          Contains("waits at __ballot_sync with mask 0xffffffff"));
  REQUIRE_THROWS_WITH(
      sim_test::mask_without_caller(),
      Contains("thread (0,0,0)") && Contains("does not include the calling lane 0"));
}

TEST_CASE("atomics: add, max, min and CAS on int and unsigned, add on float and double") {
  const unsigned blocks = 3, threads = 128, total = blocks * threads;
  DeviceBuffer<int> counters(std::vector<int>{0, -1, INT_MAX, 0, 0, 0, 0});
  DeviceBuffer<float> float_sum(std::vector<float>{0.0f});
  DeviceBuffer<double> double_sum(std::vector<double>{0.0});
  sim_test::atomics(counters.data(), float_sum.data(), double_sum.data(), blocks, threads);
  const auto c = counters.download();
  CHECK(c[0] == static_cast<int>(total));
  CHECK(c[1] == static_cast<int>(total - 1));
  CHECK(c[2] == 0);
  CHECK(c[3] == 1);  // exactly one CAS won
  CHECK(c[4] >= 1);
  CHECK(static_cast<unsigned>(c[5]) == 2 * total);
  CHECK(static_cast<unsigned>(c[6]) == 3 * (total - 1));
  CHECK(float_sum.download()[0] == 0.5f * total);  // exact: multiples of 0.5 below 2^24
  CHECK(double_sum.download()[0] == 0.25 * total);
}

std::vector<int> thread_order(uint64_t seed, unsigned threads) {
  sim::set_seed(seed);
  DeviceBuffer<int> order(2 * threads), counter(std::vector<int>{0});
  sim_test::record_order(order.data(), counter.data(), threads);
  return order.download();
}

TEST_CASE("the thread order is shuffled between barriers and reproducible from the seed") {
  const unsigned n = 64;
  const auto a = thread_order(7, n), b = thread_order(7, n), c = thread_order(8, n);
  CHECK(a == b);
  CHECK(a != c);
  const std::vector<int> phase0(a.begin(), a.begin() + n), phase1(a.begin() + n, a.end());
  CHECK(phase0 != phase1);  // reshuffled after the barrier
  auto sorted = phase0;
  std::sort(sorted.begin(), sorted.end());
  CHECK(sorted == iota_values(n));  // every thread ran once per phase
  CHECK(phase0 != iota_values(n));
}

TEST_CASE("fast-math intrinsics and __ldg compute their exact counterparts") {
  const std::vector<float> in = {2.0f, 4.0f, 9.0f, -0.5f, 0.25f, 1.5f};
  DeviceBuffer<float> d_in(in), out(15);
  sim_test::intrinsics(d_in.data(), out.data(), 3);
  const auto got = out.download();
  for (unsigned i = 0; i < 3; ++i) {
    const float a = in[2 * i], b = in[2 * i + 1];
    CHECK(got[5 * i] == a / b);
    CHECK(got[5 * i + 1] == 1.0f / std::sqrt(a));
    CHECK(got[5 * i + 2] == std::exp(b));
    CHECK(got[5 * i + 3] == std::min(std::max(b, 0.0f), 1.0f));
    CHECK(got[5 * i + 4] == a);
  }
}

TEST_CASE("launch configurations the GPU rejects are rejected") {
  CHECK_THROWS_WITH(sim_test::configured(dim3(1), dim3(1025), 0),
                    Contains("kernel 'configured'") && Contains("invalid configuration"));
  CHECK_THROWS_WITH(sim_test::configured(dim3(1), dim3(2, 2, 65), 0),
                    Contains("invalid configuration"));
  CHECK_THROWS_WITH(sim_test::configured(dim3(1, 70000), dim3(32), 0),
                    Contains("invalid configuration"));
  CHECK_THROWS_WITH(sim_test::configured(dim3(1), dim3(32), 64 * 1024),
                    Contains("bytes of dynamic shared memory"));
  CHECK_NOTHROW(sim_test::configured(dim3(2, 3, 4), dim3(32, 2, 2), 1024));
}

__global__ void main_program_kernel() {}

TEST_CASE("a kernel in the main program is refused: only a library's thread_local is shared") {
  CHECK_THROWS_WITH(
      cuda::launch("main_program_kernel", main_program_kernel, dim3(1), dim3(1), 0, nullptr),
      Contains("kernel 'main_program_kernel'") && Contains("main program"));
}

TEST_CASE("device built-ins used outside a kernel fail") {
  CHECK_THROWS_WITH(__syncthreads(), Contains("__syncthreads called outside a kernel"));
}

TEST_CASE("cudaMemcpy in checked mode refuses a device range outside one allocation") {
  REQUIRE(sim::checked());
  DeviceBuffer<float> buffer(8);
  std::vector<float> host(9);
  CHECK(cudaMemcpy(host.data(), buffer.data(), 9 * sizeof(float), cudaMemcpyDeviceToHost) ==
        cudaErrorInvalidValue);
  CHECK(cudaMemcpy(buffer.data(), host.data(), 8 * sizeof(float), cudaMemcpyHostToDevice) ==
        cudaSuccess);
  CHECK(cudaMemcpy(host.data(), host.data() + 1, sizeof(float), cudaMemcpyDeviceToHost) ==
        cudaErrorInvalidValue);  // a host pointer passed as the device side
  for (float v : DeviceBuffer<float>(4).download()) CHECK(std::isnan(v));  // fresh memory
}

TEST_CASE("checked mode: reading one element past a device allocation aborts with a report") {
  REQUIRE(sim::checked());
  constexpr unsigned n = 100;
  const ChildEnd end = run_in_child([] {
    DeviceBuffer<float> x(std::vector<float>(n, 1.0f)), y(n + 1);
    sim_test::read_past_end(x.data(), y.data(), n);
  });
  INFO(end.stderr_text);
  CHECK(end.aborted);
  CHECK_THAT(end.stderr_text,
             Contains("SIGSEGV") && Contains("kernel 'read_past_end'") &&
                 Contains("block (1,0,0)") && Contains("thread (36,0,0)") &&
                 Contains("at byte 400 of a 400-byte device allocation: past its end"));
}

}  // namespace
}  // namespace deblur
