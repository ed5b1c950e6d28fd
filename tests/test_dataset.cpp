// Training data: both folder layouts, every bad-data case with its message, the patch's crop,
// flip and turns against torch.rot90's mapping, and the loader's determinism (the same batches
// whatever the number of workers, and from the middle of an epoch on resume).
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/check.h"
#include "infer/image_io.h"
#include "tests/cli_testing.h"
#include "train/dataset.h"
#include "train/loader.h"

namespace deblur::train {
namespace {

namespace fs = std::filesystem;
using testing::ScratchDir;

// A w x h RGB image whose pixels encode their position and a per-image tag, so a patch's source
// can be read back from its values.
Image coded_image(int64_t w, int64_t h, int tag) {
  Image image = make_image(w, h, 3, 8);
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      uint8_t* px = &image.data8[static_cast<size_t>((y * w + x) * 3)];
      px[0] = static_cast<uint8_t>(x);
      px[1] = static_cast<uint8_t>(y);
      px[2] = static_cast<uint8_t>(tag);
    }
  return image;
}

// "p<k>.png" (built with a stream: GCC 12 warns falsely on "p" + std::to_string(k)).
std::string pair_name(int k) {
  std::ostringstream name;
  name << "p" << k << ".png";
  return name.str();
}

void write_pair(const fs::path& dir, const std::string& name, int64_t w, int64_t h, int tag) {
  fs::create_directories(dir / "blur");
  fs::create_directories(dir / "sharp");
  write_image((dir / "blur" / name).string(), coded_image(w, h, tag));
  write_image((dir / "sharp" / name).string(), coded_image(w, h, tag + 100));
}

std::string scan_error(const std::string& root, ScanOptions options = {}) {
  try {
    scan_pairs(root, options);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST_CASE("scan_pairs reads the flat and the GoPro layouts", "[dataset]") {
  ScratchDir flat, gopro;
  write_pair(flat.path(), "b.png", 40, 30, 1);
  write_pair(flat.path(), "a.png", 40, 30, 2);
  const Dataset f = scan_pairs(flat.path().string(), {});
  CHECK(f.layout == "flat");
  REQUIRE(f.pairs.size() == 2);
  CHECK(fs::path(f.pairs[0].blur).filename() == "a.png");  // name order
  CHECK(fs::path(f.pairs[0].sharp) == flat / "sharp" / "a.png");
  CHECK(f.pairs[0].width == 40);
  CHECK(f.pairs[0].height == 30);

  write_pair(gopro / "scene2", "x.png", 32, 32, 3);
  write_pair(gopro / "scene1", "y.png", 32, 32, 4);
  write_pair(gopro / "scene1", "z.png", 32, 32, 5);
  const Dataset g = scan_pairs(gopro.path().string(), {});
  CHECK(g.layout == "gopro");
  REQUIRE(g.pairs.size() == 3);
  CHECK(fs::path(g.pairs[0].blur) == gopro / "scene1" / "blur" / "y.png");
  CHECK(fs::path(g.pairs[2].blur) == gopro / "scene2" / "blur" / "x.png");
}

TEST_CASE("scan_pairs names the file of every bad-data case", "[dataset]") {
  ScratchDir dir;
  CHECK_THAT(scan_error((dir / "missing").string()), Catch::Contains("no such folder"));
  CHECK_THAT(scan_error(dir.path().string()), Catch::Contains("GoPro layout"));

  write_pair(dir.path(), "good.png", 40, 40, 1);
  SECTION("a blur image without its sharp partner") {
    write_image((dir / "blur" / "lonely.png").string(), coded_image(40, 40, 0));
    CHECK_THAT(scan_error(dir.path().string()), Catch::Contains("lonely.png has no partner"));
  }
  SECTION("a sharp image without its blur partner") {
    write_image((dir / "sharp" / "lonely.png").string(), coded_image(40, 40, 0));
    CHECK_THAT(scan_error(dir.path().string()),
               Catch::Contains((dir / "sharp" / "lonely.png").string() + " has no partner"));
  }
  SECTION("partners of different sizes") {
    write_image((dir / "blur" / "odd.png").string(), coded_image(40, 40, 0));
    write_image((dir / "sharp" / "odd.png").string(), coded_image(41, 40, 0));
    CHECK_THAT(scan_error(dir.path().string()), Catch::Contains("odd.png is 40x40 but its partner"));
  }
  SECTION("an image smaller than the patch") {
    ScanOptions options;
    options.min_side = 64;
    CHECK_THAT(scan_error(dir.path().string(), options),
               Catch::Contains("good.png: 40x40 is smaller than the 64x64 patch"));
  }
  SECTION("a file that is not an image") {
    std::ofstream((dir / "blur" / "junk.png").string()) << "not a png";
    std::ofstream((dir / "sharp" / "junk.png").string()) << "not a png";
    CHECK_THAT(scan_error(dir.path().string()), Catch::Contains("junk.png"));
  }
  SECTION("skip_bad leaves the bad pair out with a warning") {
    write_image((dir / "blur" / "lonely.png").string(), coded_image(40, 40, 0));
    ScanOptions options;
    options.skip_bad = true;
    const Dataset data = scan_pairs(dir.path().string(), options);
    CHECK(data.pairs.size() == 1);
    REQUIRE(data.warnings.size() == 1);
    CHECK_THAT(data.warnings[0], Catch::Contains("lonely.png has no partner") &&
                                     Catch::Contains("(skipped)"));
  }
}

TEST_CASE("scan_pairs with sharp_only takes every image under the folder", "[dataset]") {
  ScratchDir dir;
  fs::create_directories(dir / "a" / "b");
  write_image((dir / "a" / "b" / "one.png").string(), coded_image(20, 20, 0));
  write_image((dir / "two.jpg").string(), coded_image(20, 24, 0));
  ScanOptions options;
  options.sharp_only = true;
  const Dataset data = scan_pairs(dir.path().string(), options);
  CHECK(data.layout == "sharp");
  REQUIRE(data.pairs.size() == 2);
  CHECK(data.pairs[0].blur.empty());
}

// Where patch pixel (i, j) comes from in the source, read back from coded_image's values.
std::pair<int, int> source_of(const std::vector<float>& patch, int64_t p, int64_t i, int64_t j) {
  auto byte = [&](int ch) {
    return static_cast<int>(std::lround((patch[(ch * p + i) * p + j] + 1.0f) * 127.5f));
  };
  return {byte(0), byte(1)};  // (x, y)
}

TEST_CASE("extract_patch crops, flips and turns as torch.flip and torch.rot90", "[dataset]") {
  const Image image = coded_image(20, 16, 7);
  const int64_t p = 4;
  std::vector<float> out(3 * p * p);
  // The crop at (5, 3): rows 3..6, columns 5..8. Expected sources of output (i, j), worked out
  // from torch.rot90(crop, k, dims=(-2, -1)) on the flipped crop (torch.flip(crop, dims=(-1,))).
  struct Case {
    bool flip;
    int turns;
    std::pair<int, int> at00, at01, at10;  // (x, y) sources of (0,0), (0,1), (1,0)
  };
  const Case cases[] = {
      {false, 0, {5, 3}, {6, 3}, {5, 4}},  // identity
      {false, 1, {8, 3}, {8, 4}, {7, 3}},  // one turn: out[i][j] = crop[j][3 - i]
      {false, 2, {8, 6}, {7, 6}, {8, 5}},  // out[i][j] = crop[3 - i][3 - j]
      {false, 3, {5, 6}, {5, 5}, {6, 6}},  // out[i][j] = crop[3 - j][i]
      {true, 0, {8, 3}, {7, 3}, {8, 4}},   // mirrored columns
      {true, 1, {5, 3}, {5, 4}, {6, 3}},   // turn of the mirror: crop[j][i], a transpose
  };
  for (const Case& c : cases) {
    INFO("flip " << c.flip << ", turns " << c.turns);
    extract_patch(image, {5, 3, c.flip, c.turns}, p, out.data());
    CHECK(source_of(out, p, 0, 0) == c.at00);
    CHECK(source_of(out, p, 0, 1) == c.at01);
    CHECK(source_of(out, p, 1, 0) == c.at10);
    CHECK(out[2 * p * p] == Approx(7 / 127.5 - 1.0));  // the tag channel is channel 2
  }
  CHECK_THROWS_WITH(extract_patch(image, {17, 0, false, 0}, p, out.data()),
                    Catch::Contains("outside the 20x16 image"));
}

TEST_CASE("draw_patch covers every position and every flip and turn", "[dataset]") {
  std::vector<int> xs(3), ys(2), turns(4), flips(2);
  for (uint64_t seed = 0; seed < 400; ++seed) {
    const PatchSpec s = draw_patch(12, 11, 10, seed);
    REQUIRE(s.x0 >= 0);
    REQUIRE(s.x0 <= 2);
    REQUIRE(s.y0 >= 0);
    REQUIRE(s.y0 <= 1);
    ++xs[s.x0], ++ys[s.y0], ++turns[s.quarter_turns], ++flips[s.flip];
  }
  for (int n : xs) CHECK(n > 90);  // ~133 each; 90 is over 4 standard deviations below
  for (int n : ys) CHECK(n > 150);
  for (int n : turns) CHECK(n > 60);
  for (int n : flips) CHECK(n > 150);
  CHECK_THROWS_WITH(draw_patch(8, 20, 10, 0), Catch::Contains("does not fit a 8x20 image"));
}

std::vector<std::vector<float>> epoch_batches(const Dataset& data, int workers, int64_t epoch,
                                              int64_t first = 0) {
  LoaderOptions options;
  options.batch_size = 3;
  options.patch = 8;
  options.workers = workers;
  options.seed = 42;
  BatchLoader loader(data, options);
  loader.start_epoch(epoch, first);
  std::vector<std::vector<float>> out;
  Batch batch;
  while (loader.next(batch)) {
    CHECK(batch.index == first + static_cast<int64_t>(out.size()));
    std::vector<float> values = batch.blur.to_vector();
    const std::vector<float> sharp = batch.sharp.to_vector();
    values.insert(values.end(), sharp.begin(), sharp.end());
    out.push_back(values);
  }
  return out;
}

TEST_CASE("BatchLoader: the same batches with any number of workers and after a restart",
          "[dataset][loader]") {
  ScratchDir dir;
  for (int k = 0; k < 7; ++k) write_pair(dir.path(), pair_name(k), 24, 20, k);
  const Dataset data = scan_pairs(dir.path().string(), {});
  const auto serial = epoch_batches(data, 0, 5);
  REQUIRE(serial.size() == 3);                 // 7 samples in batches of 3
  CHECK(serial[2].size() == 2 * 1 * 3 * 8 * 8);  // the last batch holds one sample
  CHECK(epoch_batches(data, 3, 5) == serial);
  const auto resumed = epoch_batches(data, 2, 5, 1);
  REQUIRE(resumed.size() == 2);
  CHECK(resumed[0] == serial[1]);
  CHECK(resumed[1] == serial[2]);
  CHECK(epoch_batches(data, 1, 6) != serial);  // another epoch, another order and patches

  // Every pair appears once per epoch, blur and sharp from the same pair and the same place.
  std::vector<int> seen(7);
  for (const auto& values : serial) {
    const size_t half = values.size() / 2, sample = 3 * 8 * 8;
    for (size_t s = 0; s < half / sample; ++s) {
      const int blur_tag = static_cast<int>(std::lround((values[s * sample + 128] + 1) * 127.5));
      const int sharp_tag =
          static_cast<int>(std::lround((values[half + s * sample + 128] + 1) * 127.5));
      CHECK(sharp_tag == blur_tag + 100);
      for (size_t k = 0; k < 128; ++k) CHECK(values[s * sample + k] == values[half + s * sample + k]);
      ++seen[static_cast<size_t>(blur_tag)];
    }
  }
  CHECK(seen == std::vector<int>(7, 1));
}

TEST_CASE("BatchLoader reports an image that went bad after the scan", "[dataset][loader]") {
  ScratchDir dir;
  for (int k = 0; k < 4; ++k) write_pair(dir.path(), pair_name(k), 16, 16, k);
  const Dataset data = scan_pairs(dir.path().string(), {});
  std::ofstream((dir / "sharp" / "p2.png").string()) << "truncated";
  LoaderOptions options;
  options.batch_size = 4;
  options.patch = 8;
  options.workers = 2;
  BatchLoader loader(data, options);
  loader.start_epoch(0);
  Batch batch;
  CHECK_THROWS_WITH(loader.next(batch), Catch::Contains("p2.png"));
}

}  // namespace
}  // namespace deblur::train
