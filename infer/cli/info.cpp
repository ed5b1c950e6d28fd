// deblur info: what a safetensors model file holds, and whether it fits DeblurUNet.
#include <cstdio>
#include <map>

#include "engine/check.h"
#include "infer/cli/args.h"
#include "infer/cli/commands.h"
#include "layers/deblur_unet.h"

namespace deblur::cli {

int run_info(int argc, char** argv) {
  Args args(argc, argv, 2, {"help", "all"});
  if (args.has("help")) {
    std::printf(
        "usage: deblur info --model M.safetensors [--all]\n\n"
        "Prints the parameter count, dtypes, metadata and tensor names and shapes (the first 20;\n"
        "--all for every one), then whether the file loads into DeblurUNet.\n");
    return 0;
  }
  args.allow_only({"help", "all", "model"});
  const std::string path = args.get("model", "");
  DEBLUR_CHECK(!path.empty(), "--model is required");
  const SafetensorsFile file = read_safetensors(path);

  int64_t parameters = 0;
  std::map<std::string, int> dtypes;
  for (const TensorRecord& t : file.tensors) {
    parameters += static_cast<int64_t>(t.values.size());
    ++dtypes[dtype_name(t.dtype)];
  }
  std::printf("%s\n  tensors: %zu\n  parameters: %lld\n  dtype:", path.c_str(), file.tensors.size(),
              static_cast<long long>(parameters));
  for (const auto& [dtype, count] : dtypes) std::printf(" %s (%d tensors)", dtype.c_str(), count);
  std::printf("\n  metadata:%s\n", file.metadata.empty() ? " none" : "");
  for (const auto& [key, value] : file.metadata)
    std::printf("    %s: %s\n", key.c_str(), value.c_str());

  const size_t shown =
      args.has("all") ? file.tensors.size() : std::min<size_t>(20, file.tensors.size());
  std::printf("  names and shapes:\n");
  for (size_t i = 0; i < shown; ++i) {
    const TensorRecord& t = file.tensors[i];
    std::printf("    %-28s [", t.name.c_str());
    for (size_t d = 0; d < t.shape.size(); ++d)
      std::printf("%s%lld", d ? ", " : "", static_cast<long long>(t.shape[d]));
    std::printf("] %s\n", dtype_name(t.dtype));
  }
  if (shown < file.tensors.size())
    std::printf("    ... %zu more (--all lists them)\n", file.tensors.size() - shown);

  try {
    const auto model = load_deblur_unet(file, path);
    std::printf("  DeblurUNet (width %lld): loads (all %lld parameters match by name and shape)\n",
                static_cast<long long>(model->parameters().front().value->n()),
                static_cast<long long>(model->parameter_count()));
  } catch (const Error& e) {
    std::printf("  DeblurUNet: does not load\n%s\n", e.what());
  }
  return 0;
}

}  // namespace deblur::cli
