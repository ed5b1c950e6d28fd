// `deblur infer` end to end: the binary's output against PyTorch's (tests/fixtures/cli, made by
// data_tools/make_cli_fixture.py), and every bad-input case: the message, the exit code, and
// that nothing was written.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "infer/image_io.h"
#include "layers/deblur_unet.h"
#include "tests/cli_testing.h"
#include "tests/fixtures.h"

using namespace deblur;
using namespace deblur::testing;
namespace fs = std::filesystem;

namespace {
const fs::path kCliFixtures = fs::path(DEBLUR_FIXTURE_DIR) / "cli";

// The fixture model (tests/fixtures.h) written as a safetensors file.
void write_fixture_model(const fs::path& path) {
  DeblurUNet model;
  load_fixture_weights(model);
  model.save_state(path.string(), {{"format", "pt"}});
}

// Largest per-value difference between two 8-bit images of equal geometry.
int max_level_difference(const Image& a, const Image& b) {
  REQUIRE(a.width == b.width);
  REQUIRE(a.height == b.height);
  REQUIRE(a.channels == b.channels);
  int worst = 0;
  for (size_t i = 0; i < a.data8.size(); ++i)
    worst = std::max(worst, std::abs(int(a.data8[i]) - int(b.data8[i])));
  return worst;
}

std::string infer_args(const fs::path& model, const fs::path& in, const fs::path& out) {
  return "infer --model " + shell_quoted(model) + " --input " + shell_quoted(in) + " --output " + shell_quoted(out);
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// Whether a folder holds anything besides the listed names (a partial or temporary file).
bool only_holds(const fs::path& dir, std::vector<std::string> names) {
  for (const auto& entry : fs::directory_iterator(dir))
    if (std::find(names.begin(), names.end(), entry.path().filename().string()) == names.end())
      return false;
  return true;
}
}  // namespace

TEST_CASE("deblur infer equals PyTorch within one 8-bit level", "[cli][infer]") {
  ScratchDir dir;
  write_fixture_model(dir / "model.safetensors");
  const fs::path input = kCliFixtures / "input.png";
  const Image whole = read_image((kCliFixtures / "out_whole.png").string());
  // float32 against the float64 reference differ by ~1e-6 before rounding, which can move a
  // value sitting on a rounding boundary by one level, never more.
  for (const char* tile : {"0", "256"}) {  // whole image, and a tile larger than it
    INFO("--tile " << tile);
    const CliRun run = run_cli(infer_args(dir / "model.safetensors", input, dir / "out.png") +
                               " --tile " + tile);
    REQUIRE(run.exit_code == 0);
    CHECK_THAT(run.out, Catch::Contains("72x40, 1 tile,"));
    CHECK(max_level_difference(read_image((dir / "out.png").string()), whole) <= 1);
  }
  // The seed's tiling, made exact: 32-pixel tiles overlapping by 8 (3 x 2 tiles).
  const CliRun run = run_cli(infer_args(dir / "model.safetensors", input, dir / "tiled.png") +
                             " --tile 32 --overlap 8");
  REQUIRE(run.exit_code == 0);
  CHECK_THAT(run.out, Catch::Contains("72x40, 6 tiles,"));
  CHECK(max_level_difference(read_image((dir / "tiled.png").string()),
                             read_image((kCliFixtures / "out_tile32.png").string())) <= 1);
}

TEST_CASE("deblur infer folder mode skips a bad image and says so", "[cli][infer]") {
  ScratchDir dir;
  write_fixture_model(dir / "model.safetensors");
  fs::create_directories(dir / "in");
  fs::copy_file(kCliFixtures / "input.png", dir / "in" / "a.png");
  fs::copy_file(kCliFixtures / "input.png", dir / "in" / "c.png");
  write_bytes(dir / "in" / "b.png", "\x89PNG\r\n\x1a\nnot really");  // corrupt
  write_bytes(dir / "in" / "notes.txt", "not an image, ignored");
  const CliRun run =
      run_cli(infer_args(dir / "model.safetensors", dir / "in", dir / "out") + " --tile 0");
  CHECK(run.exit_code == 1);
  CHECK_THAT(run.out, Catch::Contains("[1/3] a.png: 72x40") && Catch::Contains("[3/3] c.png") &&
                          Catch::Contains("2 images in"));
  CHECK_THAT(run.err, Catch::Contains("b.png") && Catch::Contains("skipped") &&
                          Catch::Contains("1 of 3 images failed"));
  CHECK(fs::exists(dir / "out" / "a.png"));
  CHECK(fs::exists(dir / "out" / "c.png"));
  CHECK(only_holds(dir / "out", {"a.png", "c.png"}));
}

TEST_CASE("deblur infer rejects bad input clearly and writes nothing", "[cli][infer]") {
  ScratchDir dir;
  const fs::path model = dir / "model.safetensors", input = kCliFixtures / "input.png";
  write_fixture_model(model);
  fs::create_directories(dir / "out");
  const fs::path out = dir / "out" / "result.png";

  // A model truncated half way, and one with the wrong names.
  {
    std::ifstream full(model, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(full)), {});
    write_bytes(dir / "truncated.safetensors", bytes.substr(0, bytes.size() / 2));
    write_safetensors((dir / "wrong.safetensors").string(), {{"conv.weight", {2}, {1, 2}}});
  }
  write_bytes(dir / "corrupt.png", "\x89PNG\r\n\x1a\n\0\0\0\rIHDR garbage");

  struct Case {
    std::string what, args, message;
  };
  const std::vector<Case> cases = {
      {"missing model", infer_args(dir / "none.safetensors", input, out), "none.safetensors"},
      {"truncated model", infer_args(dir / "truncated.safetensors", input, out),
       "truncated.safetensors"},
      {"wrong model", infer_args(dir / "wrong.safetensors", input, out), "missing enc1.conv1.weight"},
      {"missing input", infer_args(model, dir / "nope.png", out), "nope.png: no such file"},
      {"corrupt input", infer_args(model, dir / "corrupt.png", out), "corrupt.png"},
      {"too many pixels", infer_args(model, input, out) + " --max_pixels 1000", "1000"},
      {"unwritable output", infer_args(model, input, dir / "no" / "such" / "dir.png"), "dir.png"},
      {"unknown extension", infer_args(model, input, dir / "out" / "result.gif"), "result.gif"},
      {"overlap too large", infer_args(model, input, out) + " --tile 64 --overlap 32", "overlap"},
      {"tile not a multiple of 16", infer_args(model, input, out) + " --tile 100", "100"},
      {"unknown option", infer_args(model, input, out) + " --tiles 3", "--tiles"},
      {"missing option", "infer --model " + shell_quoted(model), "required"},
  };
  for (const Case& c : cases) {
    INFO(c.what << ": deblur " << c.args);
    const CliRun run = run_cli(c.args);
    CHECK(run.exit_code != 0);
    CHECK_THAT(run.err, Catch::StartsWith("deblur infer: ") && Catch::Contains(c.message));
    // One clear line; a model that does not fit also lists what differs, a line each.
    if (c.what != "wrong model") CHECK(std::count(run.err.begin(), run.err.end(), '\n') == 1);
    CHECK(fs::is_empty(dir / "out"));
  }
  CHECK_FALSE(fs::exists(dir / "no"));
}
