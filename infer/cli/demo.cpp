// deblur demo: the engine end to end while no trained model exists. It builds the DeblurUNet
// with PyTorch's default initialisation, round-trips it through safetensors, and runs one
// forward pass and one training step (the brief's MS-SSIM + Charbonnier loss) on a synthetic
// sharp image blurred by a camera-shake path. The model is untrained: its output is not a
// deblurred image, and the demo says so.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "engine/check.h"
#include "engine/ops.h"
#include "infer/cli/args.h"
#include "infer/cli/commands.h"
#include "kernels/cpu/parallel.h"
#include "layers/deblur_unet.h"

namespace deblur::cli {

namespace {
double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// A test card in [-1, 1]: colour blocks, rings, a smooth ramp and fine stripes, so blur has
// edges and texture to destroy.
Tensor synthetic_sharp(int64_t size) {
  Tensor img = Tensor::empty({1, 3, size, size});
  float* p = img.data();
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < size; ++y)
      for (int64_t x = 0; x < size; ++x) {
        const double u = double(x) / size, v = double(y) / size;
        const int block = int((x / 32 + 2 * (y / 32) + c) % 4);
        double value = 0.25 * block - 0.4 + 0.3 * (u - v);
        const double r = std::hypot(u - 0.6, v - 0.4);
        if (r < 0.25) value = std::cos(60.0 * r + c) * 0.8;
        if (v > 0.75) value = ((x / (1 + y % 5)) % 2 ? 0.7 : -0.7) * (c == 1 ? 1.0 : 0.6);
        p[(c * size + y) * size + x] = float(std::clamp(value, -1.0, 1.0));
      }
  return img;
}

// GoPro-style blur: the average of the image shifted along a short diagonal shake path.
Tensor shake_blur(const Tensor& sharp) {
  const int64_t h = sharp.h(), w = sharp.w();
  const int steps = 9;
  Tensor out = Tensor::zeros(sharp.shape());
  const float* src = sharp.data();
  float* dst = out.data();
  for (int s = 0; s < steps; ++s) {
    const int64_t dx = s - steps / 2, dy = (s - steps / 2) / 2;
    for (int64_t c = 0; c < sharp.c(); ++c)
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x) {
          const int64_t sy = std::clamp<int64_t>(y + dy, 0, h - 1);
          const int64_t sx = std::clamp<int64_t>(x + dx, 0, w - 1);
          dst[(c * h + y) * w + x] += src[(c * h + sy) * w + sx] / steps;
        }
  }
  return out;
}

double psnr_01(const Tensor& a, const Tensor& b) {
  const auto va = a.to_vector(), vb = b.to_vector();
  double mse = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    const double d = (std::clamp(va[i], -1.0f, 1.0f) - std::clamp(vb[i], -1.0f, 1.0f)) / 2.0;
    mse += d * d;
  }
  return 10.0 * std::log10(1.0 / (mse / va.size()));
}

Tensor to_unit_range(const Tensor& t) {
  return scale(clamp(t, -1.0f, 1.0f), 0.5f, 0.5f);
}

// The brief's loss: 0.84 (1 - clamp(MS-SSIM, 0, 1)) + 0.16 Charbonnier, MS-SSIM on [0, 1].
Tensor combined_loss(const Tensor& pred, const Tensor& target) {
  Tensor msssim = clamp(ms_ssim(to_unit_range(pred), to_unit_range(target), 1.0f), 0.0f, 1.0f);
  Tensor charb = charbonnier(clamp(pred, -1.0f, 1.0f), clamp(target, -1.0f, 1.0f));
  return add(scale(msssim, -0.84f, 0.84f), scale(charb, 0.16f));
}
}  // namespace

int run_demo(int argc, char** argv) {
  Args args(argc, argv, 2, {"help"});
  if (args.has("help")) {
    std::printf(
        "usage: deblur demo [--size 256] [--seed 0] [--threads N] [--save PATH]\n\n"
        "Runs the engine end to end on an UNTRAINED DeblurUNet (PyTorch's default init from\n"
        "--seed): a safetensors round trip, one forward pass and one training step on a\n"
        "synthetic --size x --size image blurred by camera shake. --size must be a multiple of\n"
        "16 and above 160 (MS-SSIM's 5 scales). --save keeps the initialised model.\n");
    return 0;
  }
  args.allow_only({"help", "size", "seed", "threads", "save"});
  const int64_t size = args.get_int("size", 256);
  DEBLUR_CHECK(size % 16 == 0 && size > 160, "--size ", size,
               " must be a multiple of 16 above 160");
  cpu::set_num_threads(int(args.get_int("threads", 0)));

  std::printf(
      "deblur demo: the engine end to end on an UNTRAINED DeblurUNet. No trained model exists\n"
      "yet, so the output below is not a deblurred image; the demo shows the model, its file\n"
      "format, the forward pass and one training step working, with their cost.\n\n");

  DeblurUNet model(32, uint64_t(args.get_int("seed", 0)));
  const int64_t macs = model.forward_macs(size, size);
  std::printf("model      DeblurUNet, %lld parameters in %zu tensors (PyTorch default init)\n",
              static_cast<long long>(model.parameter_count()), model.parameters().size());

  const std::string save = args.get("save", "");
  const std::string path = !save.empty()
                               ? save
                               : (std::filesystem::temp_directory_path() /
                                  ("deblur_demo_" + std::to_string(::getpid()) + ".safetensors"))
                                     .string();
  model.save_state(path, {{"format", "pt"}, {"model", "DeblurUNet"}, {"trained", "no"}});
  DeblurUNet reloaded(32, 12345);
  reloaded.load_state(path);
  const auto a = model.parameter_values().to_vector(), b = reloaded.parameter_values().to_vector();
  std::printf("file       %s: %.1f MB, reloads %s\n", path.c_str(),
              std::filesystem::file_size(path) / 1e6, a == b ? "bit-identical" : "DIFFERENT");
  if (save.empty()) std::filesystem::remove(path);

  Tensor sharp = synthetic_sharp(size);
  Tensor blurred = shake_blur(sharp);
  std::printf(
      "input      1x3x%lldx%lld synthetic image, 9-step camera-shake blur: PSNR %.2f dB vs "
      "sharp\n",
      static_cast<long long>(size), static_cast<long long>(size), psnr_01(blurred, sharp));

  auto start = std::chrono::steady_clock::now();
  Tensor output;
  {
    NoGradGuard no_grad;
    output = model.forward(blurred);
  }
  double t = seconds_since(start);
  std::printf(
      "forward    %.3f s on %d threads: %.1f GMAC, %.1f GFLOP/s; untrained output PSNR "
      "%.2f dB\n",
      t, cpu::num_threads(), macs / 1e9, 2.0 * macs / t / 1e9, psnr_01(output, sharp));

  start = std::chrono::steady_clock::now();
  Tensor loss = combined_loss(model.forward(blurred), sharp);
  loss.backward();
  t = seconds_since(start);
  double squares = 0;
  const auto grads = model.parameter_grads().to_vector();
  for (float g : grads) squares += double(g) * g;
  std::printf("train step %.3f s (forward + backward): loss %.5f, gradient L2 norm %.5f\n", t,
              loss.item(), std::sqrt(squares));
  return 0;
}

}  // namespace deblur::cli
