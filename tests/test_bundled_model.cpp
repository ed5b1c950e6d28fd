// The shipped model, models/deblur_unet.safetensors (models/README.md says how it was trained and
// what it scores): F16 DeblurUNet weights under 20 MB, the bundled samples' scores as that README
// records them, and what it was trained for, measured: photos under strong camera shake come
// out sharper.
#include <catch2/catch.hpp>

#include <filesystem>
#include <vector>

#include "engine/safetensors.h"
#include "infer/image_io.h"
#include "kernels/common/feather.h"
#include "infer/metrics.h"
#include "infer/predictor.h"
#include "layers/deblur_unet.h"
#include "train/synthetic_blur.h"

namespace deblur {
namespace {

namespace fs = std::filesystem;

const fs::path kModel = fs::path(DEBLUR_SOURCE_DIR) / "models" / "deblur_unet.safetensors";
const fs::path kSamples = fs::path(DEBLUR_SOURCE_DIR) / "samples";

// deblur infer's scores on the bundled samples (models/README.md), as compare_images and
// `deblur metrics` compute them.
struct RecordedScores {
  const char* input;
  double psnr, ssim;
};
constexpr RecordedScores kSampleScores[] = {{"blurry.png", 21.9936, 0.72609},
                                            {"blurry_strong.png", 19.1766, 0.56791}};

TEST_CASE("the bundled model is F16 DeblurUNet weights under 20 MB", "[model]") {
  CHECK(fs::file_size(kModel) < 20'000'000);
  const SafetensorsFile file = read_safetensors(kModel.string());
  int64_t parameters = 0;
  for (const TensorRecord& tensor : file.tensors) {
    CHECK(tensor.dtype == DType::F16);
    parameters += static_cast<int64_t>(tensor.values.size());
  }
  CHECK(parameters == DeblurUNet::kParameterCount);
}

// `sharp` blurred as --synthetic_blur blurs a training patch (kernels up to 31 pixels, linear
// light, noise), rounded to 8 bits as make-dataset writes it.
Image shaken(const Image& sharp, uint64_t seed) {
  const int64_t w = sharp.width, h = sharp.height;
  std::vector<float> planes(static_cast<size_t>(3 * w * h)), blurred(planes.size());
  for (int c = 0; c < 3; ++c)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        planes[static_cast<size_t>((c * h + y) * w + x)] = sharp.unit(x, y, c);
  train::apply_camera_shake(planes.data(), blurred.data(), w, h, 31, seed);
  Image out = make_image(w, h, 3, 8);
  for (int c = 0; c < 3; ++c)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        out.data8[static_cast<size_t>((y * w + x) * 3 + c)] =
            common::unit_to_8bit(blurred[static_cast<size_t>((c * h + y) * w + x)]);
  return out;
}

TEST_CASE("the bundled model: the samples' scores as recorded, and strong shake comes out sharper",
          "[model]") {
  const std::unique_ptr<DeblurUNet> model = load_deblur_unet(kModel.string());
  const Predictor predictor(*model);
  const Image sharp = read_image((kSamples / "sharp.png").string());

  // The main job (scripts/demo.sh): models/README.md's numbers for the bundled samples.
  for (const RecordedScores& recorded : kSampleScores) {
    const Image out = predictor.run(read_image((kSamples / recorded.input).string()));
    const ImageMetrics scores = compare_images(out, sharp);
    INFO(recorded.input << ": " << metrics_json(scores));
    CHECK(scores.psnr == Approx(recorded.psnr).margin(0.005));
    CHECK(scores.ssim == Approx(recorded.ssim).margin(0.0005));
  }

  // Six shakes of the sample's sharp photo (never trained on): every one under 23 dB must gain at
  // least 0.5 dB.
  int strong = 0;
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    const Image blurry = shaken(sharp, seed);
    const ImageMetrics in = compare_images(blurry, sharp);
    const ImageMetrics out = compare_images(predictor.run(blurry), sharp);
    INFO("seed " << seed << ": input " << metrics_json(in) << ", output " << metrics_json(out));
    if (in.psnr < 23.0) {
      ++strong;
      CHECK(out.psnr > in.psnr + 0.5);
      CHECK(out.ssim > in.ssim);
    }
  }
  CHECK(strong >= 2);
}

}  // namespace
}  // namespace deblur
