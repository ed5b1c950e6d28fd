// deblur export: a model file for inference from a training checkpoint (or another model file):
// the weights only, F16 by default, with the checkpoint's scores and configuration as metadata.
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

#include "engine/check.h"
#include "infer/cli/args.h"
#include "infer/cli/commands.h"
#include "layers/deblur_unet.h"

namespace deblur::cli {

int run_export(int argc, char** argv) {
  Args args(argc, argv, 2, {"help", "f32"});
  if (args.has("help")) {
    std::printf(
        "usage: deblur export --model CHECKPOINT --output MODEL.safetensors [--f32]\n\n"
        "Writes the weights of a deblur train checkpoint (or any DeblurUNet model file) as a\n"
        "model for deblur infer and the C API: F16 (half the size; --f32 keeps float32),\n"
        "without the optimizer state, keeping the checkpoint's epoch, step, psnr, ssim,\n"
        "config and git_commit as metadata. The file is written atomically.\n");
    return 0;
  }
  args.allow_only({"help", "model", "output", "f32"});
  const std::string input = args.get("model", ""), output = args.get("output", "");
  DEBLUR_CHECK(!input.empty() && !output.empty(), "--model and --output are required (see --help)");
  const SafetensorsFile file = read_safetensors(input);
  const auto model = load_deblur_unet(file, input);
  std::map<std::string, std::string> metadata;
  for (const char* key : {"epoch", "step", "psnr", "ssim", "config", "git_commit"})
    if (const auto it = file.metadata.find(key); it != file.metadata.end())
      metadata[key] = it->second;
  metadata["source"] = std::filesystem::path(input).filename().string();
  const DType dtype = args.has("f32") ? DType::F32 : DType::F16;
  model->save_state(output, metadata, dtype);
  std::printf("%s: %lld parameters as %s (from %s)\n", output.c_str(),
              static_cast<long long>(model->parameter_count()), dtype_name(dtype), input.c_str());
  return 0;
}

}  // namespace deblur::cli
