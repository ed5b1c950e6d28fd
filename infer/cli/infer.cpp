// deblur infer: deblurs one image or every image in a folder on the CPU, tile by tile, with
// feathered stitching; reports size, tiles and seconds per image and images/s at the end.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "engine/check.h"
#include "engine/conv_backend.h"
#include "engine/cudnn_conv.h"
#include "engine/device_memory.h"
#include "infer/cli/args.h"
#include "infer/cli/commands.h"
#include "infer/image_io.h"
#include "infer/predictor.h"
#include "kernels/cpu/parallel.h"
#include "layers/deblur_unet.h"

namespace deblur::cli {

namespace fs = std::filesystem;

namespace {
const char* kHelp =
    "usage: deblur infer --model M.safetensors --input IN --output OUT [options]\n\n"
    "Deblurs IN (an image, or a folder of images) into OUT (an image, or a folder, created if\n"
    "missing). Reads PNG (8- and 16-bit), JPEG, BMP and TGA; writes PNG or JPEG by OUT's\n"
    "extension (in folder mode each output keeps its input's name, as .png unless the input is\n"
    "PNG or JPEG). Any size: tiles of --tile pixels overlapping by --overlap are blended with a\n"
    "linear feather; images or tiles that are not multiples of 16 are reflection-padded and\n"
    "cropped back. Gray images come out gray; alpha is passed through.\n\n"
    "options:\n"
    "  --model PATH       DeblurUNet weights, safetensors F32/F16/BF16, or a deblur train\n"
    "                     checkpoint (its optimizer state is skipped) (required)\n"
    "  --input PATH       image or folder (required)\n"
    "  --output PATH      image or folder (required)\n"
    "  --device cpu       cpu, or cuda (tiles run on the GPU; needs a CUDA build)\n"
    "  --conv-backend native\n"
    "                     convolutions on cuda: native (our kernels) or cudnn (cuDNN, and\n"
    "                     cuBLAS for 1x1: the reference; needs a build with cuDNN)\n"
    "  --tile 512         tile side, a multiple of 16; 0 runs each image whole\n"
    "  --overlap 64       pixels shared by neighbouring tiles, less than half the tile\n"
    "  --threads N        CPU threads (default: all cores, or OMP_NUM_THREADS)\n"
    "  --max_pixels N     refuse larger images, checked from the header (default 268435456)\n"
    "  --quality 95       JPEG quality, 1-100\n\n"
    "Errors name the file and the problem; outputs are written to a temporary file and renamed,\n"
    "so a failure leaves no partial file. In folder mode a bad image is reported and skipped\n"
    "and the exit code is 1 if any image failed.\n";

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

bool is_image_name(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp" || ext == ".tga";
}

// A folder's output name: the input's, as .png unless the input is PNG or JPEG.
fs::path output_name(const fs::path& input) {
  std::string ext = input.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
  fs::path name = input.filename();
  if (ext != ".png" && ext != ".jpg" && ext != ".jpeg") name.replace_extension(".png");
  return name;
}

struct Job {
  const Predictor& predictor;
  int64_t max_pixels;
  int quality;
  bool show_tiles;  // live tile progress on a terminal
};

// Deblurs one file; returns the seconds it took. Throws deblur::Error naming the file.
double deblur_file(const Job& job, const fs::path& input, const fs::path& output,
                   const std::string& label) {
  const auto start = std::chrono::steady_clock::now();
  const Image image = read_image(input.string(), job.max_pixels);
  RunStats stats;
  ProgressFn progress;
  if (job.show_tiles)
    progress = [&](int64_t done, int64_t total) {
      std::fprintf(stderr, "\r%s: tile %lld/%lld", label.c_str(), static_cast<long long>(done),
                   static_cast<long long>(total));
    };
  Image result = job.predictor.run(image, progress, &stats);
  if (job.show_tiles) std::fprintf(stderr, "\r\033[K");
  write_image(output.string(), result, job.quality);
  const double seconds = seconds_since(start);
  std::printf("%s: %lldx%lld, %lld tile%s, %.2f s\n", label.c_str(),
              static_cast<long long>(image.width), static_cast<long long>(image.height),
              static_cast<long long>(stats.tiles), stats.tiles == 1 ? "" : "s", seconds);
  std::fflush(stdout);
  return seconds;
}
}  // namespace

int run_infer(int argc, char** argv) {
  Args args(argc, argv, 2, {"help"});
  if (args.has("help")) {
    std::printf("%s", kHelp);
    return 0;
  }
  args.allow_only({"help", "model", "input", "output", "device", "conv_backend", "tile", "overlap",
                   "threads", "max_pixels", "quality"});
  const std::string model_path = args.get("model", ""), input = args.get("input", ""),
                    output = args.get("output", "");
  DEBLUR_CHECK(!model_path.empty() && !input.empty() && !output.empty(),
               "--model, --input and --output are required (see --help)");
  const std::string device = args.get("device", "cpu");
  DEBLUR_CHECK(device == "cpu" || device == "cuda", "--device must be cpu or cuda, got '", device,
               "'");
  const ConvBackend conv = parse_conv_backend(args.get("conv_backend", "native"));
  if (conv == ConvBackend::Cudnn) {
    cudnn::require("--conv-backend cudnn");
    DEBLUR_CHECK(device == "cuda",
                 "--conv-backend cudnn applies to --device cuda only (the CPU has one conv)");
  }
  set_conv_backend(conv);
  DEBLUR_CHECK(device == "cpu" || cuda_available(),
               "--device cuda: no CUDA device is visible, or this build has no CUDA backend; "
               "use --device cpu");
  TileOptions options{args.get_int("tile", 512), args.get_int("overlap", 64)};
  check_tile_options(options);
  const int64_t max_pixels = args.get_int("max_pixels", kDefaultMaxPixels);
  DEBLUR_CHECK(max_pixels > 0, "--max_pixels must be positive");
  const int quality = static_cast<int>(args.get_int("quality", 95));
  DEBLUR_CHECK(quality >= 1 && quality <= 100, "--quality must be 1-100, got ", quality);
  cpu::set_num_threads(static_cast<int>(args.get_int("threads", 0)));

  // Everything that can be checked before the model loads is checked first.
  DEBLUR_CHECK(fs::exists(input), input, ": no such file or folder");
  const bool folder = fs::is_directory(input);
  std::vector<fs::path> inputs;
  if (folder) {
    DEBLUR_CHECK(!fs::exists(output) || fs::is_directory(output), output,
                 ": the input is a folder, so the output must be a folder");
    for (const auto& entry : fs::directory_iterator(input))
      if (entry.is_regular_file() && is_image_name(entry.path())) inputs.push_back(entry.path());
    std::sort(inputs.begin(), inputs.end());
    DEBLUR_CHECK(!inputs.empty(), input, ": no PNG, JPEG, BMP or TGA images in this folder");
    fs::create_directories(output);
  } else {
    output_format_for(output);
    inputs.push_back(input);
  }

  const std::unique_ptr<DeblurUNet> model = load_deblur_unet(model_path);
  if (device == "cuda") model->to(Device::CUDA);
  const Predictor predictor(*model, options);
  const Job job{predictor, max_pixels, quality, isatty(STDERR_FILENO) != 0};

  const auto start = std::chrono::steady_clock::now();
  int64_t done = 0, failed = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const fs::path target = folder ? fs::path(output) / output_name(inputs[i]) : fs::path(output);
    std::ostringstream label_text;  // (a stream: GCC 12 warns falsely on string concatenation)
    if (folder)
      label_text << "[" << i + 1 << "/" << inputs.size() << "] " << inputs[i].filename().string();
    else
      label_text << inputs[i].string();
    const std::string label = label_text.str();
    if (!folder) {
      deblur_file(job, inputs[i], target, label);
      ++done;
      continue;
    }
    try {
      deblur_file(job, inputs[i], target, label);
      ++done;
    } catch (const Error& e) {
      if (job.show_tiles) std::fprintf(stderr, "\r\033[K");
      std::fprintf(stderr, "deblur infer: %s (skipped)\n", e.what());
      ++failed;
    }
  }
  const double seconds = seconds_since(start);
  std::printf("%lld image%s in %.2f s: %.3f images/s\n", static_cast<long long>(done),
              done == 1 ? "" : "s", seconds, seconds > 0 ? done / seconds : 0.0);
  if (failed > 0) {
    std::fprintf(stderr, "deblur infer: %lld of %zu images failed\n",
                 static_cast<long long>(failed), inputs.size());
    return 1;
  }
  return 0;
}

}  // namespace deblur::cli
