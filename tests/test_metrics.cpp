// Image-quality metrics (infer/metrics.h) and `deblur metrics`: the fixture pairs against
// skimage and pytorch_msssim (tests/fixtures/metrics, data_tools/make_metrics_fixtures.py),
// identical images, the MS-SSIM size limit, errors, the JSON and the CLI.

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/check.h"
#include "infer/image_io.h"
#include "infer/metrics.h"
#include "tests/cli_testing.h"

#ifndef DEBLUR_CLI
#error "DEBLUR_CLI must be defined (CMake sets it to the deblur binary)"
#endif

using namespace deblur;
using namespace deblur::testing;

namespace {

const std::string kDir = std::string(DEBLUR_FIXTURE_DIR) + "/metrics/";

nlohmann::json expected_pairs() {
  std::ifstream in(kDir + "expected.json");
  REQUIRE(in);
  return nlohmann::json::parse(in).at("pairs");
}

const nlohmann::json& pair_named(const nlohmann::json& pairs, const std::string& name) {
  const auto it = std::find_if(pairs.begin(), pairs.end(),
                               [&](const nlohmann::json& pair) { return pair.at("name") == name; });
  INFO("pair " << name << " in " << kDir << "expected.json");
  REQUIRE(it != pairs.end());
  return *it;
}

// An 8-bit RGB image of smooth shading (varied by seed), so SSIM has structure to see.
Image shaded(int64_t width, int64_t height, int seed) {
  Image image{width, height, 3, 8, {}, {}};
  image.data8.resize(width * height * 3);
  for (int64_t y = 0; y < height; ++y)
    for (int64_t x = 0; x < width; ++x)
      for (int c = 0; c < 3; ++c)
        image.data8[(y * width + x) * 3 + c] = static_cast<uint8_t>(
            128 + 100 * std::sin(0.05 * x * (c + 1) + seed) * std::cos(0.04 * y + 2 * seed));
  return image;
}

std::string message_of(const Image& pred, const Image& target) {
  try {
    compare_images(pred, target);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("metrics match skimage and pytorch_msssim on the fixture pairs", "[metrics]") {
  const nlohmann::json pairs = expected_pairs();
  REQUIRE(pairs.size() == 5);
  for (const auto& pair : pairs) {
    const std::string name = pair.at("name");
    INFO("pair " << name);
    const Image pred = read_image(kDir + pair.at("pred").get<std::string>());
    const Image target = read_image(kDir + pair.at("target").get<std::string>());
    CHECK(pred.width == pair.at("width").get<int64_t>());
    CHECK(pred.height == pair.at("height").get<int64_t>());
    CHECK(pred.channels == pair.at("channels").get<int>());
    CHECK(pred.bits == pair.at("bits").get<int>());

    const ImageMetrics m = compare_images(pred, target);
    // PSNR: the same double squared differences, summed in another order than numpy's pairwise
    // mean: for ~100,000 values the MSE may differ by ~1e-11 relative, ~5e-11 dB.
    // Measured: under 1.2e-12 dB.
    CHECK(std::abs(m.psnr - pair.at("psnr").get<double>()) < 1e-9);
    // SSIM: skimage filters in double with the same Gaussian taps (scipy's, equal to ours to an
    // ulp), so only rounding in the filtered statistics differs. Measured: under 4e-15.
    CHECK(std::abs(m.ssim - pair.at("ssim").get<double>()) < 1e-12);
    if (pair.at("ms_ssim").is_null()) {
      CHECK(!m.ms_ssim);
      CHECK(pair.at("ms_ssim_double_window").is_null());
    } else {
      REQUIRE(m.ms_ssim);
      // pytorch_msssim with its window in double, like ours: only rounding differs.
      // Measured: under 2e-15.
      CHECK(std::abs(*m.ms_ssim - pair.at("ms_ssim_double_window").get<double>()) < 1e-12);
      // pytorch_msssim as shipped builds the window in float32 (taps up to 1e-8 from ours),
      // which moves MS-SSIM by ~2e-7 (measured: 1.5e-7 to 1.7e-7).
      CHECK(std::abs(*m.ms_ssim - pair.at("ms_ssim").get<double>()) < 5e-7);
    }
    CHECK(!m.identical());
  }
}

TEST_CASE("metrics of identical colour values", "[metrics]") {
  const nlohmann::json pairs = expected_pairs();
  const nlohmann::json& rgba = pair_named(pairs, "rgba_180x170");
  const Image target = read_image(kDir + rgba.at("target").get<std::string>());
  REQUIRE(target.channels == 4);
  // The fixture pair's alphas differ, so its match above shows alpha is ignored there too.
  const Image pred = read_image(kDir + rgba.at("pred").get<std::string>());
  CHECK(pred.data8[3] != target.data8[3]);

  // Alpha is not a colour: a different alpha still compares as identical.
  Image other_alpha = target;
  for (size_t i = 3; i < other_alpha.data8.size(); i += 4) other_alpha.data8[i] = uint8_t(i % 251);
  const ImageMetrics m = compare_images(other_alpha, target);
  CHECK(m.identical());
  CHECK(std::isinf(m.psnr));
  CHECK(m.psnr > 0);
  // Every window's SSIM is (a + C1) / (a + C1) * (b + C2) / (b + C2) = 1 up to rounding;
  // 1e-12 allows the mean's rounding over ~30,000 windows.
  CHECK(std::abs(m.ssim - 1.0) < 1e-12);
  REQUIRE(m.ms_ssim);
  CHECK(std::abs(*m.ms_ssim - 1.0) < 1e-12);

  // 16-bit q = 257 p is the same value in [0, 1] as 8-bit p.
  Image wide{target.width, target.height, 4, 16, {}, {}};
  for (uint8_t p : target.data8) wide.data16.push_back(uint16_t(257 * p));
  CHECK(compare_images(wide, target).identical());

  const std::string json = metrics_json(m);
  CHECK(json.find("\"psnr\": null") != std::string::npos);
  CHECK(json.find("\"identical\": true") != std::string::npos);
  const nlohmann::json parsed = nlohmann::json::parse(json);
  CHECK(parsed.at("psnr").is_null());
  CHECK(parsed.at("identical") == true);
}

TEST_CASE("metrics JSON holds every digit", "[metrics]") {
  const ImageMetrics m = compare_images(shaded(200, 170, 1), shaded(200, 170, 2));
  REQUIRE(m.ms_ssim);
  const std::string json = metrics_json(m);
  INFO(json);
  CHECK(json.find('\n') == std::string::npos);
  const nlohmann::json parsed = nlohmann::json::parse(json);
  CHECK(parsed.size() == 4);
  // The shortest round-trip form reads back as the very same doubles.
  CHECK(parsed.at("psnr").get<double>() == m.psnr);
  CHECK(parsed.at("ssim").get<double>() == m.ssim);
  CHECK(parsed.at("ms_ssim").get<double>() == *m.ms_ssim);
  CHECK(parsed.at("identical") == false);

  const std::string small = metrics_json(compare_images(shaded(64, 48, 1), shaded(64, 48, 2)));
  CHECK(nlohmann::json::parse(small).at("ms_ssim").is_null());
}

TEST_CASE("metrics: MS-SSIM needs the smaller side above 160", "[metrics]") {
  CHECK(compare_images(shaded(161, 170, 1), shaded(161, 170, 2)).ms_ssim.has_value());
  CHECK(!compare_images(shaded(160, 170, 1), shaded(160, 170, 2)).ms_ssim.has_value());
  CHECK(!compare_images(shaded(200, 160, 1), shaded(200, 160, 2)).ms_ssim.has_value());
  // 11 x 11 is the smallest SSIM: one window.
  const ImageMetrics one = compare_images(shaded(11, 11, 1), shaded(11, 11, 2));
  CHECK(std::isfinite(one.ssim));
  CHECK(!one.ms_ssim);
}

TEST_CASE("metrics errors", "[metrics]") {
  // Sizes differ: the message describes both images.
  std::string message = message_of(shaded(64, 48, 1), shaded(200, 180, 1));
  CHECK(message.find("64x48 RGB 8-bit") != std::string::npos);
  CHECK(message.find("200x180 RGB 8-bit") != std::string::npos);

  // Colour channels differ.
  Image gray{64, 48, 1, 8, std::vector<uint8_t>(64 * 48, 100), {}};
  message = message_of(gray, shaded(64, 48, 1));
  CHECK(message.find("64x48 gray 8-bit") != std::string::npos);

  // Too small for the 11-pixel window.
  message = message_of(shaded(10, 40, 1), shaded(10, 40, 2));
  CHECK(message.find("11") != std::string::npos);
  CHECK(message.find("10x40") != std::string::npos);

  // Pixel data that does not fit the stated geometry.
  Image short_data = shaded(20, 20, 1);
  short_data.data8.pop_back();
  message = message_of(short_data, shaded(20, 20, 1));
  CHECK(message.find("prediction") != std::string::npos);
  CHECK(message.find("1199") != std::string::npos);
}

TEST_CASE("deblur metrics CLI: the JSON and errors naming the file", "[metrics][cli]") {
  const nlohmann::json pairs = expected_pairs();
  for (const std::string name : {"rgb_200x180", "rgb_64x48"}) {
    const nlohmann::json& pair = pair_named(pairs, name);
    const std::string pred = kDir + pair.at("pred").get<std::string>();
    const std::string target = kDir + pair.at("target").get<std::string>();
    const CliRun run = run_cli("metrics --pred " + shell_quoted(pred) + " --target " + shell_quoted(target));
    INFO(run.err);
    REQUIRE(run.exit_code == 0);
    const nlohmann::json printed = nlohmann::json::parse(run.out);
    // The CLI prints compare_images' values exactly; the tolerances are the fixture test's.
    const ImageMetrics m = compare_images(read_image(pred), read_image(target));
    CHECK(printed.at("psnr").get<double>() == m.psnr);
    CHECK(printed.at("ssim").get<double>() == m.ssim);
    CHECK(std::abs(printed.at("psnr").get<double>() - pair.at("psnr").get<double>()) < 1e-9);
    CHECK(std::abs(printed.at("ssim").get<double>() - pair.at("ssim").get<double>()) < 1e-12);
    if (pair.at("ms_ssim").is_null()) {
      CHECK(printed.at("ms_ssim").is_null());
    } else {
      CHECK(std::abs(printed.at("ms_ssim").get<double>() - pair.at("ms_ssim").get<double>()) <
            5e-7);
    }
    CHECK(printed.at("identical") == false);
  }

  const std::string small = kDir + "rgb_64x48_pred.png", large = kDir + "rgb_200x180_target.png";
  const std::string missing = kDir + "no_such_image.png";

  CliRun run = run_cli("metrics --pred " + shell_quoted(missing) + " --target " + shell_quoted(large));
  INFO(run.err);
  CHECK(run.exit_code != 0);
  CHECK(run.err.find("deblur metrics: ") == 0);
  CHECK(run.err.find(missing) != std::string::npos);
  CHECK(run.err.find('\n') == run.err.size() - 1);  // one line

  run = run_cli("metrics --pred " + shell_quoted(small) + " --target " + shell_quoted(large));
  INFO(run.err);
  CHECK(run.exit_code != 0);
  CHECK(run.err.find(small) != std::string::npos);
  CHECK(run.err.find(large) != std::string::npos);
  CHECK(run.err.find("64x48") != std::string::npos);
  CHECK(run.err.find("200x180") != std::string::npos);
  CHECK(run.err.find('\n') == run.err.size() - 1);

  run = run_cli("metrics --pred " + shell_quoted(small));
  CHECK(run.exit_code != 0);
  CHECK(run.err.find("--target") != std::string::npos);

  run = run_cli("metrics --help");
  CHECK(run.exit_code == 0);
  CHECK(run.out.find("usage: deblur metrics") != std::string::npos);
}
