// Image IO: PNG/JPEG round trips, the committed fixtures (16-bit PNG, tRNS, BMP, TGA, JPEG from
// data_tools/make_image_fixtures.py), probe_image, the pixel limit, and every bad-input and
// bad-output path, each error naming the file and the problem, no partial output left behind.
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <random>

#include "engine/check.h"
#include "infer/image_io.h"

#ifndef DEBLUR_FIXTURE_DIR
#error "DEBLUR_FIXTURE_DIR must be defined (CMake sets it to tests/fixtures)"
#endif

using namespace deblur;
namespace fs = std::filesystem;

namespace {

const std::string kImages = std::string(DEBLUR_FIXTURE_DIR) + "/images/";

// A scratch directory of its own, removed when the test ends.
struct ScratchDir {
  fs::path path;
  ScratchDir()
      : path(fs::temp_directory_path() / ("deblur_image_io_test_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~ScratchDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(path))
      names.push_back(entry.path().filename().string());
    return names;
  }
};

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in);
  return {std::istreambuf_iterator<char>(in), {}};
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out);
}

// Runs `action`, requires a deblur::Error whose message contains every one of `parts`.
void expect_error(const std::function<void()>& action, std::initializer_list<std::string> parts) {
  std::string message;
  try {
    action();
  } catch (const Error& error) {
    message = error.what();
  }
  INFO("message: " << message);
  REQUIRE(!message.empty());
  for (const auto& part : parts) CHECK(message.find(part) != std::string::npos);
}

Image random_image(int64_t width, int64_t height, int channels, uint32_t seed) {
  Image image = make_image(width, height, channels, 8);
  std::mt19937 rng(seed);
  for (auto& value : image.data8) value = static_cast<uint8_t>(rng() & 0xFF);
  return image;
}

// A smooth picture, the kind JPEG is made for: random pixels would measure JPEG's worst case.
Image smooth_image(int64_t width, int64_t height, int channels) {
  Image image = make_image(width, height, channels, 8);
  for (int64_t y = 0; y < height; ++y)
    for (int64_t x = 0; x < width; ++x)
      for (int c = 0; c < channels; ++c)
        image.data8[(y * width + x) * channels + c] =
            static_cast<uint8_t>(127.5 + 100 * std::sin(0.07 * x * (c + 1) + 0.05 * y));
  return image;
}

double mean_abs_error(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  REQUIRE(a.size() == b.size());
  double sum = 0;
  for (size_t i = 0; i < a.size(); ++i) sum += std::abs(int{a[i]} - int{b[i]});
  return sum / static_cast<double>(a.size());
}

// The first `count` bytes, as a truncated file would hold them.
std::vector<uint8_t> prefix(const std::vector<uint8_t>& bytes, size_t count) {
  return {bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(count)};
}

Image decode(const std::vector<uint8_t>& bytes, const std::string& source,
             int64_t max_pixels = kDefaultMaxPixels) {
  return decode_image(bytes.data(), bytes.size(), source, max_pixels);
}

}  // namespace

TEST_CASE("image_io make_image zeroes pixels of either depth", "[image_io]") {
  const Image eight = make_image(3, 2, 4, 8);
  CHECK(eight.data8 == std::vector<uint8_t>(24, 0));
  CHECK(eight.data16.empty());
  const Image sixteen = make_image(3, 2, 1, 16);
  CHECK(sixteen.data16 == std::vector<uint16_t>(6, 0));
  CHECK(sixteen.data8.empty());
  expect_error([] { make_image(2, 2, 5, 8); }, {"channels"});
  expect_error([] { make_image(2, 2, 3, 12); }, {"bits"});
  expect_error([] { make_image(-1, 2, 3, 8); }, {"negative"});
}

TEST_CASE("image_io PNG 8-bit round trip is exact for 1 to 4 channels", "[image_io]") {
  ScratchDir scratch;
  for (int channels = 1; channels <= 4; ++channels) {
    const Image image = random_image(37, 23, channels, 100 + channels);
    const Image back = decode(encode_image(image, ImageFormat::PNG), "memory.png");
    CHECK(back.width == 37);
    CHECK(back.height == 23);
    CHECK(back.channels == channels);
    CHECK(back.bits == 8);
    CHECK(back.data8 == image.data8);

    const std::string path = scratch.file(std::to_string(channels) + "_channels.png");
    write_image(path, image);
    CHECK(read_image(path).data8 == image.data8);
  }
}

TEST_CASE("image_io 16-bit images are written as 8-bit PNG, rounded", "[image_io]") {
  Image image = make_image(4, 1, 1, 16);
  // round(q / 257) for values at and around the rounding boundary 128.5 / 257.
  image.data16 = {0, 128, 129, 65535};
  const Image back = decode(encode_image(image, ImageFormat::PNG), "memory.png");
  CHECK(back.bits == 8);
  CHECK(back.data8 == std::vector<uint8_t>{0, 0, 1, 255});
}

TEST_CASE("image_io JPEG round trip is close", "[image_io]") {
  ScratchDir scratch;
  // Measured mean absolute errors at quality 95 on this smooth 64x48 picture: 0.87 levels for
  // RGB (chroma subsampled), 0.18 for gray (luma only). 2.0 leaves room for rounding changes in
  // stb without admitting a swapped channel or a misplaced block (tens of levels off).
  const double tolerance = 2.0;
  const Image rgb = smooth_image(64, 48, 3);
  const Image back = decode(encode_image(rgb, ImageFormat::JPEG, 95), "memory.jpg");
  CHECK(back.channels == 3);
  CHECK(mean_abs_error(back.data8, rgb.data8) < tolerance);

  // stb writes every JPEG as three-component YCbCr, so gray comes back as RGB with equal
  // channels (give or take chroma rounding).
  const Image gray = smooth_image(64, 48, 1);
  const std::string path = scratch.file("gray.JPEG");
  write_image(path, gray, 95);
  const Image gray_back = read_image(path);
  REQUIRE(gray_back.channels == 3);
  std::vector<uint8_t> red;
  for (size_t i = 0; i < gray_back.data8.size(); i += 3) red.push_back(gray_back.data8[i]);
  CHECK(mean_abs_error(red, gray.data8) < tolerance);

  // Lower quality makes a smaller file.
  CHECK(encode_image(rgb, ImageFormat::JPEG, 30).size() <
        encode_image(rgb, ImageFormat::JPEG, 95).size());
}

TEST_CASE("image_io reads 16-bit gray and RGB PNG fixtures exactly", "[image_io]") {
  const Image gray = read_image(kImages + "gray16.png");
  CHECK(gray.width == 5);
  CHECK(gray.height == 3);
  CHECK(gray.channels == 1);
  REQUIRE(gray.bits == 16);
  REQUIRE(gray.data16.size() == 15);
  for (int i = 0; i < 15; ++i) CHECK(gray.data16[i] == i * 65535 / 14);
  CHECK(gray.unit(0, 0, 0) == -1.0f);
  CHECK(gray.unit(4, 2, 0) == 1.0f);

  const Image rgb = read_image(kImages + "rgb16.png");
  CHECK(rgb.width == 4);
  CHECK(rgb.height == 3);
  CHECK(rgb.channels == 3);
  REQUIRE(rgb.bits == 16);
  REQUIRE(rgb.data16.size() == 36);
  for (int k = 0; k < 36; ++k) CHECK(rgb.data16[k] == k * 65535 / 35);
}

TEST_CASE("image_io keeps the alpha a PNG tRNS chunk adds", "[image_io]") {
  const Image gray = read_image(kImages + "gray_trns.png");
  REQUIRE(gray.channels == 2);
  // Gray 32 i; the tRNS gray value 64 (pixel 2) is transparent.
  CHECK(gray.data8 == std::vector<uint8_t>{0, 255, 32, 255, 64, 0, 96, 255, 128, 255, 160, 255});

  const Image palette = read_image(kImages + "palette_trns.png");
  REQUIRE(palette.channels == 4);
  // Entries red, green, blue, white; tRNS gives the first two alpha 0 and 128.
  const std::vector<uint8_t> entries[4] = {
      {255, 0, 0, 0}, {0, 255, 0, 128}, {0, 0, 255, 255}, {255, 255, 255, 255}};
  for (int i = 0; i < 6; ++i) {
    const std::vector<uint8_t> pixel(palette.data8.begin() + 4 * i,
                                     palette.data8.begin() + 4 * i + 4);
    CHECK(pixel == entries[i % 4]);
  }
}

TEST_CASE("image_io reads BMP and TGA fixtures exactly", "[image_io]") {
  for (const char* name : {"rgb.bmp", "rgb.tga"}) {
    INFO(name);
    const Image image = read_image(kImages + name);
    REQUIRE(image.width == 5);
    REQUIRE(image.height == 4);
    REQUIRE(image.channels == 3);
    CHECK(image.bits == 8);
    for (int y = 0; y < 4; ++y) {
      for (int x = 0; x < 5; ++x) {
        const uint8_t* pixel = &image.data8[(y * 5 + x) * 3];
        CHECK(int{pixel[0]} == 50 * x);
        CHECK(int{pixel[1]} == 60 * y);
        CHECK(int{pixel[2]} == 20 * (x + y));
      }
    }
  }
}

TEST_CASE("image_io reads JPEG fixtures written by PIL", "[image_io]") {
  const Image rgb = read_image(kImages + "rgb.jpg");
  REQUIRE(rgb.width == 16);
  REQUIRE(rgb.height == 16);
  REQUIRE(rgb.channels == 3);
  Image expected = make_image(16, 16, 3, 8);
  for (int y = 0; y < 16; ++y) {
    for (int x = 0; x < 16; ++x) {
      uint8_t* pixel = &expected.data8[(y * 16 + x) * 3];
      pixel[0] = static_cast<uint8_t>(16 * x);
      pixel[1] = static_cast<uint8_t>(16 * y);
      pixel[2] = static_cast<uint8_t>(8 * (x + y));
    }
  }
  // PIL at quality 95 with 4:2:0 chroma; decoded by stb the mean error measures 1.08 levels on
  // this gradient. 3.0 allows a different IDCT's rounding, not a misdecoded block.
  CHECK(mean_abs_error(rgb.data8, expected.data8) < 3.0);

  const Image gray = read_image(kImages + "gray.jpg");
  REQUIRE(gray.channels == 1);
  REQUIRE(gray.data8.size() == 64);
  std::vector<uint8_t> ramp;
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 8; ++x) ramp.push_back(static_cast<uint8_t>(32 * x));
  // Gray has no chroma to subsample: measured 0.25.
  CHECK(mean_abs_error(gray.data8, ramp) < 2.0);
}

TEST_CASE("image_io probe_image reads headers", "[image_io]") {
  struct Expected {
    const char* name;
    int64_t width, height;
    int channels, bits;
    ImageFormat format;
  };
  const Expected cases[] = {
      {"gray16.png", 5, 3, 1, 16, ImageFormat::PNG},
      {"rgb16.png", 4, 3, 3, 16, ImageFormat::PNG},
      {"gray_trns.png", 3, 2, 2, 8, ImageFormat::PNG},
      {"palette_trns.png", 3, 2, 4, 8, ImageFormat::PNG},
      {"huge.png", 100000, 100000, 3, 8, ImageFormat::PNG},
      {"rgb.bmp", 5, 4, 3, 8, ImageFormat::BMP},
      {"rgb.tga", 5, 4, 3, 8, ImageFormat::TGA},
      {"rgb.jpg", 16, 16, 3, 8, ImageFormat::JPEG},
      {"gray.jpg", 8, 8, 1, 8, ImageFormat::JPEG},
  };
  for (const auto& expected : cases) {
    INFO(expected.name);
    const auto bytes = read_bytes(kImages + expected.name);
    const ImageInfo info = probe_image(bytes.data(), bytes.size(), expected.name);
    CHECK(info.width == expected.width);
    CHECK(info.height == expected.height);
    CHECK(info.channels == expected.channels);
    CHECK(info.bits == expected.bits);
    CHECK(info.format == expected.format);
  }
  // An upper-case extension still says TGA; without it the bytes are not recognisable.
  const auto tga = read_bytes(kImages + "rgb.tga");
  CHECK(probe_image(tga.data(), tga.size(), "PICTURE.TGA").format == ImageFormat::TGA);
  expect_error([&] { probe_image(tga.data(), tga.size(), "picture.img"); },
               {"picture.img", "not an image", "TGA files need a .tga name"});
}

TEST_CASE("image_io refuses images over the pixel limit before decoding", "[image_io]") {
  // huge.png's IHDR claims 100000x100000 (valid CRC) but holds one row: decoding it would fail
  // differently ("too large" / corrupt), so this message shows the header check came first.
  expect_error([] { read_image(kImages + "huge.png"); },
               {"huge.png", "100000x100000", "10000000000 pixels", "limit is 268435456"});
  // The limit is the caller's: 5x3 = 15 pixels against 14 and 15.
  const auto bytes = read_bytes(kImages + "gray16.png");
  expect_error([&] { decode(bytes, "small.png", 14); }, {"small.png", "5x3", "limit is 14"});
  CHECK(decode(bytes, "small.png", 15).width == 5);
  const auto jpeg = read_bytes(kImages + "rgb.jpg");
  expect_error([&] { decode(jpeg, "photo.jpg", 255); }, {"photo.jpg", "16x16", "limit is 255"});
}

TEST_CASE("image_io rejects missing, empty and non-image input", "[image_io]") {
  ScratchDir scratch;
  const std::string missing = scratch.file("missing.png");
  expect_error([&] { read_image(missing); }, {missing, "No such file or directory"});
  expect_error([&] { read_image(scratch.path.string()); }, {scratch.path.string(), "directory"});

  const std::string empty = scratch.file("empty.png");
  write_bytes(empty, {});
  expect_error([&] { read_image(empty); }, {empty, "empty file"});

  const std::string text = scratch.file("notes.png");
  const std::string words = "these are not the pixels you are looking for";
  write_bytes(text, std::vector<uint8_t>(words.begin(), words.end()));
  expect_error([&] { read_image(text); }, {text, "not an image", "PNG, JPEG, BMP, TGA"});

  const std::vector<uint8_t> gif = {'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0, 0, 0, 0};
  expect_error([&] { decode(gif, "anim.gif"); },
               {"anim.gif", "unsupported image format GIF", "PNG, JPEG, BMP, TGA"});
}

TEST_CASE("image_io rejects corrupt PNG headers", "[image_io]") {
  const auto good = read_bytes(kImages + "gray16.png");
  auto bad_crc = good;
  bad_crc[20] ^= 1;  // the width's low byte, covered by IHDR's CRC
  expect_error([&] { decode(bad_crc, "crc.png"); }, {"crc.png", "IHDR checksum mismatch"});
  auto bad_type = good;
  bad_type[12] = 'X';  // the first chunk's type
  expect_error([&] { decode(bad_type, "type.png"); }, {"type.png", "not a 13-byte IHDR"});
}

TEST_CASE("image_io rejects corrupt JPEG and BMP headers", "[image_io]") {
  // A DHT segment whose 16 code counts sum past 256 (here 16 * 255) would make stb write beyond
  // its Huffman table: refused before stb reads it, by probe and decode alike.
  auto jpeg = encode_image(smooth_image(16, 16, 3), ImageFormat::JPEG);
  const uint8_t dht_marker[] = {0xFF, 0xC4};
  const auto dht =
      std::search(jpeg.begin(), jpeg.end(), std::begin(dht_marker), std::end(dht_marker));
  REQUIRE(dht != jpeg.end());
  std::fill(dht + 5, dht + 21, 255);  // after the marker, the length and the class/id byte
  expect_error([&] { probe_image(jpeg.data(), jpeg.size(), "dht.jpg"); },
               {"dht.jpg", "Huffman table has more than 256 codes"});
  expect_error([&] { decode(jpeg, "dht.jpg"); }, {"dht.jpg", "more than 256 codes"});

  auto bmp = read_bytes(kImages + "rgb.bmp");
  std::fill(bmp.begin() + 18, bmp.begin() + 22, 0);  // BITMAPINFOHEADER width
  expect_error([&] { decode(bmp, "zero.bmp"); }, {"zero.bmp", "corrupt BMP: invalid size 0x4"});
}

TEST_CASE("image_io truncated PNG and JPEG throw at every cut point", "[image_io]") {
  const Image image = smooth_image(40, 30, 3);
  const auto png = encode_image(image, ImageFormat::PNG);
  const auto jpeg = encode_image(image, ImageFormat::JPEG, 90);
  struct Case {
    const char* source;
    const std::vector<uint8_t>* bytes;
  };
  for (const Case& c : {Case{"cut.png", &png}, Case{"cut.jpg", &jpeg}}) {
    const size_t size = c.bytes->size();
    // Inside the signature, inside the header, then through the pixel data up to one byte
    // short: each must throw an error naming the file, never crash or return an image.
    std::vector<size_t> cuts = {1,  2,   3,        10,        20,       30,
                                40, 100, size / 2, size - 12, size - 2, size - 1};
    for (size_t cut = 150; cut < size; cut += 97) cuts.push_back(cut);
    for (size_t cut : cuts) {
      INFO(c.source << " cut at " << cut << " of " << size);
      expect_error([&] { decode(prefix(*c.bytes, cut), c.source); }, {c.source});
    }
  }
  expect_error([&] { decode(prefix(png, 20), "cut.png"); }, {"cut.png", "truncated PNG header"});
  expect_error([&] { decode(prefix(jpeg, 40), "cut.jpg"); },
               {"cut.jpg", "JPEG header (truncated or corrupt)"});
  expect_error([&] { decode(prefix(png, png.size() - 30), "cut.png"); },
               {"cut.png", "truncated PNG", "IEND"});
  // Whole but corrupt: the zlib stream's first byte (after signature, IHDR and the IDAT
  // chunk's length and type) names no known compression method.
  auto corrupt = png;
  REQUIRE(std::equal(corrupt.begin() + 37, corrupt.begin() + 41, "IDAT"));
  corrupt[41] = 0;
  expect_error([&] { decode(corrupt, "zlib.png"); },
               {"zlib.png", "cannot decode PNG", "Corrupt PNG"});
  expect_error([&] { decode(prefix(jpeg, jpeg.size() - 30), "cut.jpg"); },
               {"cut.jpg", "cannot decode JPEG", "Corrupt JPEG"});
}

TEST_CASE("image_io survives random corruption of every fixture", "[image_io]") {
  // Mutated and cut copies of each fixture either decode to a consistent image or throw
  // deblur::Error: nothing else, and (under a sanitizer build) no memory error. A local run of
  // 500k such inputs under ASan and UBSan found the Huffman overflow now refused up front.
  std::mt19937 rng(2024);
  for (const char* name : {"gray16.png", "rgb16.png", "gray_trns.png", "palette_trns.png",
                           "rgb.bmp", "rgb.tga", "rgb.jpg", "gray.jpg"}) {
    const auto good = read_bytes(kImages + name);
    for (int trial = 0; trial < 400; ++trial) {
      auto bytes = good;
      const int flips = 1 + static_cast<int>(rng() % 6);
      for (int i = 0; i < flips; ++i) bytes[rng() % bytes.size()] = static_cast<uint8_t>(rng());
      if (trial % 4 == 0) bytes.resize(1 + rng() % bytes.size());
      try {
        const Image image = decode(bytes, name, 1 << 20);
        const size_t values = static_cast<size_t>(image.width * image.height * image.channels);
        CHECK(values == (image.bits == 8 ? image.data8.size() : image.data16.size()));
      } catch (const Error&) {
      }
    }
  }
}

TEST_CASE("image_io output extensions", "[image_io]") {
  CHECK(output_format_for("a/b/out.png") == ImageFormat::PNG);
  CHECK(output_format_for("OUT.PNG") == ImageFormat::PNG);
  CHECK(output_format_for("x.jpg") == ImageFormat::JPEG);
  CHECK(output_format_for("x.JPeG") == ImageFormat::JPEG);
  expect_error([] { output_format_for("out.bmp"); },
               {"out.bmp", "unknown output extension '.bmp'", ".png, .jpg, .jpeg"});
  expect_error([] { output_format_for("png"); }, {"'png'", "unknown output extension ''"});
  expect_error([] { encode_image(make_image(2, 2, 3, 8), ImageFormat::BMP); },
               {"cannot encode BMP"});
  expect_error([] { encode_image(make_image(2, 2, 3, 8), ImageFormat::JPEG, 0); },
               {"quality", "1..100"});
}

TEST_CASE("image_io write failures leave no file behind", "[image_io]") {
  ScratchDir scratch;
  const Image image = random_image(8, 8, 3, 7);

  const std::string unknown = scratch.file("out.webp");
  expect_error([&] { write_image(unknown, image); }, {unknown, "unknown output extension"});

  const std::string no_dir = scratch.file("no/such/dir/out.png");
  expect_error([&] { write_image(no_dir, image); }, {no_dir, "No such file or directory"});

  // A regular file where a directory should be: unwritable even for root.
  write_bytes(scratch.file("plain"), {1, 2, 3});
  const std::string under_file = scratch.file("plain/out.png");
  expect_error([&] { write_image(under_file, image); }, {under_file, "Not a directory"});

  // The rename fails (a directory is in the way) after the temp file was written: it must go.
  fs::create_directories(scratch.path / "taken.png" / "inside");
  const std::string taken = scratch.file("taken.png");
  expect_error([&] { write_image(taken, image); }, {taken, "rename"});
  CHECK(fs::is_directory(taken));

  auto entries = scratch.entries();
  std::sort(entries.begin(), entries.end());
  CHECK(entries == std::vector<std::string>{"plain", "taken.png"});
}

TEST_CASE("image_io overwriting an existing file replaces it whole", "[image_io]") {
  ScratchDir scratch;
  const std::string path = scratch.file("out.png");
  write_image(path, random_image(9, 5, 4, 1));
  const Image second = random_image(31, 17, 3, 2);
  write_image(path, second);
  const Image back = read_image(path);
  CHECK(back.width == 31);
  CHECK(back.channels == 3);
  CHECK(back.data8 == second.data8);
  CHECK(scratch.entries() == std::vector<std::string>{"out.png"});
}
