// Image: a decoded picture in memory, interleaved rows (HWC) of 8- or 16-bit channels, as files
// hold them. The model sees RGB in [-1, 1]: an 8-bit value p maps to p / 127.5 - 1 and a 16-bit
// value q to q / 32767.5 - 1; an output y maps back to round((clamp(y, -1, 1) + 1) * 127.5)
// (or * 32767.5). Gray inputs run as RGB with the gray value in every channel; alpha is passed
// through untouched.
#pragma once

#include <cstdint>
#include <vector>

namespace deblur {

struct Image {
  int64_t width = 0, height = 0;
  int channels = 0;  // 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA
  int bits = 8;      // 8 or 16 per channel
  std::vector<uint8_t> data8;    // width * height * channels values when bits == 8
  std::vector<uint16_t> data16;  // the same when bits == 16

  bool has_alpha() const { return channels == 2 || channels == 4; }
  int color_channels() const { return has_alpha() ? channels - 1 : channels; }
  // Channel c of pixel (x, y) mapped to [-1, 1].
  float unit(int64_t x, int64_t y, int c) const {
    const int64_t i = (y * width + x) * channels + c;
    return bits == 8 ? data8[i] / 127.5f - 1.0f : data16[i] / 32767.5f - 1.0f;
  }
};

// An image of the given geometry with zeroed pixels.
Image make_image(int64_t width, int64_t height, int channels, int bits);

}  // namespace deblur
