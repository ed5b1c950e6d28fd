// deblur make-dataset: a folder of sharp photos into a GoPro-layout training set with synthetic
// camera-shake blur (train/synthetic_blur.h), plus a held-out validation set.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/check.h"
#include "infer/cli/args.h"
#include "infer/cli/commands.h"
#include "infer/image_io.h"
#include "kernels/common/feather.h"
#include "train/dataset.h"
#include "train/procedural.h"
#include "train/synthetic_blur.h"

namespace deblur::cli {

namespace fs = std::filesystem;

namespace {

constexpr const char* kHelp =
    "usage: deblur make-dataset --input DIR --output DIR [options]\n"
    "\n"
    "Turns a folder of sharp photos (any folder tree; PNG, JPEG, BMP, TGA) into training and\n"
    "validation sets in the GoPro layout that deblur train reads:\n"
    "  OUTPUT/train/<photo>/sharp/<k>.png and OUTPUT/train/<photo>/blur/<k>.png, k < --copies\n"
    "  OUTPUT/val/<photo>/sharp/0.png and OUTPUT/val/<photo>/blur/0.png\n"
    "Each blurry image is its sharp photo under a random camera-shake path (Boracchi and Foi's\n"
    "trajectories, averaged in linear light as GoPro's blurry frames are) plus sensor noise.\n"
    "Photos are shuffled by --seed and the first --val of them held out for validation; the\n"
    "same seed gives the same files (each written atomically; a run that fails midway leaves\n"
    "the folders written so far: use a new --output). With --procedural N instead of --input,\n"
    "the sharp images are N procedural pictures (gradients, textures, shapes, lines,\n"
    "checkerboards) of --size.\n"
    "\n"
    "options:\n"
    "  --input DIR        sharp photos (or --procedural)\n"
    "  --procedural N     N procedural sharp images instead of photos\n"
    "  --size 512x384     the procedural images' size\n"
    "  --output DIR       where train/ and val/ go (required; created if missing)\n"
    "  --val 2            photos held out for validation\n"
    "  --copies 4         blurred versions of each training photo (each its own shake)\n"
    "  --max_side 1024    shrink photos (by whole-pixel area averaging) so the longer side is\n"
    "                     at most this; 0 keeps their size\n"
    "  --max_kernel 31    the largest blur kernel side, odd, at least 3\n"
    "  --seed 0\n";

// The image's colour as [3, h, w] planes in [-1, 1], shrunk by an integer factor (area mean).
std::vector<float> planes(const Image& image, int64_t factor, int64_t& width, int64_t& height) {
  width = image.width / factor;
  height = image.height / factor;
  std::vector<float> out(static_cast<size_t>(3 * width * height));
  const bool gray = image.color_channels() == 1;
  const float norm = 1.0f / static_cast<float>(factor * factor);
  for (int c = 0; c < 3; ++c)
    for (int64_t y = 0; y < height; ++y)
      for (int64_t x = 0; x < width; ++x) {
        float sum = 0.0f;
        for (int64_t dy = 0; dy < factor; ++dy)
          for (int64_t dx = 0; dx < factor; ++dx)
            sum += image.unit(x * factor + dx, y * factor + dy, gray ? 0 : c);
        out[static_cast<size_t>((c * height + y) * width + x)] = sum * norm;
      }
  return out;
}

Image to_image(const std::vector<float>& planes, int64_t width, int64_t height) {
  Image image = make_image(width, height, 3, 8);
  for (int c = 0; c < 3; ++c)
    for (int64_t i = 0; i < width * height; ++i)
      image.data8[static_cast<size_t>(i * 3 + c)] =
          common::unit_to_8bit(planes[static_cast<size_t>(c * width * height + i)]);
  return image;
}

void write_pair(const fs::path& dir, const std::string& name, const Image& sharp,
                const Image& blur) {
  fs::create_directories(dir / "sharp");
  fs::create_directories(dir / "blur");
  write_image((dir / "sharp" / name).string(), sharp);
  write_image((dir / "blur" / name).string(), blur);
}

}  // namespace

int run_make_dataset(int argc, char** argv) {
  Args args(argc, argv, 2, {"help"});
  if (args.has("help")) {
    std::printf("%s", kHelp);
    return 0;
  }
  args.allow_only({"help", "input", "output", "val", "copies", "max_side", "max_kernel", "seed",
                   "procedural", "size"});
  const std::string input = args.get("input", ""), output = args.get("output", "");
  const int64_t procedural = args.get_int("procedural", 0);
  DEBLUR_CHECK(!output.empty(), "--output is required (see --help)");
  DEBLUR_CHECK(input.empty() != (procedural == 0),
               "give either --input DIR (photos) or --procedural N (see --help)");
  DEBLUR_CHECK(procedural >= 0, "--procedural must be positive, got ", procedural);
  const int64_t val = args.get_int("val", 2), copies = args.get_int("copies", 4);
  const int64_t max_side = args.get_int("max_side", 1024), max_kernel = args.get_int("max_kernel", 31);
  const uint64_t seed = static_cast<uint64_t>(args.get_int("seed", 0));
  DEBLUR_CHECK(val >= 0, "--val must be 0 or more, got ", val);
  DEBLUR_CHECK(copies >= 1, "--copies must be at least 1, got ", copies);
  DEBLUR_CHECK(max_side >= 0, "--max_side must be 0 or more, got ", max_side);
  DEBLUR_CHECK(max_kernel >= 3 && max_kernel % 2 == 1, "--max_kernel must be odd and at least 3, got ",
               max_kernel);

  // The sharp images: photos found under --input, or procedural pictures by number.
  struct Source {
    std::string name;    // the photo's path, or "procedural<number>"
    uint64_t number = 0;  // the procedural picture's
  };
  std::vector<Source> names;
  if (procedural > 0) {
    for (int64_t k = 0; k < procedural; ++k)
      names.push_back({"procedural" + std::to_string(k), static_cast<uint64_t>(k)});
  } else {
    train::ScanOptions scan;
    scan.sharp_only = true;
    for (const train::ImagePair& pair : train::scan_pairs(input, scan).pairs)
      names.push_back({pair.sharp});
  }
  int64_t proc_width = 512, proc_height = 384;
  if (procedural > 0) {
    const std::string size = args.get("size", "512x384");
    const size_t x = size.find('x');
    DEBLUR_CHECK(x != std::string::npos, "--size takes WIDTHxHEIGHT, got '", size, "'");
    proc_width = std::atoll(size.substr(0, x).c_str());
    proc_height = std::atoll(size.substr(x + 1).c_str());
    DEBLUR_CHECK(proc_width >= 16 && proc_height >= 16, "--size: at least 16x16, got '", size, "'");
  }
  DEBLUR_CHECK(static_cast<int64_t>(names.size()) > val, procedural ? "--procedural" : input, ": ",
               names.size(), " images, but --val ", val, " would leave none for training");
  // A seeded shuffle: which images are held out depends on the seed, not on file names.
  for (size_t i = names.size(); i > 1; --i)
    std::swap(names[i - 1], names[train::mix_seed(seed ^ 0xda7a5e7ull, i) % i]);

  const fs::path root(output);
  for (size_t k = 0; k < names.size(); ++k) {
    const bool is_val = static_cast<int64_t>(k) < val;
    const Image photo =
        procedural > 0
            ? train::procedural_image(proc_width, proc_height, train::mix_seed(seed, names[k].number))
            : read_image(names[k].name);
    const int64_t longer = std::max(photo.width, photo.height);
    const int64_t factor = max_side > 0 ? std::max<int64_t>(1, (longer + max_side - 1) / max_side) : 1;
    int64_t width = 0, height = 0;
    const std::vector<float> sharp = planes(photo, factor, width, height);
    const Image sharp_image = to_image(sharp, width, height);
    // Each photo gets its own folder (a GoPro "scene"), named after the file.
    std::string scene = fs::path(names[k].name).stem().string();
    const fs::path dir = root / (is_val ? "val" : "train") / scene;
    DEBLUR_CHECK(!fs::exists(dir), dir.string(),
                 " already exists (two photos with one name, or an old dataset: use a new "
                 "--output)");
    std::vector<float> blur(sharp.size());
    for (int64_t copy = 0; copy < (is_val ? 1 : copies); ++copy) {
      train::apply_camera_shake(sharp.data(), blur.data(), width, height, max_kernel,
                                train::mix_seed(seed, k * 1000 + static_cast<uint64_t>(copy)));
      write_pair(dir, std::to_string(copy) + ".png", sharp_image, to_image(blur, width, height));
    }
    std::printf("%s -> %s (%lldx%lld, %lld blurred)\n", names[k].name.c_str(),
                dir.string().c_str(),
                static_cast<long long>(width), static_cast<long long>(height),
                static_cast<long long>(is_val ? 1 : copies));
    std::fflush(stdout);
  }
  std::printf("%zu images: %lld for training in %s, %lld for validation in %s\n", names.size(),
              static_cast<long long>(names.size() - val), (root / "train").string().c_str(),
              static_cast<long long>(val), (root / "val").string().c_str());
  return 0;
}

}  // namespace deblur::cli
