// The deterministic generator shared with data_tools/make_fixtures.py: values the script printed
// (hard-coded below, as hex floats so they are exact), and the U-Net fixture's weights
// regenerated in C++ and compared bit for bit with the samples PyTorch stored.
#include <catch2/catch.hpp>
#include <cmath>
#include <sstream>

#include "engine/check.h"
#include "tests/fixture_rng.h"
#include "tests/fixtures.h"
#include "tests/testing.h"

using namespace deblur;
using namespace deblur::testing;

TEST_CASE("fixture rng matches the Python generator", "[fixtures]") {
  // Printed by `/usr/bin/python3 data_tools/make_fixtures.py`; splitmix64(0) is also the
  // published first output of SplitMix64 seeded with 0.
  CHECK(splitmix64(0x0000000000000000ull) == 0xE220A8397B1DCDAFull);
  CHECK(splitmix64(0x0000000000000001ull) == 0x910A2DEC89025CC1ull);
  CHECK(splitmix64(0x0123456789ABCDEFull) == 0x157A3807A48FAA9Dull);
  CHECK(splitmix64(0xFFFFFFFFFFFFFFFFull) == 0xE4D971771B652C20ull);

  // Exact equality: both sides do the same integer ops and one exact conversion.
  CHECK(fixture_uniform(0, 0) == 0x1.c4415072f63b9p-1);
  CHECK(fixture_uniform(1, 0) == 0x1.8858b43547040p-1);
  CHECK(fixture_uniform(1, 12287) == 0x1.7e6ae534d1320p-3);
  CHECK(fixture_uniform(2, 5) == 0x1.8ebb778e6d801p-1);
  CHECK(fixture_uniform(1000, 863) == 0x1.47c7e9e1d3fd0p-4);
  CHECK(fixture_uniform(1081, 2) == 0x1.b177f7fb3748cp-1);

  const std::vector<float> values = fixture_values(7, 3, 0.25, 3.5);
  CHECK(values == std::vector<float>{0x1.52e2b2p+1f, 0x1.2a9752p-1f, 0x1.2f7814p+1f});
  const std::vector<float> conv = fixture_symmetric(1000, 4, 1.0 / std::sqrt(27.0));
  CHECK(conv ==
        std::vector<float>{0x1.21d666p-3f, -0x1.0434a6p-4f, 0x1.2204e6p-3f, 0x1.bb329ap-5f});
  const std::vector<float> gamma = fixture_symmetric(1002, 4, 0.2, 1.0);
  CHECK(gamma ==
        std::vector<float>{0x1.25844ep+0f, 0x1.c07580p-1f, 0x1.b13098p-1f, 0x1.04bf78p+0f});
}

TEST_CASE("unet fixture weights regenerate bit for bit", "[fixtures]") {
  const SafetensorsFile file = load_fixture("unet.safetensors");
  auto table = file.metadata.find("param_table");
  REQUIRE(table != file.metadata.end());
  std::istringstream lines(table->second);
  std::string name, kind;
  uint64_t stream = 0;
  int64_t fan_in = 0, numel = 0, total = 0, count = 0;
  while (lines >> name >> stream >> kind >> fan_in >> numel) {
    INFO(name);
    double scale = 0.2, offset = 0.0;
    if (kind == "conv") {
      REQUIRE(fan_in > 0);
      scale = 1.0 / std::sqrt(static_cast<double>(fan_in));
    } else if (kind == "gn_weight") {
      offset = 1.0;
    } else {
      REQUIRE(kind == "gn_bias");
    }
    const std::vector<float> all = fixture_symmetric(stream, size_t(numel), scale, offset);
    const std::vector<float> stored = fixture_tensor(file, "param." + name + ".sample").to_vector();
    const int64_t m = std::min<int64_t>(numel, 1024);
    REQUIRE(int64_t(stored.size()) == m);
    std::vector<float> sampled(static_cast<size_t>(m));
    for (int64_t j = 0; j < m; ++j) sampled[size_t(j)] = all[size_t(j * numel / m)];
    // Bitwise: the same double expression rounded once to float32 on both sides.
    CHECK(expect_close(sampled, stored, 0.0, 0.0, "param " + name));
    CHECK(fixture_tensor(file, "grad." + name + ".norm").numel() == 1);
    total += numel;
    ++count;
  }
  CHECK(count == 82);
  CHECK(total == 8'636'451);
}

TEST_CASE("fixture_tensor maps ranks and names what is missing", "[fixtures]") {
  const SafetensorsFile ops = load_fixture("ops.safetensors");
  CHECK(fixture_tensor(ops, "conv3x3.x").shape() == Shape{2, 5, 7, 9});
  CHECK(fixture_tensor(ops, "conv3x3.bias").shape() == Shape{4, 1, 1, 1});
  CHECK(fixture_tensor(ops, "mean.y").shape() == Shape{1, 1, 1, 1});
  CHECK_THROWS_WITH(fixture_tensor(ops, "no_such.tensor"),
                    Catch::Contains("ops.safetensors") && Catch::Contains("no_such.tensor"));
  CHECK_THROWS_AS(load_fixture("no_such_file.safetensors"), Error);
  // F16 storage is widened exactly on read.
  const SafetensorsFile ms = load_fixture("ms_ssim.safetensors");
  CHECK(ms.find("x")->dtype == DType::F16);
  CHECK(fixture_tensor(ms, "x").shape() == Shape{1, 3, 161, 168});
}
