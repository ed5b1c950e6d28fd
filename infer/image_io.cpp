// Image files in and out (infer/image_io.h) and make_image (infer/image.h): format sniffing, the
// PNG header read by hand, stb_image decoding from memory, stb_image_write encoding, and atomic
// file writes.
#include "infer/image_io.h"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "engine/check.h"
#include "engine/file_io.h"

// stb's implementation lives in this file only, with internal linkage (STB_*_STATIC) so it
// cannot clash with another copy linked into the same program. Memory buffers only: no stdio.
// USERMSG makes stbi_failure_reason() say "Corrupt PNG" rather than an internal tag.
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_ONLY_TGA
#define STBI_NO_STDIO
#define STBI_FAILURE_USERMSG
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#define STBI_WRITE_NO_STDIO
// stb's own warnings only (unused statics under STB_*_STATIC, partial initialisers).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#include <stb_image.h>
#include <stb_image_write.h>
#pragma GCC diagnostic pop

namespace deblur {

namespace {

constexpr uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
// Signature (8) + IHDR length and type (8) + IHDR data (13) + its CRC (4).
constexpr size_t kPngHeaderBytes = 33;
constexpr char kSupported[] = "supported: PNG, JPEG, BMP, TGA";

// stb's reason for its last failure on this thread (stb keeps it thread-local).
std::string stb_reason() {
  const char* reason = stbi_failure_reason();
  return reason ? reason : "unknown stb error";
}

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

bool starts_with(const uint8_t* bytes, size_t size, const void* prefix, size_t length) {
  return size >= length && std::memcmp(bytes, prefix, length) == 0;
}

uint32_t read_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

// CRC-32 as PNG defines it (reflected, polynomial 0xEDB88320), bit by bit: it only ever covers
// the 17 bytes of the IHDR chunk.
uint32_t crc32(const uint8_t* bytes, size_t size) {
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) {
    crc ^= bytes[i];
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return crc ^ 0xFFFFFFFFu;
}

// A format named by its signature; TGA has none, so a ".tga" name is what says TGA. Formats
// people commonly try are named in the error so the user knows what to convert from.
ImageFormat sniff_format(const uint8_t* bytes, size_t size, const std::string& source) {
  DEBLUR_CHECK(size > 0, source, ": empty file, not an image");
  if (starts_with(bytes, size, kPngSignature, sizeof(kPngSignature))) return ImageFormat::PNG;
  if (starts_with(bytes, size, "\xFF\xD8\xFF", 3)) return ImageFormat::JPEG;
  if (starts_with(bytes, size, "BM", 2)) return ImageFormat::BMP;
  const char* other = nullptr;
  if (starts_with(bytes, size, "GIF87a", 6) || starts_with(bytes, size, "GIF89a", 6)) {
    other = "GIF";
  } else if (size >= 12 && starts_with(bytes, size, "RIFF", 4) &&
             std::memcmp(bytes + 8, "WEBP", 4) == 0) {
    other = "WebP";
  } else if (starts_with(bytes, size, "II*\0", 4) || starts_with(bytes, size, "MM\0*", 4)) {
    other = "TIFF";
  } else if (starts_with(bytes, size, "8BPS", 4)) {
    other = "PSD";
  }
  DEBLUR_CHECK(!other, source, ": unsupported image format ", other, " (", kSupported, ")");
  if (lower(std::filesystem::path(source).extension().string()) == ".tga") {
    return ImageFormat::TGA;
  }
  throw Error(detail::concat(source, ": not an image: unrecognised file signature (", kSupported,
                             "; TGA files need a .tga name)"));
}

// What the chunk list says beyond IHDR, from chunk headers alone.
struct PngChunks {
  bool transparency = false;  // a tRNS chunk before the image data: stb then adds alpha to
                              // gray and RGB images (and palette images expand to RGBA)
  bool complete = false;      // every chunk through IEND lies inside the buffer
};

PngChunks scan_png_chunks(const uint8_t* bytes, size_t size) {
  PngChunks chunks;
  bool image_data = false;
  size_t pos = sizeof(kPngSignature);
  while (size - pos >= 8) {
    const uint32_t length = read_be32(bytes + pos);
    const uint8_t* type = bytes + pos + 4;
    if (size - pos - 8 < size_t{length} + 4) break;  // data or CRC cut off
    if (std::memcmp(type, "IDAT", 4) == 0) image_data = true;
    if (!image_data && std::memcmp(type, "tRNS", 4) == 0) chunks.transparency = true;
    if (std::memcmp(type, "IEND", 4) == 0) {
      chunks.complete = true;
      break;
    }
    pos += 12 + size_t{length};
  }
  return chunks;
}

// The PNG header read by hand rather than through stb, because stb's header check refuses
// images over 2^30 bytes with its own message before the caller's pixel limit can name the size.
ImageInfo probe_png(const uint8_t* bytes, size_t size, const std::string& source) {
  DEBLUR_CHECK(size >= kPngHeaderBytes, source, ": truncated PNG header (", size, " bytes, needs ",
               kPngHeaderBytes, ")");
  const uint8_t* chunk = bytes + sizeof(kPngSignature);
  DEBLUR_CHECK(read_be32(chunk) == 13 && std::memcmp(chunk + 4, "IHDR", 4) == 0, source,
               ": corrupt PNG: the first chunk is not a 13-byte IHDR");
  DEBLUR_CHECK(crc32(chunk + 4, 17) == read_be32(chunk + 21), source,
               ": corrupt PNG: IHDR checksum mismatch");
  const uint8_t* ihdr = chunk + 8;
  const uint32_t width = read_be32(ihdr), height = read_be32(ihdr + 4);
  const int depth = ihdr[8], color = ihdr[9];
  DEBLUR_CHECK(width > 0 && height > 0 && width <= INT32_MAX && height <= INT32_MAX, source,
               ": corrupt PNG: invalid size ", width, "x", height);
  ImageInfo info;
  info.width = width;
  info.height = height;
  info.format = ImageFormat::PNG;
  info.bits = depth == 16 ? 16 : 8;
  bool valid_depth = false;
  switch (color) {
    case 0:  // gray: 1, 2, 4, 8 or 16 bits, expanded to 8 or 16
      info.channels = 1;
      valid_depth = depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16;
      break;
    case 2:  // RGB
      info.channels = 3;
      valid_depth = depth == 8 || depth == 16;
      break;
    case 3:  // palette, expanded to RGB
      info.channels = 3;
      valid_depth = depth == 1 || depth == 2 || depth == 4 || depth == 8;
      break;
    case 4:  // gray + alpha
      info.channels = 2;
      valid_depth = depth == 8 || depth == 16;
      break;
    case 6:  // RGBA
      info.channels = 4;
      valid_depth = depth == 8 || depth == 16;
      break;
    default:
      throw Error(detail::concat(source, ": corrupt PNG: unknown color type ", color));
  }
  DEBLUR_CHECK(valid_depth, source, ": corrupt PNG: bit depth ", depth,
               " is invalid for color type ", color);
  if ((color == 0 || color == 2 || color == 3) && scan_png_chunks(bytes, size).transparency) {
    ++info.channels;
  }
  return info;
}

// Debian's stb_image (2.27) builds a JPEG Huffman table before checking that its code counts
// sum to at most 256, and so writes past the table for a crafted DHT segment (nothings/stb#1289,
// fixed upstream later). This walks the markers as stb reads them and refuses such a table.
// Segments are skipped by their stated length; entropy-coded data is scanned for the next
// marker (0xFF00 is a stuffed byte, 0xFFD0-D7 are restarts, 0xFF may be repeated as fill).
bool jpeg_huffman_counts_valid(const uint8_t* bytes, size_t size) {
  // Past the end stb reads zeros, and so does this.
  const auto byte_at = [&](size_t i) -> uint32_t { return i < size ? bytes[i] : 0; };
  size_t pos = 2;  // after SOI
  while (pos + 1 < size) {
    const uint32_t marker = bytes[pos + 1];
    if (bytes[pos] != 0xFF || marker == 0xFF) {
      ++pos;
      continue;
    }
    if (marker == 0x00 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {
      pos += 2;
      continue;
    }
    if (marker == 0xD9) break;  // EOI
    const size_t length = (byte_at(pos + 2) << 8) | byte_at(pos + 3);
    if (marker == 0xC4) {
      // stb reads tables while the stated length lasts, even past the segment's end.
      int64_t left = static_cast<int64_t>(length) - 2;
      size_t table = pos + 4;
      while (left > 0) {
        if ((byte_at(table) >> 4) > 1 || (byte_at(table) & 15) > 3) break;  // stb refuses it
        size_t codes = 0;
        for (size_t i = 1; i <= 16; ++i) codes += byte_at(table + i);
        if (codes > 256) return false;
        left -= static_cast<int64_t>(17 + codes);
        table += 17 + codes;
      }
    }
    pos += 2 + std::max<size_t>(length, 2);
  }
  return true;
}

// A stb-owned pixel buffer, freed however the decode ends.
struct StbFree {
  void operator()(void* pixels) const { stbi_image_free(pixels); }
};

void check_encodable(const Image& image) {
  DEBLUR_CHECK(image.width > 0 && image.height > 0, "encode_image: the image is empty (",
               image.width, "x", image.height, ")");
  DEBLUR_CHECK(image.channels >= 1 && image.channels <= 4,
               "encode_image: channels must be 1..4, got ", image.channels);
  DEBLUR_CHECK(image.bits == 8 || image.bits == 16, "encode_image: bits must be 8 or 16, got ",
               image.bits);
  DEBLUR_CHECK(image.width <= INT32_MAX && image.height <= INT32_MAX, "encode_image: size ",
               image.width, "x", image.height, " is too large");
  const size_t values = static_cast<size_t>(image.width * image.height * image.channels);
  const size_t held = image.bits == 8 ? image.data8.size() : image.data16.size();
  DEBLUR_CHECK(held == values, "encode_image: a ", image.width, "x", image.height, "x",
               image.channels, " image needs ", values, " values, it holds ", held);
}

void append_bytes(void* context, void* data, int size) {
  auto* out = static_cast<std::vector<uint8_t>*>(context);
  const auto* begin = static_cast<const uint8_t*>(data);
  out->insert(out->end(), begin, begin + size);
}

}  // namespace

Image make_image(int64_t width, int64_t height, int channels, int bits) {
  DEBLUR_CHECK(width >= 0 && height >= 0, "make_image: negative size ", width, "x", height);
  DEBLUR_CHECK(channels >= 1 && channels <= 4, "make_image: channels must be 1..4, got ", channels);
  DEBLUR_CHECK(bits == 8 || bits == 16, "make_image: bits must be 8 or 16, got ", bits);
  // Keeps width * height * channels from overflowing int64.
  DEBLUR_CHECK(height == 0 || width <= INT64_MAX / 4 / height, "make_image: size ", width, "x",
               height, " is too large");
  Image image;
  image.width = width;
  image.height = height;
  image.channels = channels;
  image.bits = bits;
  const auto values = static_cast<size_t>(width * height * channels);
  if (bits == 8) {
    image.data8.assign(values, 0);
  } else {
    image.data16.assign(values, 0);
  }
  return image;
}

const char* format_name(ImageFormat format) {
  switch (format) {
    case ImageFormat::PNG:
      return "PNG";
    case ImageFormat::JPEG:
      return "JPEG";
    case ImageFormat::BMP:
      return "BMP";
    case ImageFormat::TGA:
      return "TGA";
  }
  return "unknown";
}

ImageInfo probe_image(const uint8_t* bytes, size_t size, const std::string& source) {
  const ImageFormat format = sniff_format(bytes, size, source);
  if (format == ImageFormat::PNG) return probe_png(bytes, size, source);
  // stb takes the buffer length as an int.
  DEBLUR_CHECK(size <= INT_MAX, source, ": file too large (", size, " bytes; at most ", INT_MAX,
               ")");
  // Before stb's header reader, which builds the tables that precede the frame header.
  DEBLUR_CHECK(format != ImageFormat::JPEG || jpeg_huffman_counts_valid(bytes, size), source,
               ": corrupt JPEG: a Huffman table has more than 256 codes");
  int width = 0, height = 0, channels = 0;
  DEBLUR_CHECK(stbi_info_from_memory(bytes, static_cast<int>(size), &width, &height, &channels),
               source, ": cannot read the ", format_name(format),
               " header (truncated or corrupt): ", stb_reason());
  DEBLUR_CHECK(width > 0 && height > 0, source, ": corrupt ", format_name(format),
               ": invalid size ", width, "x", height);
  ImageInfo info;
  info.width = width;
  info.height = height;
  info.channels = channels;
  info.bits = 8;
  info.format = format;
  return info;
}

Image decode_image(const uint8_t* bytes, size_t size, const std::string& source,
                   int64_t max_pixels) {
  DEBLUR_CHECK(max_pixels > 0, "decode_image: max_pixels must be positive, got ", max_pixels);
  const ImageInfo info = probe_image(bytes, size, source);
  // Both sides are below 2^31, so the product cannot overflow.
  const int64_t pixels = info.width * info.height;
  DEBLUR_CHECK(pixels <= max_pixels, source, ": image too large: ", info.width, "x", info.height,
               " is ", pixels, " pixels, the limit is ", max_pixels);
  DEBLUR_CHECK(size <= INT_MAX, source, ": file too large (", size, " bytes; at most ", INT_MAX,
               ")");
  // stb stops at IEND without reading its CRC, so a file cut there would decode as if whole.
  DEBLUR_CHECK(info.format != ImageFormat::PNG || scan_png_chunks(bytes, size).complete, source,
               ": truncated PNG: the file ends before the IEND chunk is complete");

  // Ask for the channel count the header states, so the buffer's layout never depends on how
  // stb reports it (stb's own count omits the alpha it adds for a PNG tRNS chunk).
  int width = 0, height = 0, stored = 0;
  std::unique_ptr<void, StbFree> pixels_data(
      info.bits == 16
          ? static_cast<void*>(stbi_load_16_from_memory(bytes, static_cast<int>(size), &width,
                                                        &height, &stored, info.channels))
          : static_cast<void*>(stbi_load_from_memory(bytes, static_cast<int>(size), &width, &height,
                                                     &stored, info.channels)));
  DEBLUR_CHECK(pixels_data, source, ": cannot decode ", format_name(info.format), ": ",
               stb_reason());
  DEBLUR_CHECK(width == info.width && height == info.height, source, ": corrupt ",
               format_name(info.format), ": header says ", info.width, "x", info.height,
               ", decoder got ", width, "x", height);

  Image image = make_image(info.width, info.height, info.channels, info.bits);
  if (info.bits == 16) {
    std::memcpy(image.data16.data(), pixels_data.get(), image.data16.size() * sizeof(uint16_t));
  } else {
    std::memcpy(image.data8.data(), pixels_data.get(), image.data8.size());
  }
  return image;
}

Image read_image(const std::string& path, int64_t max_pixels) {
  // stb takes the buffer length as an int, so larger files are refused before reading them.
  const std::vector<uint8_t> bytes = read_file(path, INT_MAX);
  return decode_image(bytes.data(), bytes.size(), path, max_pixels);
}

std::vector<uint8_t> encode_image(const Image& image, ImageFormat format, int jpeg_quality) {
  DEBLUR_CHECK(format == ImageFormat::PNG || format == ImageFormat::JPEG,
               "encode_image: cannot encode ", format_name(format), " (PNG or JPEG only)");
  check_encodable(image);
  // stb's encoders index with int and JPEG stores 16-bit sides.
  const int64_t max_side = format == ImageFormat::JPEG ? 65535 : INT_MAX;
  DEBLUR_CHECK(image.width <= max_side && image.height <= max_side &&
                   (image.width * image.channels + 1) * image.height <= INT_MAX,
               "encode_image: ", image.width, "x", image.height, " is too large for ",
               format_name(format));
  DEBLUR_CHECK(jpeg_quality >= 1 && jpeg_quality <= 100,
               "encode_image: JPEG quality must be 1..100, got ", jpeg_quality);

  // stb writes 8 bits per channel: 16-bit values are rounded to the nearest 8-bit one.
  std::vector<uint8_t> narrowed;
  const uint8_t* pixels = image.data8.data();
  if (image.bits == 16) {
    narrowed.resize(image.data16.size());
    std::transform(image.data16.begin(), image.data16.end(), narrowed.begin(),
                   [](uint16_t q) { return static_cast<uint8_t>((q + 128) / 257); });
    pixels = narrowed.data();
  }

  std::vector<uint8_t> out;
  const int width = static_cast<int>(image.width), height = static_cast<int>(image.height);
  const int ok = format == ImageFormat::PNG
                     ? stbi_write_png_to_func(append_bytes, &out, width, height, image.channels,
                                              pixels, width * image.channels)
                     : stbi_write_jpg_to_func(append_bytes, &out, width, height, image.channels,
                                              pixels, jpeg_quality);
  DEBLUR_CHECK(ok, "encode_image: stb failed to encode a ", width, "x", height, " ",
               format_name(format), " (out of memory?)");
  return out;
}

ImageFormat output_format_for(const std::string& path) {
  const std::string extension = lower(std::filesystem::path(path).extension().string());
  if (extension == ".png") return ImageFormat::PNG;
  if (extension == ".jpg" || extension == ".jpeg") return ImageFormat::JPEG;
  throw Error(detail::concat("cannot write '", path, "': unknown output extension '", extension,
                             "' (supported: .png, .jpg, .jpeg)"));
}

void write_image(const std::string& path, const Image& image, int jpeg_quality) {
  const std::vector<uint8_t> bytes = encode_image(image, output_format_for(path), jpeg_quality);

  write_file_atomically(path, bytes.data(), bytes.size());
}

}  // namespace deblur
