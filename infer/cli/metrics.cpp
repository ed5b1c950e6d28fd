// deblur metrics: PSNR, SSIM and MS-SSIM of a prediction against its target image, printed as
// one JSON object (infer/metrics.h says how each is computed and how the JSON reads).
#include "infer/metrics.h"

#include <cstdio>

#include "engine/check.h"
#include "infer/cli/args.h"
#include "infer/cli/commands.h"
#include "infer/image_io.h"

namespace deblur::cli {

int run_metrics(int argc, char** argv) {
  Args args(argc, argv, 2, {"help"});
  if (args.has("help")) {
    std::printf(
        "usage: deblur metrics --pred PRED --target TARGET\n\n"
        "Compares the prediction PRED with the target TARGET (PNG 8/16-bit, JPEG, BMP, TGA; same\n"
        "size and colour channels, at least 11x11) and prints one JSON line:\n"
        "  {\"psnr\": 31.2, \"ssim\": 0.93, \"ms_ssim\": 0.98, \"identical\": false}\n"
        "computed the standard way: colour values in [0, 1] (8-bit p/255, 16-bit q/65535; gray\n"
        "on its one channel; alpha ignored), data_range 1, whole image, no border crop.\n"
        "  psnr     10 log10(1 / MSE) in dB; null with \"identical\": true when the colour values\n"
        "           are all equal (PSNR is infinite, which JSON cannot write)\n"
        "  ssim     skimage structural_similarity(gaussian_weights=True, sigma=1.5,\n"
        "           use_sample_covariance=False, data_range=1), averaged over channels\n"
        "  ms_ssim  pytorch_msssim ms_ssim(data_range=1); null unless both sides exceed 160\n"
        "Numbers are printed with every digit needed to read back the exact double.\n");
    return 0;
  }
  args.allow_only({"help", "pred", "target"});
  const std::string pred_path = args.get("pred", ""), target_path = args.get("target", "");
  DEBLUR_CHECK(!pred_path.empty(), "--pred is required (see --help)");
  DEBLUR_CHECK(!target_path.empty(), "--target is required (see --help)");

  const Image pred = read_image(pred_path), target = read_image(target_path);
  ImageMetrics metrics;
  try {
    metrics = compare_images(pred, target);
  } catch (const Error& e) {
    throw Error(detail::concat("--pred ", pred_path, " vs --target ", target_path, ": ", e.what()));
  }
  std::printf("%s\n", metrics_json(metrics).c_str());
  return 0;
}

}  // namespace deblur::cli
