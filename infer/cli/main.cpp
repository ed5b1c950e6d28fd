// The deblur command-line tool: one binary, one subcommand per job.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "infer/cli/commands.h"

namespace {
void print_usage() {
  std::printf(
      "deblur: train and run image-deblurring U-Nets on a C++ engine of its own.\n\n"
      "usage: deblur <command> [options]\n\n"
      "commands:\n"
      "  train    train a DeblurUNet on blurry/sharp pairs (or sharp images with synthetic\n"
      "           blur): checkpoints, validation, early stopping, resume\n"
      "  runs     the local training runs: status, epochs, best PSNR/SSIM and checkpoint\n"
      "  make-dataset  sharp photos into a training/validation set with synthetic camera shake\n"
      "  export   a training checkpoint's weights as an F16 model file for inference\n"
      "  infer    deblur an image or a folder of images (tiled, any size)\n"
      "  serve    an HTTP inference service: POST an image, get it deblurred; health, metrics\n"
      "  metrics  PSNR, SSIM and MS-SSIM of a prediction against its target image, as JSON\n"
      "  info     describe a model file: parameters, tensor names and shapes, dtype, metadata\n"
      "  demo     the engine end to end on an untrained DeblurUNet: build, save and reload it,\n"
      "           one forward pass and one training step on a synthetic blurred image\n\n"
      "Run 'deblur <command> --help' for a command's options.\n");
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    print_usage();
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  try {
    if (command == "train") return deblur::cli::run_train(argc, argv);
    if (command == "make-dataset") return deblur::cli::run_make_dataset(argc, argv);
    if (command == "export") return deblur::cli::run_export(argc, argv);
    if (command == "runs") return deblur::cli::run_runs(argc, argv);
    if (command == "infer") return deblur::cli::run_infer(argc, argv);
    if (command == "serve") return deblur::cli::run_serve(argc, argv);
    if (command == "demo") return deblur::cli::run_demo(argc, argv);
    if (command == "info") return deblur::cli::run_info(argc, argv);
    if (command == "metrics") return deblur::cli::run_metrics(argc, argv);
    std::fprintf(stderr, "deblur: unknown command '%s' (see deblur --help)\n", command.c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "deblur %s: %s\n", command.c_str(), e.what());
    return 1;
  }
}
