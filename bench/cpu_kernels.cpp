// deblur_bench_cpu: Google Benchmark suite of the CPU kernels at the DeblurUNet's real shapes.
//
//   deblur_bench_cpu [--benchmark_filter=REGEX] [--benchmark_format=json] ...
//
// Shapes: every distinct convolution of the U-Net (input channels, output channels, level) at
// inference (batch 1, 512x512) for the forward and the inference forward (Winograd where it
// applies; its GFLOP/s are the direct convolution's FLOPs over its time), and at training (batch 4, 256x256: the seed's
// batch of 24 divided by 6, to keep a run of the whole suite in minutes on a few cores; the
// per-image work is the same) for the forward, the input gradient and the weight gradient;
// GroupNorm + ReLU, pooling and upsampling at each level; MS-SSIM and Charbonnier on a training
// batch; AdamW over the 8.6M parameters.
//
// Counters: GFLOP/s (convolutions: 2 x MACs of the direct convolution; elementwise kernels: none)
// or GB/s (bytes the kernel must read and write at least once), and pct_peak: the convolutions'
// GFLOP/s as a percentage of this machine's float32 FMA peak, measured at start-up by an FMA loop
// on every thread (printed in the context as fp32_peak_gflops).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "bench/random_floats.h"
#include "kernels/cpu/adamw.h"
#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/conv2d_blocked.h"
#include "kernels/cpu/group_norm.h"
#include "kernels/cpu/losses.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/resample.h"
#include "kernels/cpu/ssim.h"

namespace {

using deblur::cpu::contiguous_view;
using deblur::cpu::NchwView;

// --- the machine's float32 peak: independent FMA chains on every thread.

#if defined(__x86_64__)
#define DEBLUR_PEAK_TARGET __attribute__((target("avx512f,fma")))
constexpr int kPeakLanes = 16;
#else
#define DEBLUR_PEAK_TARGET
constexpr int kPeakLanes = 4;
#endif
typedef float PeakVec __attribute__((vector_size(kPeakLanes * sizeof(float))));

// 12 independent accumulators hide the FMA latency (4 cycles) on two pipes.
DEBLUR_PEAK_TARGET float fma_loop(int64_t iterations, float seed) {
  PeakVec acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = PeakVec{} + seed * float(i + 1);
  const PeakVec a = PeakVec{} + 0.999999f, b = PeakVec{} + 1e-7f;
  for (int64_t it = 0; it < iterations; ++it)
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = acc[i] * a + b;
  float s = 0;
  for (int i = 0; i < 12; ++i)
    for (int l = 0; l < kPeakLanes; ++l) s += acc[i][l];
  return s;
}

double measure_fp32_peak_gflops() {
  bool avx512 = true;
#if defined(__x86_64__)
  avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
#endif
  if (!avx512) return 0;  // the loop needs AVX-512 here; no percentage is reported without it
  const int64_t iterations = 20'000'000;
  const int threads = deblur::cpu::num_threads();
  double best = 0;
  for (int repeat = 0; repeat < 3; ++repeat) {
    const auto start = std::chrono::steady_clock::now();
    float sink = 0;
#pragma omp parallel for reduction(+ : sink) num_threads(threads)
    for (int t = 0; t < threads; ++t) sink += fma_loop(iterations, 1e-3f * float(t + 1));
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    benchmark::DoNotOptimize(sink);
    best = std::max(best, 2.0 * 12 * kPeakLanes * double(iterations) * threads / seconds / 1e9);
  }
  return best;
}

double g_peak_gflops = 0;

using deblur::bench::random_floats;

// Each benchmark times its loop with a Stopwatch and reports plain counters from it (Google
// Benchmark's rate counters would print "GFLOP/s=../s").
class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_;
};

void report_flops(benchmark::State& state, const Stopwatch& watch, double flops_per_iteration) {
  const double gflops = flops_per_iteration * double(state.iterations()) / watch.seconds() / 1e9;
  state.counters["GFLOP/s"] = gflops;
  if (g_peak_gflops > 0) state.counters["pct_peak"] = 100.0 * gflops / g_peak_gflops;
}

void report_bytes(benchmark::State& state, const Stopwatch& watch, double bytes_per_iteration) {
  state.counters["GB/s"] = bytes_per_iteration * double(state.iterations()) / watch.seconds() / 1e9;
}

// --- convolution

// Forward: training's (conv2d_forward); ForwardDirect: the register-blocked direct kernel alone,
// the baseline Winograd is measured against.
enum class ConvPass { Forward, ForwardInference, GradInput, GradWeight, ForwardDirect };

struct ConvShape {
  const char* layer;
  int64_t in_c, out_c, level;  // level 0 is full resolution
  int kernel;
};

// Every distinct convolution of DeblurUNet (base 32); up_k's input is the upsampled tensor.
const ConvShape kConvShapes[] = {
    {"enc1.conv1", 3, 32, 0, 3},      {"enc1.conv2", 32, 32, 0, 3},
    {"enc2.conv1", 32, 64, 1, 3},     {"enc2.conv2", 64, 64, 1, 3},
    {"enc3.conv1", 64, 128, 2, 3},    {"enc3.conv2", 128, 128, 2, 3},
    {"enc4.conv1", 128, 256, 3, 3},   {"enc4.conv2", 256, 256, 3, 3},
    {"bottleneck.conv1", 256, 512, 4, 3}, {"bottleneck.conv2", 512, 512, 4, 3},
    {"up4", 512, 256, 3, 3},          {"dec4.conv1", 512, 256, 3, 3},
    {"up3", 256, 128, 2, 3},          {"dec3.conv1", 256, 128, 2, 3},
    {"up2", 128, 64, 1, 3},           {"dec2.conv1", 128, 64, 1, 3},
    {"up1", 64, 32, 0, 3},            {"dec1.conv1", 64, 32, 0, 3},
    {"final", 32, 3, 0, 1},
};

void bench_conv(benchmark::State& state, ConvShape shape, int64_t batch, int64_t size,
                ConvPass pass) {
  const int64_t side = size >> shape.level;
  const int64_t in_numel = batch * shape.in_c * side * side;
  const int64_t out_numel = batch * shape.out_c * side * side;
  auto x = random_floats(in_numel, 1);
  auto w = random_floats(shape.out_c * shape.in_c * shape.kernel * shape.kernel, 2, -0.1f, 0.1f);
  auto b = random_floats(shape.out_c, 3);
  auto y = random_floats(out_numel, 4);
  std::vector<float> gw(w.size(), 0.0f);
  auto xv = contiguous_view(x.data(), batch, shape.in_c, side, side);
  auto yv = contiguous_view(y.data(), batch, shape.out_c, side, side);
  const Stopwatch watch;
  for (auto _ : state) {
    switch (pass) {
      case ConvPass::Forward:
        deblur::cpu::conv2d_forward<float>(xv, w.data(), b.data(), shape.kernel, yv);
        break;
      case ConvPass::ForwardInference:
        deblur::cpu::conv2d_forward_inference(xv, w.data(), b.data(), shape.kernel, yv);
        break;
      case ConvPass::ForwardDirect:
        deblur::cpu::active_conv2d_isa().forward(xv, w.data(), b.data(), shape.kernel, yv);
        break;
      case ConvPass::GradInput:
        deblur::cpu::conv2d_backward_input<float>(yv, w.data(), shape.kernel, xv);
        break;
      case ConvPass::GradWeight:
        deblur::cpu::conv2d_backward_params<float>(xv, yv, shape.kernel, gw.data(), nullptr);
        break;
    }
    benchmark::ClobberMemory();
  }
  report_flops(state, watch, 2.0 * double(batch) * side * side * shape.in_c * shape.out_c * shape.kernel *
                       shape.kernel);
}

// --- GroupNorm + ReLU (8 groups), forward and backward

void bench_group_norm(benchmark::State& state, int64_t channels, int64_t side, int64_t batch,
                      bool backward) {
  const int64_t numel = batch * channels * side * side;
  auto x = random_floats(numel, 5), y = random_floats(numel, 6), gy = random_floats(numel, 7);
  std::vector<float> gx(static_cast<size_t>(numel)), gamma(size_t(channels), 1.0f), beta(size_t(channels), 0.0f);
  std::vector<float> mean(size_t(batch * 8)), rstd(size_t(batch * 8));
  std::vector<float> ggamma(static_cast<size_t>(channels)), gbeta(static_cast<size_t>(channels));
  auto view = [&](std::vector<float>& v) {
    return contiguous_view(v.data(), batch, channels, side, side);
  };
  deblur::cpu::group_norm_forward<float>(view(x), gamma.data(), beta.data(), 8, 1e-5f, true,
                                         view(y), mean.data(), rstd.data());
  const Stopwatch watch;
  for (auto _ : state) {
    if (backward)
      deblur::cpu::group_norm_backward<float>(view(x), view(y), gamma.data(), mean.data(),
                                              rstd.data(), 8, true, view(gy), view(gx),
                                              ggamma.data(), gbeta.data());
    else
      deblur::cpu::group_norm_forward<float>(view(x), gamma.data(), beta.data(), 8, 1e-5f, true,
                                             view(y), mean.data(), rstd.data());
    benchmark::ClobberMemory();
  }
  // forward: read x, write y; backward: read x, y, grad_y, write grad_x.
  report_bytes(state, watch, 4.0 * numel * (backward ? 4 : 2));
}

// --- resampling: 2x2 max pool (to the level below) and bilinear x2 upsample (from it)

void bench_resample(benchmark::State& state, int64_t channels, int64_t side, int64_t batch,
                    bool upsample) {
  const int64_t big = batch * channels * side * side, small = big / 4;
  auto hi = random_floats(big, 8), lo = random_floats(small, 9);
  auto hv = contiguous_view(hi.data(), batch, channels, side, side);
  auto lv = contiguous_view(lo.data(), batch, channels, side / 2, side / 2);
  const Stopwatch watch;
  for (auto _ : state) {
    if (upsample)
      deblur::cpu::upsample_bilinear2x_forward<float>(lv, hv);
    else
      deblur::cpu::max_pool2d_2x2_forward<float>(hv, lv);
    benchmark::ClobberMemory();
  }
  report_bytes(state, watch, 4.0 * (big + small));
}

// --- the loss: MS-SSIM (5 scales) and Charbonnier on a training batch of RGB patches

void bench_loss(benchmark::State& state, bool ms_ssim, bool backward) {
  const int64_t batch = 4, side = 256, numel = batch * 3 * side * side;
  auto x = random_floats(numel, 10, 0, 1), y = random_floats(numel, 11, 0, 1);
  std::vector<float> gx(static_cast<size_t>(numel)), gy(static_cast<size_t>(numel));
  auto view = [&](std::vector<float>& v) { return contiguous_view(v.data(), batch, 3, side, side); };
  const Stopwatch watch;
  for (auto _ : state) {
    if (ms_ssim && backward)
      deblur::cpu::ms_ssim_backward<float>(view(x), view(y), 1.0, 1.0, view(gx), view(gy));
    else if (ms_ssim)
      benchmark::DoNotOptimize(deblur::cpu::ms_ssim_forward<float>(view(x), view(y), 1.0));
    else if (backward)
      deblur::cpu::charbonnier_backward<float>(view(x), view(y), 1e-3f, 1.0f, view(gx), view(gy));
    else
      benchmark::DoNotOptimize(deblur::cpu::charbonnier_sum<float>(view(x), view(y), 1e-3f));
    benchmark::ClobberMemory();
  }
  report_bytes(state, watch, 4.0 * numel * (backward ? 4 : 2));
}

// --- AdamW over the reference model's 8,636,451 parameters, with the global norm

void bench_adamw(benchmark::State& state) {
  const int64_t n = 8'636'451;
  auto params = random_floats(n, 12), grads = random_floats(n, 13, -1e-3f, 1e-3f);
  std::vector<float> m(size_t(n), 0.0f), v(size_t(n), 0.0f);
  deblur::cpu::AdamWHyper hyper;
  int64_t step = 0;
  const Stopwatch watch;
  for (auto _ : state) {
    const double norm2 = deblur::cpu::grad_norm_squared<float>(grads.data(), n);
    const float scale = float(deblur::common::clip_grad_scale(norm2, hyper.max_norm));
    deblur::cpu::adamw_step<float>(params.data(), grads.data(), m.data(), v.data(), n, hyper,
                                   ++step, scale);
    benchmark::ClobberMemory();
  }
  // norm: read grads; step: read params, grads, m, v and write params, m, v.
  report_bytes(state, watch, 4.0 * n * 8);
}

void register_all() {
  const char* pass_names[] = {"forward", "forward_inference", "grad_input", "grad_weight",
                              "forward_direct"};
  for (const ConvShape& s : kConvShapes) {
    const std::string shape = std::string(s.layer) + "/" + std::to_string(s.in_c) + "to" +
                              std::to_string(s.out_c);
    for (ConvPass pass : {ConvPass::ForwardDirect, ConvPass::Forward, ConvPass::ForwardInference})
      benchmark::RegisterBenchmark(
          ("conv/infer_1x512/" + shape + "/" + pass_names[int(pass)]).c_str(), bench_conv, s, 1,
          512, pass)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    for (ConvPass pass :
         {ConvPass::ForwardDirect, ConvPass::Forward, ConvPass::GradInput, ConvPass::GradWeight})
      benchmark::RegisterBenchmark(
          ("conv/train_4x256/" + shape + "/" + pass_names[int(pass)]).c_str(), bench_conv, s, 4,
          256, pass)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
  }
  for (int level = 0; level < 5; ++level) {
    const int64_t channels = 32 << level, side = 256 >> level;
    const std::string name = "level" + std::to_string(level) + "_" + std::to_string(channels) +
                             "x" + std::to_string(side);
    for (bool backward : {false, true})
      benchmark::RegisterBenchmark(
          ("group_norm_relu/train_4/" + name + (backward ? "/backward" : "/forward")).c_str(),
          bench_group_norm, channels, side, 4, backward)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    if (level < 4)
      for (bool up : {false, true})
        benchmark::RegisterBenchmark(
            ((up ? "upsample_bilinear2x/train_4/" : "max_pool2x2/train_4/") + name).c_str(),
            bench_resample, channels, side, 4, up)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
  }
  for (bool ms_ssim : {true, false})
    for (bool backward : {false, true})
      benchmark::RegisterBenchmark((std::string(ms_ssim ? "ms_ssim" : "charbonnier") +
                                    "/train_4x3x256/" + (backward ? "backward" : "forward"))
                                       .c_str(),
                                   bench_loss, ms_ssim, backward)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
  benchmark::RegisterBenchmark("adamw_clip/8636451", bench_adamw)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  g_peak_gflops = measure_fp32_peak_gflops();
  benchmark::AddCustomContext("fp32_peak_gflops", std::to_string(g_peak_gflops));
  benchmark::AddCustomContext("threads", std::to_string(deblur::cpu::num_threads()));
  benchmark::AddCustomContext("conv_isa", deblur::cpu::active_conv2d_isa().name);
  register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
