// Safetensors IO: round trips, half-precision rounding, the fixture written by Python's
// safetensors package, every malformed-input rule, mutation robustness and atomic writes.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>

#include "engine/check.h"
#include "engine/safetensors.h"
#include "tests/cli_testing.h"

using namespace deblur;
using namespace deblur::testing;
namespace fs = std::filesystem;

namespace {

const std::string kSource = "model.safetensors";

size_t entries(const ScratchDir& dir) {
  return static_cast<size_t>(std::distance(fs::directory_iterator(dir.path()), {}));
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in);
  return {std::istreambuf_iterator<char>(in), {}};
}

void set_header_length(std::vector<uint8_t>& bytes, uint64_t length) {
  std::memcpy(bytes.data(), &length, sizeof(length));
}

// 8-byte length, the header text as given, then `data_bytes` zero bytes.
std::vector<uint8_t> file_bytes(const std::string& header, size_t data_bytes) {
  std::vector<uint8_t> bytes(8 + header.size() + data_bytes, 0);
  set_header_length(bytes, header.size());
  std::memcpy(bytes.data() + 8, header.data(), header.size());
  return bytes;
}

SafetensorsFile parse(const std::vector<uint8_t>& bytes) {
  return parse_safetensors(bytes.data(), bytes.size(), kSource);
}

// Matches an error message that names the file as well as the problem. (A class rather than
// Contains(a) && Contains(b): Catch's combined matcher holds pointers to its parts, which a
// helper function returning it would leave dangling.)
class NamesProblem : public Catch::MatcherBase<std::string> {
 public:
  explicit NamesProblem(std::string problem) : problem_(std::move(problem)) {}
  bool match(const std::string& message) const override {
    return message.find(kSource) != std::string::npos &&
           message.find(problem_) != std::string::npos;
  }
  std::string describe() const override {
    return "names " + kSource + " and contains \"" + problem_ + "\"";
  }

 private:
  std::string problem_;
};
NamesProblem names(const std::string& problem) {
  return NamesProblem(problem);
}

std::vector<float> arange(size_t count, float scale, float offset) {
  std::vector<float> values(count);
  for (size_t i = 0; i < count; ++i) values[i] = static_cast<float>(i) * scale + offset;
  return values;
}

}  // namespace

TEST_CASE("safetensors F32 and F16 round trip", "[safetensors]") {
  ScratchDir dir;
  const std::string path = (dir / "round_trip.safetensors").string();
  // F16 values are multiples of 1/8 below 2^11, so exactly representable in half.
  const std::vector<TensorRecord> written = {
      {"enc1.conv1.weight", {4, 3, 3, 3}, arange(108, 0.37f, -20.0f), DType::F32},
      {"enc1.gn1.weight", {2, 6}, arange(12, 0.125f, -0.75f), DType::F16},
      {"enc1.conv1.bias", {4}, {1e-30f, -3.4e38f, 0.0f, -0.0f}, DType::F32},
  };
  write_safetensors(path, written);
  const SafetensorsFile read = read_safetensors(path);
  REQUIRE(read.tensors.size() == written.size());
  CHECK(read.metadata.empty());
  for (size_t i = 0; i < written.size(); ++i) {
    // The writer lays tensors out in the given order, and the reader returns offset order.
    const TensorRecord& got = read.tensors[i];
    CHECK(got.name == written[i].name);
    CHECK(got.shape == written[i].shape);
    CHECK(got.dtype == written[i].dtype);
    CHECK(got.values == written[i].values);
  }
  CHECK(std::signbit(read.tensors[2].values[3]));
  REQUIRE(read.find("enc1.gn1.weight") != nullptr);
  CHECK(read.find("enc1.gn1.weight")->dtype == DType::F16);
  CHECK(read.find("missing") == nullptr);
  // The data section starts 8-byte aligned.
  const auto bytes = read_bytes(path);
  uint64_t header_length = 0;
  std::memcpy(&header_length, bytes.data(), 8);
  CHECK((8 + header_length) % 8 == 0);
}

TEST_CASE("safetensors F16 conversion rounds to nearest even", "[safetensors]") {
  struct Case {
    float value;
    uint16_t bits;
  };
  const float unit = std::ldexp(1.0f, -24);  // the smallest half subnormal
  const Case cases[] = {
      {1.0f, 0x3c00},
      {1.0f + std::ldexp(1.0f, -11), 0x3c00},      // halfway, ties to even (down)
      {1.0f + 3 * std::ldexp(1.0f, -11), 0x3c02},  // halfway, ties to even (up)
      {1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20), 0x3c01},  // just above halfway
      {0.1f, 0x2e66},
      {-2.5f, 0xc100},
      {65504.0f, 0x7bff},  // largest finite half
      {65519.0f, 0x7bff},  // below the rounding boundary
      {65520.0f, 0x7c00},  // halfway to 2^16: ties to even, which overflows to inf
      {1e10f, 0x7c00},
      {-1e10f, 0xfc00},
      {std::numeric_limits<float>::infinity(), 0x7c00},
      {-std::numeric_limits<float>::infinity(), 0xfc00},
      {-0.0f, 0x8000},
      {unit, 0x0001},
      {unit / 2, 0x0000},     // halfway between 0 and the smallest subnormal: even is 0
      {unit * 1.5f, 0x0002},  // halfway between 1 and 2 units: even is 2
      {unit * 2.5f, 0x0002},
      {-unit * 0.75f, 0x8001},
      {std::ldexp(1.0f, -14), 0x0400},             // smallest normal
      {std::ldexp(1.0f, -14) - unit / 2, 0x0400},  // 1023.5 units: rounds up into the normals
      {1e-30f, 0x0000},
      {std::numeric_limits<float>::denorm_min(), 0x0000},
  };
  for (const Case& c : cases) {
    INFO("value " << c.value);
    CHECK(float_to_f16(c.value) == c.bits);
  }
  CHECK(std::isnan(f16_to_float(float_to_f16(std::numeric_limits<float>::quiet_NaN()))));
  CHECK(std::isnan(f16_to_float(float_to_f16(-std::numeric_limits<float>::quiet_NaN()))));

  CHECK(f16_to_float(0x0001) == unit);
  CHECK(f16_to_float(0x03ff) == 1023 * unit);
  CHECK(f16_to_float(0x3555) == 0.333251953125f);
  CHECK(f16_to_float(0xfbff) == -65504.0f);
  CHECK(f16_to_float(0x7c00) == std::numeric_limits<float>::infinity());
  CHECK(std::isnan(f16_to_float(0x7e00)));
  CHECK(std::isnan(f16_to_float(0xfc01)));
  CHECK(bf16_to_float(0x3fc0) == 1.5f);
  CHECK(bf16_to_float(0xc040) == -3.0f);
  // Every non-NaN half converts to float exactly and back to the same bits.
  size_t mismatches = 0;
  for (uint32_t bits = 0; bits <= 0xffff; ++bits) {
    const float value = f16_to_float(static_cast<uint16_t>(bits));
    if (!std::isnan(value) && float_to_f16(value) != bits) ++mismatches;
  }
  CHECK(mismatches == 0);

  // The writer rounds the same way.
  ScratchDir dir;
  const std::string path = (dir / "rounding.safetensors").string();
  const std::vector<float> values = {0.1f, 65520.0f, unit / 2, -0.0f, 1.0f + std::ldexp(1.0f, -11)};
  write_safetensors(path, {{"x", {5}, values, DType::F16}});
  const auto read = read_safetensors(path);
  REQUIRE(read.tensors.size() == 1);
  const auto& got = read.tensors[0].values;
  CHECK(got[0] == 0.0999755859375f);
  CHECK(got[1] == std::numeric_limits<float>::infinity());
  CHECK(got[2] == 0.0f);
  CHECK((got[3] == 0.0f && std::signbit(got[3])));
  CHECK(got[4] == 1.0f);
}

TEST_CASE("safetensors metadata round trip", "[safetensors]") {
  ScratchDir dir;
  const std::string path = (dir / "metadata.safetensors").string();
  const std::map<std::string, std::string> metadata = {
      {"format", "pt"}, {"epoch", "12"}, {"note", "quotes \" and \\ and unicode \xc3\xa9"}};
  write_safetensors(path, {{"w", {2}, {1.0f, 2.0f}, DType::F32}}, metadata);
  const auto read = read_safetensors(path);
  CHECK(read.metadata == metadata);
  REQUIRE(read.tensors.size() == 1);
  CHECK(read.tensors[0].values == std::vector<float>{1.0f, 2.0f});
}

TEST_CASE("safetensors rank-0, rank-1 and empty shapes", "[safetensors]") {
  ScratchDir dir;
  const std::string path = (dir / "shapes.safetensors").string();
  const std::vector<TensorRecord> written = {
      {"scalar", {}, {-7.25f}, DType::F32},
      {"vector", {3}, {1.0f, -2.0f, 0.5f}, DType::F16},
      {"empty", {0, 4}, {}, DType::F32},
      {"half_scalar", {}, {3.0f}, DType::F16},
  };
  write_safetensors(path, written);
  const auto read = read_safetensors(path);
  REQUIRE(read.tensors.size() == written.size());
  for (const auto& w : written) {
    const TensorRecord* got = read.find(w.name);
    REQUIRE(got != nullptr);
    CHECK(got->shape == w.shape);
    CHECK(got->values == w.values);
    CHECK(got->dtype == w.dtype);
  }
}

TEST_CASE("safetensors reads the fixture written by Python's safetensors", "[safetensors]") {
  // Made by data_tools/make_safetensors_fixture.py with safetensors.torch.save_file.
  const auto file = read_safetensors(DEBLUR_FIXTURE_DIR "/safetensors_dtypes.safetensors");
  CHECK(file.metadata ==
        std::map<std::string, std::string>{{"format", "pt"}, {"note", "deblur dtype fixture"}});
  // Python's writer orders tensors by dtype size, then name; the reader returns offset order.
  const std::vector<std::string> order = {"conv.bias",   "conv.weight", "bf16.scalar",
                                          "bf16.vector", "half.matrix", "half.special"};
  REQUIRE(file.tensors.size() == order.size());
  for (size_t i = 0; i < order.size(); ++i) CHECK(file.tensors[i].name == order[i]);

  const TensorRecord* weight = file.find("conv.weight");
  REQUIRE(weight);
  CHECK(weight->dtype == DType::F32);
  CHECK(weight->shape == std::vector<int64_t>{2, 3, 2, 2});
  CHECK(weight->values == arange(24, 0.125f, -1.5f));  // (i - 12) / 8

  const TensorRecord* bias = file.find("conv.bias");
  REQUIRE(bias);
  CHECK(bias->shape == std::vector<int64_t>{2});
  CHECK(bias->values == std::vector<float>{0.5f, -1.25f});

  const TensorRecord* matrix = file.find("half.matrix");
  REQUIRE(matrix);
  CHECK(matrix->dtype == DType::F16);
  CHECK(matrix->shape == std::vector<int64_t>{2, 3});
  CHECK(matrix->values == arange(6, 0.25f, -1.0f));

  const TensorRecord* special = file.find("half.special");
  REQUIRE(special);
  CHECK(special->dtype == DType::F16);
  REQUIRE(special->values.size() == 4);
  CHECK(special->values[0] == std::ldexp(1.0f, -24));
  CHECK(special->values[1] == 65504.0f);
  CHECK((special->values[2] == 0.0f && std::signbit(special->values[2])));
  CHECK(special->values[3] == std::numeric_limits<float>::infinity());

  const TensorRecord* vector = file.find("bf16.vector");
  REQUIRE(vector);
  CHECK(vector->dtype == DType::BF16);
  CHECK(vector->values == std::vector<float>{-2.0f, -1.0f, 1.0f, 5.0f, 13.0f});  // 2^i - 3

  const TensorRecord* scalar = file.find("bf16.scalar");
  REQUIRE(scalar);
  CHECK(scalar->dtype == DType::BF16);
  CHECK(scalar->shape.empty());
  CHECK(scalar->values == std::vector<float>{-3.5f});
}

TEST_CASE("safetensors rejects truncated files", "[safetensors]") {
  const auto valid = read_bytes(DEBLUR_FIXTURE_DIR "/safetensors_dtypes.safetensors");
  uint64_t header_length = 0;
  std::memcpy(&header_length, valid.data(), 8);
  REQUIRE_NOTHROW(parse(valid));
  const size_t data_start = 8 + header_length;
  for (size_t cut : {size_t{0}, size_t{3}, size_t{7}, size_t{8}, size_t{40}, data_start - 1,
                     data_start, data_start + 5, valid.size() - 1}) {
    INFO("cut at " << cut);
    const std::vector<uint8_t> truncated(valid.begin(), valid.begin() + cut);
    CHECK_THROWS_WITH(parse(truncated), names("truncated"));
  }
}

TEST_CASE("safetensors rejects bad header lengths and bad JSON", "[safetensors]") {
  const std::string header = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  REQUIRE_NOTHROW(parse(file_bytes(header, 4)));

  auto huge = file_bytes(header, 4);
  set_header_length(huge, uint64_t{1} << 62);
  CHECK_THROWS_WITH(parse(huge), names("exceeds the limit"));

  auto past_end = file_bytes(header, 4);
  set_header_length(past_end, header.size() + 5);
  CHECK_THROWS_WITH(parse(past_end), names("runs past the end of the file"));

  CHECK_THROWS_WITH(parse(file_bytes(R"({"a":{"dtype":"F32",)", 4)), names("not valid JSON"));
  CHECK_THROWS_WITH(parse(file_bytes("{\"a\xff\":{}}", 0)), names("not valid JSON"));
  CHECK_THROWS_WITH(parse(file_bytes("[1, 2]", 0)), names("top level is not a JSON object"));
  CHECK_THROWS_WITH(parse(file_bytes("\"text\"", 0)), names("top level is not a JSON object"));
  // Trailing spaces after the JSON are allowed (writers pad with them).
  CHECK_NOTHROW(parse(file_bytes(header + "     ", 4)));
  CHECK(parse(file_bytes("{}", 0)).tensors.empty());
}

TEST_CASE("safetensors refuses deeply nested headers before they cost memory",
          "[safetensors]") {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  CHECK_THROWS_WITH(parse(file_bytes("{\"a\": " + deep + "}", 0)), names("nests deeper"));
}

TEST_CASE("safetensors rejects bad tensor entries", "[safetensors]") {
  CHECK_THROWS_WITH(
      parse(file_bytes(R"({"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", 8)),
      names("tensor 'a' has unsupported dtype \"I64\""));
  CHECK_THROWS_WITH(
      parse(file_bytes(R"({"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})", 8)),
      names("unsupported dtype \"F64\""));
  CHECK_THROWS_WITH(parse(file_bytes(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", 4)),
                    names("tensor 'a' is missing the field \"shape\""));
  CHECK_THROWS_WITH(parse(file_bytes(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", 4)),
                    names("missing the field \"dtype\""));
  CHECK_THROWS_WITH(parse(file_bytes(R"({"a":[1, 2]})", 0)), names("not a JSON object"));
  CHECK_THROWS_WITH(
      parse(file_bytes(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4)),
      names("shape that is not an array of non-negative integers"));
  CHECK_THROWS_WITH(
      parse(file_bytes(R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4)),
      names("shape that is not an array of non-negative integers"));
  CHECK_THROWS_WITH(parse(file_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 4)),
                    names("data_offsets that are not an array of 2 non-negative integers"));
  CHECK_THROWS_WITH(
      parse(file_bytes(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}})", 4)),
      names("begin after end"));
  CHECK_THROWS_WITH(
      parse(file_bytes(
          R"({"enc1.conv1.weight":{"dtype":"F32","shape":[32,3,3,3],"data_offsets":[0,100]}})",
          100)),
      names("tensor 'enc1.conv1.weight' data_offsets [0, 100] hold 100 bytes but shape "
            "[32, 3, 3, 3] of F32 needs 3456"));
  // A shape whose byte count overflows 64 bits must not wrap around to a small number.
  CHECK_THROWS_WITH(
      parse(file_bytes(
          R"({"a":{"dtype":"F16","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", 0)),
      names("overflows"));
  CHECK_THROWS_WITH(
      parse(file_bytes(
          R"({"a":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}})", 0)),
      names("overflows"));
}

TEST_CASE("safetensors rejects bad data layouts", "[safetensors]") {
  const std::string a4 = R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})";
  CHECK_THROWS_WITH(
      parse(file_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 8)),
      names("run past the data section"));
  CHECK_THROWS_WITH(
      parse(
          file_bytes("{" + a4 + R"(,"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", 12)),
      names("tensor 'b' data_offsets [8, 12] leave a hole"));
  CHECK_THROWS_WITH(
      parse(file_bytes(R"({"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8)),
      names("leave a hole"));
  CHECK_THROWS_WITH(
      parse(file_bytes("{" + a4 + R"(,"b":{"dtype":"F16","shape":[2],"data_offsets":[2,6]}})", 6)),
      names("overlap"));
  CHECK_THROWS_WITH(parse(file_bytes("{" + a4 + "}", 6)),
                    names("data section is 6 bytes but the tensors cover only 4"));
  CHECK_THROWS_WITH(parse(file_bytes("{" + a4 + "," + a4 + "}", 4)), names("duplicate key 'a'"));
}

TEST_CASE("safetensors rejects bad metadata", "[safetensors]") {
  CHECK_THROWS_WITH(parse(file_bytes(R"({"__metadata__":{"epoch":3}})", 0)),
                    names("value for key 'epoch' is not a string"));
  CHECK_THROWS_WITH(parse(file_bytes(R"({"__metadata__":["pt"]})", 0)),
                    names("\"__metadata__\" is not a JSON object"));
  CHECK_THROWS_WITH(parse(file_bytes(R"({"__metadata__":{"k":"1","k":"2"}})", 0)),
                    names("duplicate key 'k'"));
  const auto ok = parse(file_bytes(R"({"__metadata__":{"format":"pt"}})", 0));
  CHECK(ok.metadata.at("format") == "pt");
}

TEST_CASE("safetensors reports unopenable paths", "[safetensors]") {
  const std::string path = "/nonexistent_deblur_dir/model.safetensors";
  CHECK_THROWS_WITH(read_safetensors(path),
                    Catch::Contains(path) && Catch::Contains(std::strerror(ENOENT)));
  ScratchDir dir;  // a directory opens but cannot be read as a file
  CHECK_THROWS_AS(read_safetensors(dir.path().string()), Error);
}

TEST_CASE("safetensors survives mutated files", "[safetensors]") {
  const auto valid = read_bytes(DEBLUR_FIXTURE_DIR "/safetensors_dtypes.safetensors");
  uint64_t header_length = 0;
  std::memcpy(&header_length, valid.data(), 8);
  std::mt19937_64 rng(20240607);
  auto below = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  size_t accepted = 0, rejected = 0;
  for (int trial = 0; trial < 600; ++trial) {
    std::vector<uint8_t> bytes = valid;
    switch (trial % 4) {
      case 0:  // flip a few bytes anywhere
        for (size_t k = 0, flips = 1 + below(4); k < flips; ++k)
          bytes[below(bytes.size())] ^= static_cast<uint8_t>(1 + below(255));
        break;
      case 1:  // change digits in the header: shapes and offsets that stay valid JSON
        for (size_t k = 0, edits = 1 + below(3); k < edits; ++k) {
          const size_t at = 8 + below(header_length);
          if (std::isdigit(bytes[at])) bytes[at] = static_cast<uint8_t>('0' + below(10));
        }
        break;
      case 2:  // truncate
        bytes.resize(below(bytes.size()));
        break;
      case 3:  // a random header length
        set_header_length(bytes, trial % 8 == 3 ? rng() : below(bytes.size() + 16));
        break;
    }
    // Anything but deblur::Error escapes and fails the test.
    try {
      const auto file = parse_safetensors(bytes.data(), bytes.size(), kSource);
      ++accepted;
    } catch (const Error&) {
      ++rejected;
    }
  }
  CHECK(accepted + rejected == 600);
  CHECK(rejected > 0);
}

TEST_CASE("safetensors writes atomically", "[safetensors]") {
  ScratchDir dir;
  const std::string missing_dir = (dir / "no_such_dir").string();
  const std::string path = missing_dir + "/model.safetensors";
  CHECK_THROWS_WITH(write_safetensors(path, {{"w", {1}, {1.0f}, DType::F32}}),
                    Catch::Contains(path) && Catch::Contains(std::strerror(ENOENT)));
  CHECK_FALSE(fs::exists(missing_dir));
  CHECK(entries(dir) == 0);

  const std::string target = (dir / "model.safetensors").string();
  write_safetensors(target, {{"old", {2}, {1.0f, 2.0f}, DType::F32}});
  write_safetensors(target, {{"new", {3}, {3.0f, 4.0f, 5.0f}, DType::F16}}, {{"epoch", "2"}});
  const auto read = read_safetensors(target);
  REQUIRE(read.tensors.size() == 1);
  CHECK(read.tensors[0].name == "new");
  CHECK(read.tensors[0].values == std::vector<float>{3.0f, 4.0f, 5.0f});
  CHECK(read.metadata.at("epoch") == "2");
  CHECK(entries(dir) == 1);  // no temporary file left behind
}

TEST_CASE("safetensors writer rejects bad records", "[safetensors]") {
  ScratchDir dir;
  const std::string path = (dir / "bad.safetensors").string();
  CHECK_THROWS_WITH(write_safetensors(path, {{"w", {1}, {1.0f}, DType::BF16}}),
                    Catch::Contains("'w'") && Catch::Contains("BF16"));
  CHECK_THROWS_WITH(
      write_safetensors(path, {{"w", {1}, {1.0f}, DType::F32}, {"w", {1}, {2.0f}, DType::F32}}),
      Catch::Contains("duplicate tensor name"));
  CHECK_THROWS_WITH(write_safetensors(path, {{"w", {2, 3}, {1.0f}, DType::F32}}),
                    Catch::Contains("has 1 values but shape [2, 3]"));
  CHECK_THROWS_WITH(write_safetensors(path, {{"w", {-1}, {}, DType::F32}}),
                    Catch::Contains("negative dimension"));
  CHECK_THROWS_WITH(write_safetensors(path, {{"__metadata__", {1}, {1.0f}, DType::F32}}),
                    Catch::Contains("reserved"));
  CHECK(entries(dir) == 0);
}
