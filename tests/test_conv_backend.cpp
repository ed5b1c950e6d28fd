// The conv backend switch (engine/conv_backend.h, engine/cudnn_conv.h) on the CPU side: parsing
// and names, CPU tensors ignoring the setting, and `deblur infer --conv-backend` refusing a bad
// value, and refusing cudnn with a clear message where it cannot apply (a build without cuDNN, or
// --device cpu). The cuDNN path itself is checked on a GPU: tests/sim/test_cudnn_conv.cpp.
#include <catch2/catch.hpp>

#include <fstream>
#include <iterator>
#include <string>

#include "engine/check.h"
#include "engine/conv_backend.h"
#include "engine/cudnn_conv.h"
#include "engine/ops.h"
#include "tests/cli_testing.h"
#include "tests/testing.h"

using namespace deblur;
using namespace deblur::testing;

namespace {
// Restores the process-wide backend when a test ends, however it ends.
struct BackendGuard {
  ConvBackend saved = conv_backend();
  ~BackendGuard() { set_conv_backend(saved); }
};

// The options infer checks before touching any file; the paths need not exist.
const std::string kInferArgs = "infer --model none.safetensors --input none.png --output out.png";
}  // namespace

TEST_CASE("conv_backend: names parse and print both ways", "[conv_backend]") {
  CHECK(parse_conv_backend("native") == ConvBackend::Native);
  CHECK(parse_conv_backend("cudnn") == ConvBackend::Cudnn);
  CHECK(std::string(conv_backend_name(ConvBackend::Native)) == "native");
  CHECK(std::string(conv_backend_name(ConvBackend::Cudnn)) == "cudnn");
  for (ConvBackend b : {ConvBackend::Native, ConvBackend::Cudnn})
    CHECK(parse_conv_backend(conv_backend_name(b)) == b);
  for (const char* bad : {"", "CUDNN", "cublas", "native "})
    CHECK_THROWS_WITH(parse_conv_backend(bad), Catch::Contains("native or cudnn") &&
                                                   Catch::Contains(std::string("'") + bad + "'"));
}

TEST_CASE("conv_backend: a process-wide setting that CPU tensors ignore", "[conv_backend]") {
  BackendGuard guard;
  set_conv_backend(ConvBackend::Native);
  const Tensor x = random_tensor({2, 3, 5, 7}, 1), w = random_tensor({4, 3, 3, 3}, 2),
               b = random_tensor({4, 1, 1, 1}, 3);
  const Tensor native = conv2d(x, w, b);
  set_conv_backend(ConvBackend::Cudnn);
  CHECK(conv_backend() == ConvBackend::Cudnn);
  // The same kernel runs: bitwise equal.
  CHECK(expect_close(conv2d(x, w, b), native, 0.0, 0.0, "conv2d on the CPU, backend cudnn"));
  set_conv_backend(ConvBackend::Native);
  CHECK(conv_backend() == ConvBackend::Native);
}

TEST_CASE("conv_backend: without cuDNN, the cudnn path says so", "[conv_backend]") {
  if (cudnn::available()) {
    CHECK_NOTHROW(cudnn::require("test"));
    return;
  }
  CHECK_THROWS_WITH(cudnn::require("test"), Catch::Contains("test: this build has no cuDNN") &&
                                                Catch::Contains("--conv-backend native"));
  const cpu::NchwView<const float> in{};
  const cpu::NchwView<float> out{};
  CHECK_THROWS_WITH(cudnn::conv2d_forward(in, nullptr, nullptr, 3, out),
                    Catch::Contains("no cuDNN"));
  CHECK_THROWS_WITH(cudnn::conv2d_backward_input(in, nullptr, 3, out), Catch::Contains("no cuDNN"));
  CHECK_THROWS_WITH(cudnn::conv2d_backward_params(in, in, 3, nullptr, nullptr),
                    Catch::Contains("no cuDNN"));
}

TEST_CASE("conv_backend: deblur infer --conv-backend help, bad values, cudnn where it cannot run",
          "[conv_backend][cli]") {
  const CliRun help = run_cli("infer --help");
  REQUIRE(help.exit_code == 0);
  CHECK_THAT(help.out, Catch::Contains("--conv-backend native") && Catch::Contains("cudnn"));

  const CliRun bad = run_cli(kInferArgs + " --conv-backend fast");
  CHECK(bad.exit_code == 1);
  CHECK_THAT(bad.err, Catch::Contains("native or cudnn") && Catch::Contains("'fast'"));

  const CliRun cudnn_run = run_cli(kInferArgs + " --conv-backend cudnn");
  CHECK(cudnn_run.exit_code == 1);
  if (cudnn::available())  // a cuDNN build: the CPU has one conv, so cudnn needs --device cuda
    CHECK_THAT(cudnn_run.err, Catch::Contains("--device cuda only"));
  else
    CHECK_THAT(cudnn_run.err, Catch::Contains("--conv-backend cudnn: this build has no cuDNN"));

  // native is accepted (the run then fails on the missing model file, not on the option).
  const CliRun native = run_cli(kInferArgs + " --conv_backend=native");
  CHECK(native.exit_code == 1);
  CHECK_THAT(native.err, !Catch::Contains("conv"));
}

TEST_CASE("conv_backend: cuBLAS is mapped only once its path needs it", "[conv_backend]") {
  // ctest runs each test case in a process of its own: nothing before this has used cuBLAS
  // (run all cases in one process, a case that ran the GPU's 1x1 path first would fail this).
  if (!cudnn::available()) {
    CHECK_THROWS_WITH(cudnn::load_cublas(), Catch::Contains("this build has no cuDNN"));
    return;
  }
  const auto cublas_mapped = [] {
    std::ifstream maps("/proc/self/maps");
    const std::string text((std::istreambuf_iterator<char>(maps)), std::istreambuf_iterator<char>());
    return text.find("libcublas") != std::string::npos;
  };
  // A 1x1 forward on a CPU tensor under the cudnn backend, in a build with cuDNN: no cuBLAS.
  BackendGuard guard;
  set_conv_backend(ConvBackend::Cudnn);
  const Tensor y =
      conv2d(random_tensor({1, 4, 8, 8}, 1), random_tensor({4, 4, 1, 1}, 2), Tensor());
  CHECK(y.numel() == 4 * 64);
  CHECK_FALSE(cublas_mapped());
  cudnn::load_cublas();  // finds the library and every entry point the 1x1 path calls
  CHECK(cublas_mapped());
}
