// deblur_bench_cuda: Google Benchmark suite of the CUDA kernels at the DeblurUNet's real shapes,
// with cuDNN and cuBLAS beside our convolutions in the same run.
//
//   deblur_bench_cuda [--smoke] [--benchmark_filter=REGEX] [--benchmark_format=json] ...
//
// Shapes: every distinct convolution of the U-Net at inference (batch 1, 512x512: forward) and
// at training (batch 24, 256x256, the seed's batch: forward, input gradient, weight and bias
// gradient); the up path's fused upsample + conv (forward and both gradients); GroupNorm + ReLU,
// max-pool, bilinear upsample and the channel concat at each level; MS-SSIM and Charbonnier on
// a training batch; clip + AdamW over the 8,636,451 parameters; one band of the feathered
// stitch of a 2048x2048 image in tiles of 512 overlapping by 64.
//
// Timing: CUDA events around each iteration on the engine stream, reported as manual time
// (UseManualTime), with the L2 flushed before every timed call (a 256 MiB memset, larger than
// any current GPU's L2); 30 iterations a case (a fixed count: Google Benchmark's minimum time
// would run a 5 us kernel tens of thousands of times, each behind a 256 MiB flush). Counters: GFLOP/s for convolutions (2 x MACs), GB/s for the rest (the
// bytes each kernel must read and write at least once) and pct_peak_bw: GB/s over this device's
// copy bandwidth, measured at start-up by a device-to-device copy (peak_copy_gbs in the
// context). Convolutions also run the vendor library on the same buffers in the same iteration
// (cuDNN for 3x3, cuBLAS for 1x1) and report cudnn_GFLOP/s and ours_over_cudnn (time ratio);
// builds without cuDNN leave those out. For the fused upsample + conv the baseline is what
// --conv-backend cudnn runs: forward, our upsample then cuDNN's conv; grad_input, cuDNN's then
// our upsample's backward; grad_weight, cuDNN's on the upsampled input the forward kept.
//
// --smoke: tiny shapes (batch 1, 32x32 levels, a 176x176 loss batch, 4096 parameters) and one
// iteration each. The simulator build (deblur_bench_cuda_sim) runs it in ctest so every case's
// code runs on every CI run; its times mean nothing.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "bench/random_floats.h"
#include "engine/cuda_allocator.h"
#include "engine/cudnn_conv.h"
#include "kernels/cuda/adamw.cuh"
#include "kernels/cuda/concat.cuh"
#include "kernels/cuda/conv2d.cuh"
#include "kernels/cuda/group_norm.cuh"
#include "kernels/cuda/losses.cuh"
#include "kernels/cuda/resample.cuh"
#include "kernels/cuda/ssim.cuh"
#include "kernels/cuda/stitch.cuh"

namespace {

using deblur::cpu::contiguous_view;
using deblur::cpu::NchwView;
using Buffer = deblur::cuda::DeviceBuffer<float>;
using Bytes = deblur::cuda::DeviceBuffer<unsigned char>;

bool g_smoke = false;
double g_peak_copy_gbs = 0;

using deblur::bench::random_floats;

Buffer random_buffer(int64_t count, uint32_t seed, float lo = -1, float hi = 1) {
  return Buffer(random_floats(count, seed, lo, hi));
}

Buffer zero_buffer(int64_t count) {
  return Buffer(std::vector<float>(static_cast<size_t>(count), 0.0f));
}

// Times work queued on the engine stream between two events, after flushing the L2.
class EventTimer {
 public:
  EventTimer() : flush_(g_smoke ? 4096 : size_t(256) << 20) {
    DEBLUR_CUDA_CHECK(cudaEventCreateWithFlags(&start_, 0));
    DEBLUR_CUDA_CHECK(cudaEventCreateWithFlags(&stop_, 0));
  }
  ~EventTimer() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;

  double seconds(const std::function<void()>& work) {
    DEBLUR_CUDA_CHECK(cudaMemsetAsync(flush_.data(), 0, flush_.size(), deblur::cuda_stream()));
    DEBLUR_CUDA_CHECK(cudaEventRecord(start_, deblur::cuda_stream()));
    work();
    DEBLUR_CUDA_CHECK(cudaEventRecord(stop_, deblur::cuda_stream()));
    DEBLUR_CUDA_CHECK(cudaEventSynchronize(stop_));
    float ms = 0;
    DEBLUR_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
    return ms / 1e3;
  }

 private:
  Bytes flush_;
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

// The device's copy bandwidth: a device-to-device copy reads and writes every byte once.
double measure_peak_copy_gbs() {
  const size_t bytes = g_smoke ? 1 << 16 : size_t(1) << 30;
  Bytes a(bytes), b(bytes);
  EventTimer timer;
  double best = 0;
  for (int repeat = 0; repeat < 5; ++repeat) {
    const double seconds = timer.seconds([&] {
      DEBLUR_CUDA_CHECK(cudaMemcpyAsync(b.data(), a.data(), bytes, cudaMemcpyDeviceToDevice,
                                        deblur::cuda_stream()));
    });
    best = std::max(best, 2.0 * double(bytes) / seconds / 1e9);
  }
  return best;
}

// Runs one case: `ours` is the timed body (manual time); `baseline`, when given, runs on the
// same buffers in the same iteration and is timed apart. Both run once untimed first (cuDNN
// picks its algorithm then, and the allocator fills its cache).
void run_case(benchmark::State& state, const std::function<void()>& ours, double flops,
              double bytes, const std::function<void()>& baseline = {}) {
  deblur::cuda_empty_cache();  // earlier cases' workspaces (cuDNN's run to a GiB)
  EventTimer timer;
  ours();
  if (baseline) baseline();
  double ours_total = 0, baseline_total = 0;
  for (auto _ : state) {
    const double seconds = timer.seconds(ours);
    state.SetIterationTime(seconds);
    ours_total += seconds;
    if (baseline) baseline_total += timer.seconds(baseline);
  }
  const double iterations = double(state.iterations());
  if (flops > 0) state.counters["GFLOP/s"] = flops * iterations / ours_total / 1e9;
  if (bytes > 0) {
    const double gbs = bytes * iterations / ours_total / 1e9;
    state.counters["GB/s"] = gbs;
    if (g_peak_copy_gbs > 0) state.counters["pct_peak_bw"] = 100.0 * gbs / g_peak_copy_gbs;
  }
  if (baseline) {
    if (flops > 0) state.counters["cudnn_GFLOP/s"] = flops * iterations / baseline_total / 1e9;
    state.counters["ours_over_cudnn"] = ours_total / baseline_total;
  }
}

// --- the shapes

struct Workload {
  const char* name;
  int64_t batch, size;  // level 0's height and width
};

Workload inference() { return g_smoke ? Workload{"infer_1x32", 1, 32} : Workload{"infer_1x512", 1, 512}; }
Workload training() { return g_smoke ? Workload{"train_1x32", 1, 32} : Workload{"train_24x256", 24, 256}; }

struct ConvShape {
  const char* layer;
  int64_t in_c, out_c, level;  // level 0 is full resolution
  int kernel;
  bool upsampled;  // the up path: input at level + 1, upsampled x2 inside the conv
};

// Every distinct convolution of DeblurUNet (base 32).
const ConvShape kConvShapes[] = {
    {"enc1.conv1", 3, 32, 0, 3, false},        {"enc1.conv2", 32, 32, 0, 3, false},
    {"enc2.conv1", 32, 64, 1, 3, false},       {"enc2.conv2", 64, 64, 1, 3, false},
    {"enc3.conv1", 64, 128, 2, 3, false},      {"enc3.conv2", 128, 128, 2, 3, false},
    {"enc4.conv1", 128, 256, 3, 3, false},     {"enc4.conv2", 256, 256, 3, 3, false},
    {"bottleneck.conv1", 256, 512, 4, 3, false}, {"bottleneck.conv2", 512, 512, 4, 3, false},
    {"up4", 512, 256, 3, 3, true},             {"dec4.conv1", 512, 256, 3, 3, false},
    {"up3", 256, 128, 2, 3, true},             {"dec3.conv1", 256, 128, 2, 3, false},
    {"up2", 128, 64, 1, 3, true},              {"dec2.conv1", 128, 64, 1, 3, false},
    {"up1", 64, 32, 0, 3, true},               {"dec1.conv1", 64, 32, 0, 3, false},
    {"final", 32, 3, 0, 1, false},
};

enum class ConvPass { Forward, GradInput, GradWeight };
const char* const kPassNames[] = {"forward", "grad_input", "grad_weight"};

void bench_conv(benchmark::State& state, ConvShape s, Workload work, ConvPass pass) {
  const int64_t n = work.batch, side = work.size >> s.level, low = side / 2;
  const int64_t in_side = s.upsampled ? low : side;
  const int64_t taps = int64_t(s.kernel) * s.kernel;
  Buffer x = random_buffer(n * s.in_c * in_side * in_side, 1);
  Buffer w = random_buffer(s.out_c * s.in_c * taps, 2, -0.1f, 0.1f);
  Buffer b = random_buffer(s.out_c, 3);
  Buffer y = random_buffer(n * s.out_c * side * side, 4);
  Buffer gw = zero_buffer(int64_t(w.size())), gb = zero_buffer(int64_t(b.size()));
  const auto xv = contiguous_view(x.data(), n, s.in_c, in_side, in_side);
  const auto yv = contiguous_view(y.data(), n, s.out_c, side, side);
  const cudaStream_t stream = deblur::cuda_stream();
  // The baseline's upsampled input (the up path as the cudnn backend runs it).
  Buffer up = zero_buffer(s.upsampled ? n * s.in_c * side * side : 1);
  const auto upv = contiguous_view(up.data(), n, s.in_c, side, side);
  const auto& base_x = s.upsampled ? upv : xv;
  size_t workspace_bytes = 0;
  if (pass == ConvPass::GradInput && s.upsampled)
    workspace_bytes = deblur::cuda::upsample_conv2d_backward_input_workspace_bytes(yv, s.in_c);
  if (pass == ConvPass::GradWeight)
    workspace_bytes =
        s.upsampled ? deblur::cuda::upsample_conv2d_backward_params_workspace_bytes(xv, yv, s.kernel)
                    : deblur::cuda::conv2d_backward_params_workspace_bytes(xv, yv, s.kernel);
  const deblur::CudaWorkspace workspace(workspace_bytes);
  const double flops = 2.0 * double(n) * side * side * s.in_c * s.out_c * taps;

  std::function<void()> ours, baseline;
  switch (pass) {
    case ConvPass::Forward:
      ours = [&] {
        if (s.upsampled)
          deblur::cuda::upsample_conv2d_forward(xv, w.data(), b.data(), s.kernel, yv, stream);
        else
          deblur::cuda::conv2d_forward(xv, w.data(), b.data(), s.kernel, yv, stream);
      };
      baseline = [&] {
        if (s.upsampled) deblur::cuda::upsample_bilinear2x_forward(xv, upv, stream);
        deblur::cudnn::conv2d_forward(base_x, w.data(), b.data(), s.kernel, yv);
      };
      break;
    case ConvPass::GradInput:
      ours = [&] {
        if (s.upsampled)
          deblur::cuda::upsample_conv2d_backward_input(yv, w.data(), s.kernel, xv,
                                                       workspace.data(), stream);
        else
          deblur::cuda::conv2d_backward_input(yv, w.data(), s.kernel, xv, stream);
      };
      baseline = [&] {
        deblur::cudnn::conv2d_backward_input(yv, w.data(), s.kernel, base_x);
        if (s.upsampled) deblur::cuda::upsample_bilinear2x_backward(upv, xv, stream);
      };
      break;
    case ConvPass::GradWeight:
      ours = [&] {
        if (s.upsampled)
          deblur::cuda::upsample_conv2d_backward_params(xv, yv, s.kernel, gw.data(), gb.data(),
                                                        workspace.data(), stream);
        else
          deblur::cuda::conv2d_backward_params(xv, yv, s.kernel, gw.data(), gb.data(),
                                               workspace.data(), stream);
      };
      // The cudnn backend's forward kept the upsampled input: made once, not timed.
      if (s.upsampled) deblur::cuda::upsample_bilinear2x_forward(xv, upv, stream);
      baseline = [&] {
        deblur::cudnn::conv2d_backward_params(base_x, yv, s.kernel, gw.data(), gb.data());
      };
      break;
  }
  if (!deblur::cudnn::available()) baseline = {};
  run_case(state, ours, flops, 0, baseline);
}

// --- GroupNorm + ReLU (8 groups), forward and backward

void bench_group_norm(benchmark::State& state, int64_t channels, int64_t side, int64_t batch,
                      bool backward) {
  const int64_t numel = batch * channels * side * side;
  Buffer x = random_buffer(numel, 5), y = zero_buffer(numel), gy = random_buffer(numel, 7);
  Buffer gx = zero_buffer(numel), gamma = random_buffer(channels, 8, 0.5f, 1.5f);
  Buffer beta = random_buffer(channels, 9), ggamma = zero_buffer(channels);
  Buffer gbeta = zero_buffer(channels);
  Buffer mean = zero_buffer(batch * 8), rstd = zero_buffer(batch * 8);
  auto view = [&](Buffer& v) { return contiguous_view(v.data(), batch, channels, side, side); };
  deblur::CudaWorkspace workspace(deblur::cuda::group_norm_workspace_bytes(view(x), 8));
  const cudaStream_t stream = deblur::cuda_stream();
  auto forward = [&] {
    deblur::cuda::group_norm_forward(view(x), gamma.data(), beta.data(), 8, 1e-5f, true, view(y),
                                     mean.data(), rstd.data(), workspace.data(), stream);
  };
  forward();
  // The least traffic: forward reads x and writes y; backward reads x, y and grad_y and writes
  // grad_x (both make a second pass over their inputs, which the L2 may or may not hold).
  if (!backward) return run_case(state, forward, 0, 4.0 * numel * 2);
  run_case(
      state,
      [&] {
        deblur::cuda::group_norm_backward(view(x), view(y), gamma.data(), mean.data(),
                                          rstd.data(), 8, true, view(gy), view(gx), ggamma.data(),
                                          gbeta.data(), workspace.data(), stream);
      },
      0, 4.0 * numel * 4);
}

// --- max-pool 2x2 and bilinear x2 upsample between a level and the one below, both passes

enum class Resample { PoolForward, PoolBackward, UpsampleForward, UpsampleBackward };
const char* const kResampleNames[] = {"max_pool2x2/forward", "max_pool2x2/backward",
                                      "upsample_bilinear2x/forward",
                                      "upsample_bilinear2x/backward"};

void bench_resample(benchmark::State& state, int64_t channels, int64_t side, int64_t batch,
                    Resample op) {
  const int64_t big = batch * channels * side * side, small = big / 4;
  Buffer hi = random_buffer(big, 10), lo = random_buffer(small, 11), ghi = zero_buffer(big);
  const auto hv = contiguous_view(hi.data(), batch, channels, side, side);
  const auto ghv = contiguous_view(ghi.data(), batch, channels, side, side);
  const auto lv = contiguous_view(lo.data(), batch, channels, side / 2, side / 2);
  const cudaStream_t stream = deblur::cuda_stream();
  std::function<void()> body;
  double bytes = 4.0 * (big + small);
  switch (op) {
    case Resample::PoolForward:
      body = [&] { deblur::cuda::max_pool2d_2x2_forward(hv, lv, stream); };
      break;
    case Resample::PoolBackward:  // reads x and grad_y, writes grad_x
      body = [&] { deblur::cuda::max_pool2d_2x2_backward(hv, lv, ghv, stream); };
      bytes = 4.0 * (2 * big + small);
      break;
    case Resample::UpsampleForward:
      body = [&] { deblur::cuda::upsample_bilinear2x_forward(lv, hv, stream); };
      break;
    case Resample::UpsampleBackward:
      body = [&] { deblur::cuda::upsample_bilinear2x_backward(hv, lv, stream); };
      break;
  }
  run_case(state, body, 0, bytes);
}

// --- concat of the up path's output and the skip (the copy the in-place path avoids)

void bench_concat(benchmark::State& state, int64_t channels, int64_t side, int64_t batch) {
  const int64_t half = batch * channels * side * side;
  Buffer a = random_buffer(half, 12), b = random_buffer(half, 13), y = zero_buffer(2 * half);
  const auto av = contiguous_view(a.data(), batch, channels, side, side);
  const auto bv = contiguous_view(b.data(), batch, channels, side, side);
  const auto yv = contiguous_view(y.data(), batch, 2 * channels, side, side);
  run_case(
      state, [&] { deblur::cuda::concat_forward(av, bv, yv, deblur::cuda_stream()); }, 0,
      4.0 * half * 4);
}

// --- the loss on a training batch of RGB images in [0, 1]

void bench_loss(benchmark::State& state, bool ms_ssim, bool backward) {
  const int64_t batch = g_smoke ? 1 : 24, side = g_smoke ? 176 : 256;
  const int64_t numel = batch * 3 * side * side;
  Buffer x = random_buffer(numel, 14, 0, 1), y = random_buffer(numel, 15, 0, 1);
  Buffer gx = zero_buffer(numel), gy = zero_buffer(numel), out(1);
  auto view = [&](Buffer& v) { return contiguous_view(v.data(), batch, 3, side, side); };
  const size_t ws = ms_ssim ? deblur::cuda::ms_ssim_workspace_bytes(view(x))
                            : deblur::cuda::loss_sum_workspace_bytes(view(x));
  deblur::CudaWorkspace workspace(ws);
  const cudaStream_t stream = deblur::cuda_stream();
  std::function<void()> body;
  if (ms_ssim && backward)
    body = [&] {
      deblur::cuda::ms_ssim_backward(view(x), view(y), 1.0, 1.0, view(gx), view(gy),
                                     workspace.data(), stream);
    };
  else if (ms_ssim)
    body = [&] {
      deblur::cuda::ms_ssim_forward(view(x), view(y), 1.0, out.data(), workspace.data(), stream);
    };
  else if (backward)
    body = [&] {
      deblur::cuda::charbonnier_backward(view(x), view(y), 1e-3f, 1.0f, view(gx), view(gy),
                                         stream);
    };
  else
    body = [&] {
      deblur::cuda::charbonnier_sum(view(x), view(y), 1e-3f, out.data(), workspace.data(),
                                    stream);
    };
  // The least traffic: read both images (backward: and write both gradients). MS-SSIM's
  // filtering reads more than that, so its GB/s is a lower bound on the traffic it makes.
  run_case(state, body, 0, 4.0 * numel * (backward ? 4 : 2));
}

// --- clip_grad_norm_ + AdamW over every parameter: the norm, the scale, one multi-tensor step

void bench_adamw(benchmark::State& state) {
  const int64_t n = g_smoke ? 4096 : 8'636'451;
  Buffer params = random_buffer(n, 16), grads = random_buffer(n, 17, -1e-3f, 1e-3f);
  Buffer m = zero_buffer(n), v = zero_buffer(n), lr(1), clip_scale(1), grad_norm(1);
  deblur::cuda::DeviceBuffer<int64_t> step(1);
  deblur::CudaWorkspace workspace(deblur::cuda::clip_grad_norm_workspace_bytes(n));
  const deblur::cuda::AdamWHyper hyper;
  const cudaStream_t stream = deblur::cuda_stream();
  deblur::cuda::adamw_set_schedule(lr.data(), step.data(), 2e-4f, 1, stream);
  run_case(
      state,
      [&] {
        deblur::cuda::clip_grad_norm_scale(grads.data(), n, hyper.max_norm, clip_scale.data(),
                                           grad_norm.data(), workspace.data(), stream);
        deblur::cuda::adamw_step(params.data(), grads.data(), m.data(), v.data(), n, hyper,
                                 lr.data(), step.data(), clip_scale.data(), stream);
      },
      // norm: read grads; step: read params, grads, m, v and write params, m, v.
      0, 4.0 * n * 8);
}

// --- one band of the feathered stitch: a row of tiles into the accumulator, finished rows out

void bench_stitch(benchmark::State& state) {
  const int64_t image = g_smoke ? 64 : 2048, tile = g_smoke ? 32 : 512,
                overlap = g_smoke ? 8 : 64;
  std::vector<int64_t> starts;
  for (int64_t x = 0; x + tile < image; x += tile - overlap) starts.push_back(x);
  starts.push_back(image - tile);  // the last tile on the edge, as the tile plan puts it
  const int64_t count = int64_t(starts.size());
  std::vector<Buffer> outputs;
  std::vector<deblur::cuda::StitchTile> tiles;
  for (int64_t i = 0; i < count; ++i) {
    outputs.push_back(random_buffer(3 * tile * tile, uint32_t(20 + i), 0, 1));
    deblur::cuda::StitchTile t;
    t.data = outputs.back().data();
    t.x0 = starts[i];
    t.fx = {tile, overlap, i > 0, i + 1 < count};
    t.fy = {tile, overlap, true, true};  // a band in the middle of the image
    tiles.push_back(t);
  }
  deblur::cuda::StitchBand band;
  band.width = image;
  band.channels = 3;
  band.rows = band.ring_rows = tile;
  band.tile_width = band.src_h = band.src_w = tile;
  band.first_row = starts[1];
  band.carried_end = starts[0] + tile;  // the band above's rows this one continues
  band.finished_end = starts[2];        // final once the next band starts below
  Buffer accumulator = zero_buffer(deblur::cuda::stitch_accumulator_floats(band));
  Bytes out(deblur::cuda::stitch_output_bytes(band, deblur::cuda::StitchOutput::Unit8));
  deblur::CudaWorkspace workspace(deblur::cuda::stitch_workspace_bytes(count));
  run_case(
      state,
      [&] {
        deblur::cuda::stitch_band(band, tiles.data(), count, accumulator.data(), out.data(),
                                  deblur::cuda::StitchOutput::Unit8, workspace.data(),
                                  deblur::cuda_stream());
      },
      // Read every tile; read the carried rows' sums and write the unfinished rows' (values and
      // weight); write the finished rows' pixels. The timed call includes the launcher's copy of
      // the tile list to the device, as every band in deblur infer pays it.
      0,
      4.0 * count * 3 * tile * tile +
          4.0 * 4 * image *
              double((band.carried_end - band.first_row) +
                     (band.first_row + band.rows - band.finished_end)) +
          double(out.size()));
}

template <class F, class... Args>
void add(const std::string& name, F function, Args... args) {
  benchmark::RegisterBenchmark(name.c_str(), function, args...)
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond)
      ->Iterations(g_smoke ? 1 : 30);
}

void register_all() {
  for (const ConvShape& s : kConvShapes) {
    const std::string shape = std::string(s.layer) + "/" + std::to_string(s.in_c) + "to" +
                              std::to_string(s.out_c);
    const Workload infer = inference(), train = training();
    add(std::string("conv/") + infer.name + "/" + shape + "/forward", bench_conv, s, infer,
        ConvPass::Forward);
    for (ConvPass pass : {ConvPass::Forward, ConvPass::GradInput, ConvPass::GradWeight})
      add(std::string("conv/") + train.name + "/" + shape + "/" + kPassNames[int(pass)],
          bench_conv, s, train, pass);
  }
  const Workload train = training();
  for (int level = 0; level < 5; ++level) {
    const int64_t channels = 32 << level, side = train.size >> level;
    const std::string name = std::string(train.name) + "/level" + std::to_string(level) + "_" +
                             std::to_string(channels) + "x" + std::to_string(side);
    for (bool backward : {false, true})
      add("group_norm_relu/" + name + (backward ? "/backward" : "/forward"), bench_group_norm,
          channels, side, train.batch, backward);
    if (level == 4) continue;
    for (Resample op : {Resample::PoolForward, Resample::PoolBackward, Resample::UpsampleForward,
                        Resample::UpsampleBackward})
      add(std::string(kResampleNames[int(op)]) + "/" + name, bench_resample, channels, side,
          train.batch, op);
    add("concat/" + name, bench_concat, channels, side, train.batch);
  }
  for (bool ms_ssim : {true, false})
    for (bool backward : {false, true})
      add(std::string(ms_ssim ? "ms_ssim" : "charbonnier") + "/" +
              (g_smoke ? "train_1x3x176" : "train_24x3x256") + (backward ? "/backward" : "/forward"),
          bench_loss, ms_ssim, backward);
  add(g_smoke ? "adamw_clip/4096" : "adamw_clip/8636451", bench_adamw);
  add(g_smoke ? "stitch_band/64_tiles32_overlap8" : "stitch_band/2048_tiles512_overlap64",
      bench_stitch);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--smoke") == 0) {
      g_smoke = true;
    } else {
      std::fprintf(stderr, "deblur_bench_cuda: unknown option '%s'\n", argv[i]);
      return 2;
    }
  }
  try {
    g_peak_copy_gbs = measure_peak_copy_gbs();
    benchmark::AddCustomContext("peak_copy_gbs", std::to_string(g_peak_copy_gbs));
    benchmark::AddCustomContext("baseline", deblur::cudnn::available() ? "cudnn/cublas" : "none");
    register_all();
    benchmark::RunSpecifiedBenchmarks();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "deblur_bench_cuda: %s\n", e.what());
    return 1;
  }
  benchmark::Shutdown();
  return 0;
}
