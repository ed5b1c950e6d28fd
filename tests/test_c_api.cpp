// The C API (infer/deblur.h) from C++: a model written by save_state loads and gives exactly the
// Predictor's bytes; strides, in-place runs, concurrent runs on one model; and every failure
// (bad path, mismatched file, bad options, NULL or bad arguments) is a return code and a
// message, never an exception or a crash.
#include <algorithm>
#include <catch2/catch.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "infer/deblur.h"
#include "infer/predictor.h"
#include "kernels/cpu/parallel.h"
#include "layers/deblur_unet.h"
#include "tests/cli_testing.h"

using namespace deblur;
using deblur::testing::ScratchDir;

namespace {
constexpr uint64_t kModelSeed = 7;

// A DeblurUNet (PyTorch's default init from kModelSeed) saved at `path`.
std::string write_model(const ScratchDir& dir) {
  const std::string path = (dir / "model.safetensors").string();
  DeblurUNet(32, kModelSeed).save_state(path);
  return path;
}

std::vector<unsigned char> random_rgb(int width, int height, uint32_t seed) {
  std::vector<unsigned char> rgb(size_t(3) * width * height);
  std::mt19937 rng(seed);
  for (unsigned char& v : rgb) v = static_cast<unsigned char>(rng() & 0xff);
  return rgb;
}

// The C API's options as TileOptions, for the Predictor it is compared with.
TileOptions tiles_of(const deblur_options& options) {
  return {options.tile, options.overlap};
}

// Small tiles, so a 48x32 image runs as several blended tiles.
deblur_options small_tiles() {
  deblur_options options = deblur_default_options();
  options.tile = 32;
  options.overlap = 8;
  return options;
}

// Owns a loaded model for the length of a test.
struct LoadedModel {
  deblur_model* model;
  explicit LoadedModel(const std::string& path) : model(deblur_model_load(path.c_str())) {}
  ~LoadedModel() { deblur_model_free(model); }
  LoadedModel(const LoadedModel&) = delete;
  LoadedModel& operator=(const LoadedModel&) = delete;
};

// Runs packed rows through the API; REQUIREs success.
std::vector<unsigned char> run_packed(deblur_model* model, const std::vector<unsigned char>& rgb,
                                      int width, int height, const deblur_options& options) {
  std::vector<unsigned char> out(rgb.size());
  const int status = deblur_run_rgb8(model, rgb.data(), width, height, 0, out.data(), 0, &options);
  INFO(deblur_last_error());
  REQUIRE(status == 0);
  CHECK(std::string(deblur_last_error()).empty());
  return out;
}
}  // namespace

TEST_CASE("C API: defaults, version, and no error before any call", "[c_api]") {
  const deblur_options options = deblur_default_options();
  CHECK(options.tile == 512);
  CHECK(options.overlap == 64);
  CHECK(options.threads == 0);
  CHECK(std::string(deblur_version()) == DEBLUR_VERSION_STRING);
  REQUIRE(deblur_last_error() != nullptr);
  CHECK(std::string(deblur_last_error()).empty());
}

TEST_CASE("C API: a saved model gives exactly the Predictor's bytes", "[c_api]") {
  ScratchDir dir;
  const std::string path = write_model(dir);
  LoadedModel loaded(path);
  INFO(deblur_last_error());
  REQUIRE(loaded.model != nullptr);

  DeblurUNet reference(32, kModelSeed + 1);
  reference.load_state(path);
  const int width = 48, height = 32;
  const std::vector<unsigned char> rgb = random_rgb(width, height, 1);
  Image in = make_image(width, height, 3, 8);
  in.data8.assign(rgb.begin(), rgb.end());

  for (const deblur_options& options : {small_tiles(), deblur_default_options()}) {
    INFO("tile " << options.tile << ", overlap " << options.overlap);
    const std::vector<unsigned char> out = run_packed(loaded.model, rgb, width, height, options);
    const Image expected = Predictor(reference, tiles_of(options)).run(in);
    CHECK(out == expected.data8);
  }
  // NULL options mean the defaults.
  std::vector<unsigned char> out(rgb.size());
  REQUIRE(deblur_run_rgb8(loaded.model, rgb.data(), width, height, 0, out.data(), 0, nullptr) == 0);
  CHECK(out == run_packed(loaded.model, rgb, width, height, deblur_default_options()));
}

TEST_CASE("C API: padded strides, in-place runs and the row padding left alone", "[c_api]") {
  ScratchDir dir;
  LoadedModel loaded(write_model(dir));
  REQUIRE(loaded.model != nullptr);
  const int width = 37, height = 21, row = 3 * width;
  const deblur_options options = small_tiles();
  const std::vector<unsigned char> packed = random_rgb(width, height, 2);
  const std::vector<unsigned char> expected =
      run_packed(loaded.model, packed, width, height, options);

  // Input rows 7 bytes apart from each other's end, output rows 5: the padding must survive.
  const int in_stride = row + 7, out_stride = row + 5;
  std::vector<unsigned char> in(size_t(in_stride) * height, 0xab);
  for (int y = 0; y < height; ++y)
    std::copy_n(packed.begin() + y * row, row, in.begin() + y * in_stride);
  std::vector<unsigned char> out(size_t(out_stride) * height, 0xcd);
  REQUIRE(deblur_run_rgb8(loaded.model, in.data(), width, height, in_stride, out.data(), out_stride,
                          &options) == 0);
  for (int y = 0; y < height; ++y) {
    INFO("row " << y);
    CHECK(std::equal(expected.begin() + y * row, expected.begin() + (y + 1) * row,
                     out.begin() + y * out_stride));
    CHECK(std::all_of(out.begin() + y * out_stride + row, out.begin() + (y + 1) * out_stride,
                      [](unsigned char v) { return v == 0xcd; }));
  }

  // In place, packed and padded: the result is the same.
  std::vector<unsigned char> same = packed;
  REQUIRE(deblur_run_rgb8(loaded.model, same.data(), width, height, 0, same.data(), 0, &options) ==
          0);
  CHECK(same == expected);
  REQUIRE(deblur_run_rgb8(loaded.model, in.data(), width, height, in_stride, in.data(), in_stride,
                          &options) == 0);
  for (int y = 0; y < height; ++y)
    CHECK(std::equal(expected.begin() + y * row, expected.begin() + (y + 1) * row,
                     in.begin() + y * in_stride));
}

TEST_CASE("C API: concurrent runs on one model match serial ones, threads apply per call",
          "[c_api]") {
  ScratchDir dir;
  LoadedModel loaded(write_model(dir));
  REQUIRE(loaded.model != nullptr);
  const int width = 48, height = 32;
  deblur_options options = small_tiles();
  options.threads = 1;
  const int before = cpu::num_threads();

  std::vector<std::vector<unsigned char>> inputs, expected;
  for (uint32_t seed = 0; seed < 4; ++seed) {
    inputs.push_back(random_rgb(width, height, 10 + seed));
    expected.push_back(run_packed(loaded.model, inputs.back(), width, height, options));
  }
  CHECK(cpu::num_threads() == before);

  std::vector<std::vector<unsigned char>> outputs(inputs.size());
  std::vector<int> status(inputs.size(), -1);
  std::vector<std::string> errors(inputs.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < inputs.size(); ++i)
    threads.emplace_back([&, i] {
      outputs[i].resize(inputs[i].size());
      status[i] = deblur_run_rgb8(loaded.model, inputs[i].data(), width, height, 0,
                                  outputs[i].data(), 0, &options);
      errors[i] = deblur_last_error();
    });
  for (std::thread& t : threads) t.join();
  for (size_t i = 0; i < inputs.size(); ++i) {
    INFO("run " << i << ": " << errors[i]);
    REQUIRE(status[i] == 0);
    CHECK(outputs[i] == expected[i]);
  }
}

TEST_CASE("C API: a missing or mismatched model file is NULL and a message naming it", "[c_api]") {
  ScratchDir dir;
  const std::string missing = (dir / "no_such_model.safetensors").string();
  CHECK(deblur_model_load(missing.c_str()) == nullptr);
  CHECK_THAT(deblur_last_error(), Catch::Contains(missing));

  const std::string broken = (dir / "no_final_bias.safetensors").string();
  std::vector<TensorRecord> state = DeblurUNet(32, 0).state();
  state.pop_back();  // final.bias
  write_safetensors(broken, state);
  CHECK(deblur_model_load(broken.c_str()) == nullptr);
  CHECK_THAT(deblur_last_error(), Catch::Contains(broken) && Catch::Contains("does not match") &&
                                      Catch::Contains("final.bias"));

  // Another width of the same network loads: it is read off the file.
  const std::string narrow = (dir / "base16.safetensors").string();
  DeblurUNet(16, 0).save_state(narrow);
  deblur_model* model16 = deblur_model_load(narrow.c_str());
  CHECK(model16 != nullptr);
  deblur_model_free(model16);

  CHECK(deblur_model_load(nullptr) == nullptr);
  CHECK_THAT(deblur_last_error(), Catch::Contains("NULL"));

  // A success clears the message.
  LoadedModel loaded(write_model(dir));
  CHECK(loaded.model != nullptr);
  CHECK(std::string(deblur_last_error()).empty());
}

TEST_CASE("C API: bad arguments and options fail with a message and leave the output alone",
          "[c_api]") {
  ScratchDir dir;
  LoadedModel loaded(write_model(dir));
  REQUIRE(loaded.model != nullptr);
  const int width = 16, height = 16;
  const std::vector<unsigned char> in = random_rgb(width, height, 3);
  std::vector<unsigned char> out(in.size(), 0x5a);
  const deblur_options defaults = deblur_default_options();

  struct Case {
    const char* name;
    deblur_model* model;
    const unsigned char* rgb;
    int width, height, stride;
    unsigned char* out;
    int out_stride;
    deblur_options options;
    const char* message;
  };
  deblur_options overlap = defaults, odd_tile = defaults, negative_tile = defaults,
                 threads = defaults;
  overlap.tile = 64;
  overlap.overlap = 32;
  odd_tile.tile = 100;
  negative_tile.tile = -16;
  threads.threads = -1;
  const std::vector<Case> cases = {
      {"NULL model", nullptr, in.data(), width, height, 0, out.data(), 0, defaults, "model"},
      {"NULL input", loaded.model, nullptr, width, height, 0, out.data(), 0, defaults, "input"},
      {"NULL output", loaded.model, in.data(), width, height, 0, nullptr, 0, defaults, "output"},
      {"zero width", loaded.model, in.data(), 0, height, 0, out.data(), 0, defaults, "0x16"},
      {"negative height", loaded.model, in.data(), width, -3, 0, out.data(), 0, defaults, "16x-3"},
      {"short input stride", loaded.model, in.data(), width, height, 47, out.data(), 0, defaults,
       "stride_bytes is 47"},
      {"negative output stride", loaded.model, in.data(), width, height, 0, out.data(), -48,
       defaults, "out_stride_bytes is -48"},
      {"overlap >= tile / 2", loaded.model, in.data(), width, height, 0, out.data(), 0, overlap,
       "overlap"},
      {"tile not a multiple of 16", loaded.model, in.data(), width, height, 0, out.data(), 0,
       odd_tile, "100"},
      {"negative tile", loaded.model, in.data(), width, height, 0, out.data(), 0, negative_tile,
       "-16"},
      {"negative threads", loaded.model, in.data(), width, height, 0, out.data(), 0, threads,
       "threads"},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    CHECK(deblur_run_rgb8(c.model, c.rgb, c.width, c.height, c.stride, c.out, c.out_stride,
                          &c.options) != 0);
    const std::string message = deblur_last_error();
    INFO(message);
    CHECK_THAT(message, Catch::StartsWith("deblur_run_rgb8: ") && Catch::Contains(c.message));
    CHECK(std::all_of(out.begin(), out.end(), [](unsigned char v) { return v == 0x5a; }));
  }
  deblur_model_free(nullptr);
}

TEST_CASE("C API: an image over the pixel limit is refused before any allocation", "[c_api]") {
  ScratchDir dir;
  LoadedModel loaded(write_model(dir));
  REQUIRE(loaded.model != nullptr);
  // A 2^30 x 2^30 image: refused from its size alone, so these one-byte buffers are never read.
  const int side = 1 << 30;
  unsigned char in = 0, out = 0;
  CHECK(deblur_run_rgb8(loaded.model, &in, side, side, 0, &out, 0, nullptr) != 0);
  CHECK_THAT(deblur_last_error(), Catch::StartsWith("deblur_run_rgb8: the image is") &&
                                      Catch::Contains("over the limit of 268435456 pixels"));
}
