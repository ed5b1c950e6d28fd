// deblur make-dataset: sharp photos into GoPro-layout training and validation sets that the
// trainer's scan accepts, the same files for the same seed, and its errors.
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <string>

#include "infer/image_io.h"
#include "infer/metrics.h"
#include "tests/cli_testing.h"
#include "train/dataset.h"

namespace deblur {
namespace {

namespace fs = std::filesystem;
using testing::run_cli;
using testing::ScratchDir;
using testing::shell_quoted;

Image photo(int64_t w, int64_t h, int variant) {
  Image image = make_image(w, h, 3, 8);
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c)
        image.data8[static_cast<size_t>((y * w + x) * 3 + c)] = static_cast<uint8_t>(
            127 + 120 * std::sin(0.2 * x * (c + 1) + variant) * std::cos(0.15 * y + c));
  return image;
}

TEST_CASE("deblur make-dataset writes train and val sets the trainer reads", "[cli][make_dataset]") {
  ScratchDir dir;
  fs::create_directories(dir / "photos" / "nested");
  write_image((dir / "photos" / "one.png").string(), photo(90, 70, 1));
  write_image((dir / "photos" / "nested" / "two.jpg").string(), photo(80, 64, 2));
  write_image((dir / "photos" / "three.png").string(), photo(100, 60, 3));
  const std::string command = "make-dataset --input " + shell_quoted(dir / "photos") +
                              " --val 1 --copies 2 --max_side 50 --max_kernel 7 --seed 3 --output ";
  const auto run = run_cli(command + shell_quoted(dir / "out"));
  INFO(run.out << run.err);
  REQUIRE(run.exit_code == 0);
  CHECK_THAT(run.out, Catch::Contains("3 images: 2 for training"));

  const train::Dataset training = train::scan_pairs((dir / "out" / "train").string(), {});
  const train::Dataset validation = train::scan_pairs((dir / "out" / "val").string(), {});
  CHECK(training.layout == "gopro");
  CHECK(training.pairs.size() == 4);  // 2 photos x 2 copies
  CHECK(validation.pairs.size() == 1);
  for (const train::ImagePair& pair : training.pairs) {
    CHECK(std::max(pair.width, pair.height) <= 50);  // shrunk by a whole factor
    const ImageMetrics m = compare_images(read_image(pair.blur), read_image(pair.sharp));
    CHECK(m.psnr < 40.0);  // blurred, not copied
  }

  // The same seed makes the same files; a used output folder is refused.
  const auto again = run_cli(command + shell_quoted(dir / "again"));
  REQUIRE(again.exit_code == 0);
  for (const train::ImagePair& pair : training.pairs) {
    const fs::path relative = fs::relative(pair.blur, dir / "out");
    CHECK(read_image(pair.blur).data8 == read_image((dir / "again" / relative).string()).data8);
  }
  const auto reused = run_cli(command + shell_quoted(dir / "out"));
  CHECK(reused.exit_code == 1);
  CHECK_THAT(reused.err, Catch::Contains("already exists"));

  const auto too_few = run_cli("make-dataset --input " + shell_quoted(dir / "photos") +
                               " --val 3 --output " + shell_quoted(dir / "x"));
  CHECK(too_few.exit_code == 1);
  CHECK_THAT(too_few.err, Catch::Contains("would leave none for training"));
}

}  // namespace
}  // namespace deblur

namespace deblur {
namespace {

TEST_CASE("deblur make-dataset --procedural draws its own sharp images", "[cli][make_dataset]") {
  testing::ScratchDir dir;
  const auto run = testing::run_cli("make-dataset --procedural 3 --val 1 --copies 1 --size 64x48 "
                                    "--max_kernel 5 --output " +
                                    testing::shell_quoted(dir / "out"));
  INFO(run.out << run.err);
  REQUIRE(run.exit_code == 0);
  const train::Dataset training = train::scan_pairs((dir / "out" / "train").string(), {});
  REQUIRE(training.pairs.size() == 2);
  for (const train::ImagePair& pair : training.pairs) {
    CHECK(pair.width == 64);
    CHECK(pair.height == 48);
    // Not flat: shapes and texture give the pixels a spread (a flat image has none).
    const Image sharp = read_image(pair.sharp);
    double sum = 0.0, sum2 = 0.0;
    for (uint8_t v : sharp.data8) sum += v, sum2 += double(v) * v;
    const double n = double(sharp.data8.size());
    CHECK(std::sqrt(sum2 / n - (sum / n) * (sum / n)) > 20.0);
  }
  const auto both = testing::run_cli("make-dataset --procedural 3 --input x --output y");
  CHECK(both.exit_code == 1);
  CHECK_THAT(both.err, Catch::Contains("either --input DIR (photos) or --procedural N"));
}

}  // namespace
}  // namespace deblur
