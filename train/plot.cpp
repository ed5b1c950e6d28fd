// metrics.png from metrics.csv (train/plot.h).
#include "train/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include "engine/check.h"
#include "infer/image_io.h"

namespace deblur::train {

namespace {

struct Rgb {
  uint8_t r, g, b;
};
constexpr Rgb kBlack{20, 20, 20}, kGrid{225, 225, 225}, kBlue{31, 119, 180}, kOrange{255, 127, 14},
    kGreen{44, 160, 44}, kGray{140, 140, 140};

// 3x5 glyphs, one row per 3 bits (top row in the high bits).
const std::map<char, uint16_t>& glyphs() {
  static const std::map<char, uint16_t> table = {
      {'0', 0b111101101101111}, {'1', 0b010110010010111}, {'2', 0b111001111100111},
      {'3', 0b111001111001111}, {'4', 0b101101111001001}, {'5', 0b111100111001111},
      {'6', 0b111100111101111}, {'7', 0b111001001001001}, {'8', 0b111101111101111},
      {'9', 0b111101111001111}, {'.', 0b000000000000010}, {'-', 0b000000111000000},
      {':', 0b000010000010000}, {'A', 0b010101111101101}, {'B', 0b110101110101110},
      {'C', 0b011100100100011}, {'D', 0b110101101101110}, {'E', 0b111100110100111},
      {'H', 0b101101111101101}, {'I', 0b111010010010111}, {'L', 0b100100100100111},
      {'N', 0b110101101101101}, {'O', 0b010101101101010}, {'P', 0b110101110100100},
      {'R', 0b110101110101101}, {'S', 0b011100010001110}, {'T', 0b111010010010010},
      {'U', 0b101101101101111}, {'V', 0b101101101101010}, {'(', 0b010100100100010},
      {')', 0b010001001001010}};
  return table;
}

class Canvas {
 public:
  Canvas(int64_t w, int64_t h) : image_(make_image(w, h, 3, 8)) {
    std::fill(image_.data8.begin(), image_.data8.end(), uint8_t{255});
  }
  void dot(int64_t x, int64_t y, Rgb c) {
    if (x < 0 || y < 0 || x >= image_.width || y >= image_.height) return;
    uint8_t* p = &image_.data8[static_cast<size_t>((y * image_.width + x) * 3)];
    p[0] = c.r, p[1] = c.g, p[2] = c.b;
  }
  void line(double x0, double y0, double x1, double y1, Rgb c, int thickness = 2) {
    const int64_t n = static_cast<int64_t>(std::max(std::abs(x1 - x0), std::abs(y1 - y0))) + 1;
    for (int64_t i = 0; i <= n; ++i) {
      const double t = double(i) / double(n);
      const int64_t x = std::lround(x0 + (x1 - x0) * t), y = std::lround(y0 + (y1 - y0) * t);
      for (int d = 0; d < thickness; ++d) dot(x, y + d, c);
    }
  }
  // Text at (x, y), glyphs scaled 2x (6x10 pixels, 8 apart); unknown characters are blanks.
  void text(int64_t x, int64_t y, const std::string& s, Rgb c) {
    for (char ch : s) {
      const auto it = glyphs().find(static_cast<char>(std::toupper(static_cast<unsigned char>(ch))));
      if (it != glyphs().end())
        for (int row = 0; row < 5; ++row)
          for (int col = 0; col < 3; ++col)
            if (it->second >> (14 - row * 3 - col) & 1)
              for (int k = 0; k < 4; ++k) dot(x + col * 2 + k % 2, y + row * 2 + k / 2, c);
      x += 8;
    }
  }
  const Image& image() const { return image_; }

 private:
  Image image_;
};

std::string label(double v) {
  char s[32];
  std::snprintf(s, sizeof s, std::abs(v) >= 10 ? "%.1f" : "%.3f", v);
  return s;
}

struct Series {
  std::vector<double> values;
  Rgb colour;
  std::string name;
};

// One panel: series against epochs 1..n in the rectangle (x, y, w, h), with its title.
void panel(Canvas& canvas, int64_t x, int64_t y, int64_t w, int64_t h, const std::string& title,
           const std::vector<Series>& series) {
  double lo = 1e300, hi = -1e300;
  size_t n = 0;
  for (const Series& s : series)
    for (double v : s.values)
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v), n = std::max(n, s.values.size());
  if (n == 0) return;
  if (hi - lo < 1e-9) lo -= 0.5, hi += 0.5;
  const double pad = 0.05 * (hi - lo);
  lo -= pad, hi += pad;
  for (int k = 0; k <= 4; ++k) canvas.line(x, y + h * k / 4.0, x + w, y + h * k / 4.0, kGrid, 1);
  canvas.line(x, y, x, y + h, kBlack, 1);
  canvas.line(x, y + h, x + w, y + h, kBlack, 1);
  canvas.text(x - 64, y - 4, label(hi), kBlack);
  canvas.text(x - 64, y + h - 8, label(lo), kBlack);
  canvas.text(x, y - 22, title, kBlack);
  canvas.text(x + w - 80, y + h + 8, "EPOCH " + std::to_string(n), kBlack);
  int64_t legend_x = x + 8 * static_cast<int64_t>(title.size()) + 24;
  for (const Series& s : series) {
    canvas.line(legend_x, y - 17, legend_x + 16, y - 17, s.colour);
    canvas.text(legend_x + 22, y - 22, s.name, s.colour);
    legend_x += 22 + 8 * static_cast<int64_t>(s.name.size()) + 20;
    auto px = [&](size_t i) { return x + (n == 1 ? w / 2.0 : double(w) * double(i) / double(n - 1)); };
    auto py = [&](double v) { return y + double(h) * (hi - v) / (hi - lo); };
    for (size_t i = 0; i < s.values.size(); ++i) {
      if (n == 1) canvas.line(px(i) - 3, py(s.values[i]), px(i) + 3, py(s.values[i]), s.colour);
      if (i > 0) canvas.line(px(i - 1), py(s.values[i - 1]), px(i), py(s.values[i]), s.colour);
    }
  }
}

}  // namespace

void plot_metrics(const std::string& csv_path, const std::string& png_path) {
  std::ifstream in(csv_path);
  DEBLUR_CHECK(in, csv_path, ": cannot read");
  std::string line;
  std::getline(in, line);
  std::vector<std::string> header;
  {
    std::stringstream s(line);
    std::string cell;
    while (std::getline(s, cell, ',')) header.push_back(cell);
  }
  std::map<std::string, std::vector<double>> columns;
  while (std::getline(in, line)) {
    std::stringstream s(line);
    std::string cell;
    for (size_t k = 0; k < header.size() && std::getline(s, cell, ','); ++k)
      columns[header[k]].push_back(std::strtod(cell.c_str(), nullptr));
  }
  for (const char* needed : {"train_loss", "val_loss", "val_psnr", "input_psnr"})
    DEBLUR_CHECK(columns.count(needed), csv_path, ": no '", needed, "' column");
  Canvas canvas(800, 560);
  panel(canvas, 80, 40, 690, 200, "LOSS",
        {{columns["train_loss"], kBlue, "TRAIN"}, {columns["val_loss"], kOrange, "VAL"}});
  panel(canvas, 80, 320, 690, 200, "PSNR (DB)",
        {{columns["val_psnr"], kGreen, "VAL"}, {columns["input_psnr"], kGray, "INPUT"}});
  write_image(png_path, canvas.image());
}

}  // namespace deblur::train
