// Image files in and out: probe a header, decode PNG (8/16-bit), JPEG, BMP and TGA from memory
// or from a file, encode PNG and JPEG, and write them atomically. Built on stb_image and
// stb_image_write; every failure is a deblur::Error naming the file and the problem.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "infer/image.h"

namespace deblur {

enum class ImageFormat { PNG, JPEG, BMP, TGA };

// What a file's header says, without decoding pixels.
struct ImageInfo {
  int64_t width = 0, height = 0;
  int channels = 0;  // as stored: 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA
  int bits = 8;      // 16 only for 16-bit PNG
  ImageFormat format = ImageFormat::PNG;
};

// Decoding refuses images with more pixels than this (16384 x 16384), checked from the header
// before any pixel memory is allocated.
inline constexpr int64_t kDefaultMaxPixels = 268'435'456;

// "PNG", "JPEG", "BMP", "TGA".
const char* format_name(ImageFormat format);

// Reads the header only. The format comes from the signature (PNG, JPEG, BMP) or, for TGA, which
// has none, from a ".tga" ending of `source`. Errors name `source` and say what is wrong: empty,
// not an image / unsupported format, or a header stb cannot parse (truncated or corrupt). For
// JPEG it also scans the marker list for Huffman tables that overflow Debian's stb (see .cpp).
ImageInfo probe_image(const uint8_t* bytes, size_t size, const std::string& source);

// Decodes 8- and 16-bit PNG (16-bit stays 16-bit), JPEG, BMP and TGA, keeping the channel count
// the file stores (a PNG tRNS chunk adds an alpha channel, a palette expands to RGB or RGBA).
// width * height is checked against max_pixels from the header before decoding. Corrupt or
// truncated data (a PNG must be whole through IEND): an error naming `source` with the reason.
Image decode_image(const uint8_t* bytes, size_t size, const std::string& source,
                   int64_t max_pixels = kDefaultMaxPixels);

// Reads the whole file (missing or unreadable: an error with the path and strerror) and decodes
// it as decode_image does.
Image read_image(const std::string& path, int64_t max_pixels = kDefaultMaxPixels);

// Encodes as PNG or JPEG (quality 1..100). stb writes 8-bit only, so a 16-bit image is converted
// to 8 bits per channel (round(q / 257)) first. JPEG has no alpha channel: stb drops it.
std::vector<uint8_t> encode_image(const Image& image, ImageFormat format, int jpeg_quality = 95);

// The output format for a path's extension: .png, .jpg or .jpeg, in any case; anything else is an
// error naming the path and the supported extensions. Lets callers fail before doing any work.
ImageFormat output_format_for(const std::string& path);

// Encodes for the format output_format_for(path) picks and writes atomically: the bytes go to
// path + ".tmp-<pid>" in the same directory, every write and the close are checked (disk full),
// then the temp file is renamed over `path`. On any failure the temp file is removed and an
// error thrown, so `path` holds either its old contents or the whole new image.
void write_image(const std::string& path, const Image& image, int jpeg_quality = 95);

}  // namespace deblur
