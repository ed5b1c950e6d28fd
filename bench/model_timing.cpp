// deblur_model_timing: times the whole DeblurUNet on our engine, the cases bench/torch_reference.py
// times on PyTorch, so the two tables line up: inference on one image (whole, no tiling, no
// autograd) and one training step's forward, Charbonnier loss and backward at a batch of
// crops. The optimizer is left out: AdamW over 8.6M parameters is ~0.1 GB of traffic, under 1%
// of a step.
//
//   deblur_model_timing [--device cuda|cpu] [--repeats 10] [--inference 512,2048]
//                       [--train 24x256] [--threads N] [--conv-backend native|cudnn]
//                       [--json bench/results/model_timing-DATE.json]
//
// --json also writes the table with the date, host, device (CPU model or GPU name), threads,
// the commit CMake configured from, and the process's peak RSS (written atomically).
//
// --conv-backend cudnn runs the convolutions on cuDNN (3x3) and cuBLAS (1x1) in float32 (no
// TF32): the library baseline for our kernels, in a build with cuDNN (engine/cudnn_conv.h).
//
// Each case runs once to warm up (allocator cache, first-launch costs), then --repeats times;
// the median is reported. On CUDA the device is synchronised before and after each repeat, so a
// time covers every queued kernel. FLOPs are the convolutions' MACs x 2 (DeblurUNet::
// forward_macs); a training step counts 3x the forward, as the PyTorch script does.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/check.h"
#include "engine/conv_backend.h"
#include "engine/cudnn_conv.h"
#include "engine/device_memory.h"
#include "engine/file_io.h"
#include "engine/ops.h"
#include "kernels/cpu/parallel.h"
#include "layers/deblur_unet.h"

#ifdef DEBLUR_WITH_CUDA
#include "engine/cuda_allocator.h"
#endif

namespace deblur {
namespace {

constexpr const char* kUsage =
    "usage: deblur_model_timing [--device cuda|cpu] [--repeats 10] [--inference 512,2048]\n"
    "                           [--train 24x256] [--threads N] [--conv-backend native|cudnn]\n"
    "                           [--json PATH]\n";

#ifndef DEBLUR_GIT_COMMIT
#define DEBLUR_GIT_COMMIT "unknown"
#endif

struct Options {
  Device device = Device::CPU;
  int repeats = 10;
  std::vector<int64_t> inference_sizes = {512, 2048};
  int64_t train_batch = 24, train_size = 256;
  ConvBackend conv_backend = ConvBackend::Native;
  std::string json_path;
};

std::vector<int64_t> parse_sizes(const std::string& text) {
  std::vector<int64_t> sizes;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    const int64_t size = std::atoll(item.c_str());
    DEBLUR_CHECK(size >= 16 && size % 16 == 0, "--inference: sizes are multiples of 16, got '",
                 item, "'");
    sizes.push_back(size);
  }
  return sizes;
}

Options parse(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::printf("%s", kUsage);
      std::exit(0);
    }
    DEBLUR_CHECK(i + 1 < argc, arg, " needs a value\n", kUsage);
    const std::string value = argv[++i];
    if (arg == "--device") {
      DEBLUR_CHECK(value == "cpu" || value == "cuda", "--device must be cpu or cuda");
      options.device = value == "cuda" ? Device::CUDA : Device::CPU;
    } else if (arg == "--repeats") {
      options.repeats = std::max(1, std::atoi(value.c_str()));
    } else if (arg == "--inference") {
      options.inference_sizes = value == "none" ? std::vector<int64_t>{} : parse_sizes(value);
    } else if (arg == "--train") {
      if (value == "none") {
        options.train_batch = 0;
      } else {
        const size_t x = value.find('x');
        DEBLUR_CHECK(x != std::string::npos, "--train takes BATCHxSIZE, got '", value, "'");
        options.train_batch = std::atoll(value.substr(0, x).c_str());
        options.train_size = std::atoll(value.substr(x + 1).c_str());
        DEBLUR_CHECK(options.train_batch > 0 && options.train_size % 16 == 0,
                     "--train: a positive batch and a size that is a multiple of 16");
      }
    } else if (arg == "--json") {
      options.json_path = value;
    } else if (arg == "--threads") {
      cpu::set_num_threads(std::atoi(value.c_str()));
    } else if (arg == "--conv-backend" || arg == "--conv_backend") {
      options.conv_backend = parse_conv_backend(value);
      if (options.conv_backend == ConvBackend::Cudnn) cudnn::require("--conv-backend cudnn");
    } else {
      throw Error(detail::concat("unknown option ", arg, "\n", kUsage));
    }
  }
  return options;
}

void synchronize(Device device) {
#ifdef DEBLUR_WITH_CUDA
  if (device == Device::CUDA) DEBLUR_CUDA_CHECK(cudaDeviceSynchronize());
#else
  (void)device;
#endif
}

Tensor random_image(Shape shape, uint64_t seed, Device device) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  std::vector<float> values(static_cast<size_t>(shape.numel()));
  for (float& v : values) v = uniform(rng);
  return Tensor::from_vector(shape, values).to(device);
}

// Median seconds of `repeats` runs of `body`, after one warm-up run.
template <class Body>
double median_seconds(Device device, int repeats, Body body) {
  body();
  synchronize(device);
  std::vector<double> seconds;
  for (int r = 0; r < repeats; ++r) {
    synchronize(device);
    const auto start = std::chrono::steady_clock::now();
    body();
    synchronize(device);
    seconds.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(seconds.begin(), seconds.end());
  return seconds[seconds.size() / 2];
}

void reset_peak(Device device) {
#ifdef DEBLUR_WITH_CUDA
  if (device == Device::CUDA) return cuda_reset_peak_memory();
#endif
  host_reset_peak_memory();
}

// Peak tensor memory in use since reset_peak, in MiB (on the CPU: blocks of 1 MiB and more,
// which is nearly all of it).
double peak_mib(Device device) {
#ifdef DEBLUR_WITH_CUDA
  if (device == Device::CUDA) return cuda_memory_stats().peak_in_use_bytes / 1048576.0;
#endif
  return host_memory_stats().peak_in_use_bytes / 1048576.0;
}

// What the cases ran on: the CPU's model name, or the GPU's.
std::string hardware_name(Device device) {
#ifdef DEBLUR_WITH_CUDA
  if (device == Device::CUDA) {
    cudaDeviceProp properties{};
    DEBLUR_CUDA_CHECK(cudaGetDeviceProperties(&properties, 0));
    return properties.name;
  }
#else
  (void)device;
#endif
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);)
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

nlohmann::json g_cases = nlohmann::json::array();

void report(const std::string& name, double seconds, double flops, double mib) {
  std::printf("%-30s %9.4f %9.2f", name.c_str(), seconds, flops / seconds / 1e12);
  if (mib >= 0) std::printf(" %9.0f", mib);
  std::printf("\n");
  std::fflush(stdout);
  g_cases.push_back({{"case", name},
                     {"seconds", seconds},
                     {"tflops", flops / seconds / 1e12},
                     {"peak_tensor_mib", mib}});
}

void write_json(const Options& options) {
  const std::time_t now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const nlohmann::json out = {
      {"date", date},
      {"host", host},
      {"device", options.device == Device::CUDA ? "cuda" : "cpu"},
      {"device_name", hardware_name(options.device)},
      {"threads", options.device == Device::CPU ? cpu::num_threads() : 0},
      {"conv_backend", conv_backend_name(options.conv_backend)},
      {"repeats", options.repeats},
      {"commit_at_configure", DEBLUR_GIT_COMMIT},
      {"process_peak_rss_mib", double(usage.ru_maxrss) / 1024.0},  // Linux: KiB
      {"cases", g_cases}};
  const std::string text = out.dump(2) + "\n";
  write_file_atomically(options.json_path, reinterpret_cast<const uint8_t*>(text.data()),
                        text.size());
  std::printf("wrote %s\n", options.json_path.c_str());
}

int run(int argc, char** argv) {
  const Options options = parse(argc, argv);
  DEBLUR_CHECK(options.conv_backend == ConvBackend::Native || options.device == Device::CUDA,
               "--conv-backend cudnn applies to --device cuda only");
  set_conv_backend(options.conv_backend);
  DeblurUNet model(32, /*seed=*/0);
  if (options.train_batch == 0) model.drop_gradients();  // as deblur infer: inference only
  model.to(options.device);
  std::printf("# DeblurUNet on %s, conv backend %s, median of %d\n",
              options.device == Device::CUDA ? "cuda" : "cpu",
              conv_backend_name(options.conv_backend), options.repeats);
  std::printf("%-30s %9s %9s %9s\n", "case", "seconds", "TFLOP/s", "peak MiB");

  for (int64_t size : options.inference_sizes) {
    const Tensor x = random_image({1, 3, size, size}, 1, options.device);
    reset_peak(options.device);
    const double seconds = median_seconds(options.device, options.repeats, [&] {
      NoGradGuard no_grad;
      model.forward(x);
    });
    std::ostringstream name;
    name << "inference " << size << "x" << size;
    report(name.str(), seconds, 2.0 * model.forward_macs(size, size), peak_mib(options.device));
  }

  if (options.train_batch > 0) {
    const int64_t b = options.train_batch, s = options.train_size;
    const Tensor x = random_image({b, 3, s, s}, 2, options.device);
    const Tensor target = random_image({b, 3, s, s}, 3, options.device);
    reset_peak(options.device);
    const double seconds = median_seconds(options.device, options.repeats, [&] {
      model.zero_grad();
      charbonnier(model.forward(x), target).backward();
    });
    std::ostringstream name;
    name << "train step " << b << "x" << s << "x" << s;
    report(name.str(), seconds, 3.0 * 2.0 * b * model.forward_macs(s, s),
           peak_mib(options.device));
  }
  if (!options.json_path.empty()) write_json(options);
  return 0;
}

}  // namespace
}  // namespace deblur

int main(int argc, char** argv) {
  try {
    return deblur::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "deblur_model_timing: %s\n", e.what());
    return 1;
  }
}
