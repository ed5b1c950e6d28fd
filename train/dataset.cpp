// Finding and checking training pairs, and cutting a sample's patch (train/dataset.h).
#include "train/dataset.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "engine/check.h"
#include "engine/file_io.h"
#include "infer/image_io.h"

namespace deblur::train {

namespace fs = std::filesystem;

namespace {

bool is_image_file(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp" || ext == ".tga";
}

bool is_dir(const fs::path& path) {
  std::error_code ec;
  return fs::is_directory(path, ec);
}

// Image files directly in `dir` (or, recursively, under it), in name order.
std::vector<fs::path> image_files(const fs::path& dir, bool recursive) {
  std::vector<fs::path> files;
  auto take = [&](const fs::directory_entry& entry) {
    std::error_code ec;
    if (entry.is_regular_file(ec) && is_image_file(entry.path())) files.push_back(entry.path());
  };
  if (recursive) {
    for (const auto& entry : fs::recursive_directory_iterator(dir)) take(entry);
  } else {
    for (const auto& entry : fs::directory_iterator(dir)) take(entry);
  }
  std::sort(files.begin(), files.end());
  return files;
}

// The header of an image file; errors name the file.
ImageInfo probe_file(const fs::path& path) {
  const std::vector<uint8_t> bytes = read_file(path.string());
  return probe_image(bytes.data(), bytes.size(), path.string());
}

void check_size(const ImageInfo& info, const fs::path& path, int64_t min_side) {
  DEBLUR_CHECK(info.width >= min_side && info.height >= min_side, path.string(), ": ", info.width,
               "x", info.height, " is smaller than the ", min_side, "x", min_side, " patch");
}

// Checks one blur/sharp pair from their headers; throws deblur::Error naming the file at fault.
ImagePair check_pair(const fs::path& blur, const fs::path& sharp, int64_t min_side) {
  const ImageInfo b = probe_file(blur);
  const ImageInfo s = probe_file(sharp);
  DEBLUR_CHECK(b.width == s.width && b.height == s.height, blur.string(), " is ", b.width, "x",
               b.height, " but its partner ", sharp.string(), " is ", s.width, "x", s.height);
  check_size(b, blur, min_side);
  return {blur.string(), sharp.string(), b.width, b.height};
}

// The pairs of one blur/ + sharp/ folder couple: every name must be in both.
void scan_couple(const fs::path& dir, const ScanOptions& options, Dataset& out) {
  const fs::path blur_dir = dir / "blur", sharp_dir = dir / "sharp";
  const std::vector<fs::path> blurs = image_files(blur_dir, false);
  const std::vector<fs::path> sharps = image_files(sharp_dir, false);
  auto fail_or_warn = [&](const std::string& message) {
    if (!options.skip_bad) throw Error(message);
    out.warnings.push_back(message + " (skipped)");
  };
  for (const fs::path& sharp : sharps)
    if (!fs::exists(blur_dir / sharp.filename()))
      fail_or_warn(detail::concat(sharp.string(), " has no partner ",
                                  (blur_dir / sharp.filename()).string()));
  for (const fs::path& blur : blurs) {
    const fs::path sharp = sharp_dir / blur.filename();
    if (!fs::exists(sharp)) {
      fail_or_warn(detail::concat(blur.string(), " has no partner ", sharp.string()));
      continue;
    }
    try {
      out.pairs.push_back(check_pair(blur, sharp, options.min_side));
    } catch (const Error& e) {
      fail_or_warn(e.what());
    }
  }
}

}  // namespace

Dataset scan_pairs(const std::string& root, const ScanOptions& options) {
  const fs::path dir(root);
  DEBLUR_CHECK(is_dir(dir), root, ": no such folder");
  Dataset data;
  data.root = root;
  if (options.sharp_only) {
    data.layout = "sharp";
    for (const fs::path& path : image_files(dir, true)) {
      try {
        const ImageInfo info = probe_file(path);
        check_size(info, path, options.min_side);
        data.pairs.push_back({"", path.string(), info.width, info.height});
      } catch (const Error& e) {
        if (!options.skip_bad) throw;
        data.warnings.push_back(std::string(e.what()) + " (skipped)");
      }
    }
  } else if (is_dir(dir / "blur") && is_dir(dir / "sharp")) {
    data.layout = "flat";
    scan_couple(dir, options, data);
  } else {
    data.layout = "gopro";
    std::vector<fs::path> scenes;
    for (const auto& entry : fs::directory_iterator(dir))
      if (is_dir(entry.path() / "blur") && is_dir(entry.path() / "sharp"))
        scenes.push_back(entry.path());
    DEBLUR_CHECK(!scenes.empty(), root,
                 ": no training pairs: expected <root>/blur and <root>/sharp, or "
                 "<root>/<scene>/blur and <root>/<scene>/sharp (GoPro layout)");
    std::sort(scenes.begin(), scenes.end());
    for (const fs::path& scene : scenes) scan_couple(scene, options, data);
  }
  DEBLUR_CHECK(!data.pairs.empty(), root, ": no usable ",
               options.sharp_only ? "images" : "image pairs", " (", data.warnings.size(),
               " left out)");
  return data;
}

uint64_t mix_seed(uint64_t a, uint64_t b) {
  uint64_t z = a + 0x9E3779B97F4A7C15ull * (b + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

PatchSpec draw_patch(int64_t width, int64_t height, int64_t patch, uint64_t seed) {
  DEBLUR_CHECK(patch > 0 && width >= patch && height >= patch, "a ", patch, "x", patch,
               " patch does not fit a ", width, "x", height, " image");
  // Independent draws from one seed; the modulo bias is below 2^-40 for any real image size.
  const uint64_t rx = mix_seed(seed, 0), ry = mix_seed(seed, 1), rt = mix_seed(seed, 2);
  PatchSpec spec;
  spec.x0 = static_cast<int64_t>(rx % static_cast<uint64_t>(width - patch + 1));
  spec.y0 = static_cast<int64_t>(ry % static_cast<uint64_t>(height - patch + 1));
  spec.flip = (rt & 1) != 0;
  spec.quarter_turns = static_cast<int>((rt >> 1) & 3);
  return spec;
}

void extract_patch(const Image& image, const PatchSpec& spec, int64_t patch, float* dst) {
  DEBLUR_CHECK(spec.x0 >= 0 && spec.y0 >= 0 && spec.x0 + patch <= image.width &&
                   spec.y0 + patch <= image.height,
               "patch at (", spec.x0, ", ", spec.y0, ") of ", patch, "x", patch,
               " lies outside the ", image.width, "x", image.height, " image");
  const bool gray = image.color_channels() == 1;
  const int64_t last = patch - 1;
  for (int64_t i = 0; i < patch; ++i) {
    for (int64_t j = 0; j < patch; ++j) {
      // Output (i, j) after the turns reads the flipped crop at (r, c): torch.rot90's mapping.
      int64_t r = i, c = j;
      switch (spec.quarter_turns) {
        case 1: r = j, c = last - i; break;
        case 2: r = last - i, c = last - j; break;
        case 3: r = last - j, c = i; break;
        default: break;
      }
      if (spec.flip) c = last - c;
      for (int ch = 0; ch < 3; ++ch)
        dst[(ch * patch + i) * patch + j] = image.unit(spec.x0 + c, spec.y0 + r, gray ? 0 : ch);
    }
  }
}

}  // namespace deblur::train
