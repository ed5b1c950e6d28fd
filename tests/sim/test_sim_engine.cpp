// The engine on Device::CUDA, in the simulator build (deblur_core_sim): every op with a CUDA
// kernel, forward and backward through autograd, against the same op on the CPU on small odd
// shapes; the whole DeblurUNet, forward and backward, against the CPU; Module::to; the caching
// allocator's steady state.
//
// Tolerances. Elementwise ops and copies compute the same float expression on both backends:
// they must agree to a rounding (1e-6 relative, leaving room for an FMA on the GPU). Reductions
// (conv2d, GroupNorm, the sums of mean and the losses) add in different orders: their float error
// is ~ u * sqrt(terms) relative to the terms' magnitude, far under 1e-5 for the few hundred terms
// here, so 1e-5 absolute (values are O(1)) plus 1e-5 relative.
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "engine/cuda_allocator.h"
#include "engine/ops.h"
#include "layers/deblur_unet.h"
#include "tests/sim/device_testing.h"
#include "tests/testing.h"

namespace deblur {
namespace {

using testing::expect_close;
using testing::random_tensor;
using testing::relative_l2;

constexpr double kExactTol = 1e-6;   // one rounding apart, at most
constexpr double kReduceTol = 1e-5;  // a different summation order (file comment)

using OpFn = testing::EngineOpFn;
using testing::EngineRun;


void check_op(const std::string& name, const std::vector<Shape>& shapes, const OpFn& op,
              double tol, uint64_t seed = 7) {
  const EngineRun cpu = testing::run_engine_op(Device::CPU, shapes, op, seed);
  const EngineRun gpu = testing::run_engine_op(Device::CUDA, shapes, op, seed);
  CHECK(expect_close(gpu.output, cpu.output, tol, tol, name + " forward"));
  for (size_t i = 0; i < shapes.size(); ++i)
    CHECK(expect_close(gpu.grads[i], cpu.grads[i], tol, tol,
                       name + " gradient of input " + std::to_string(i)));
}

TEST_CASE("engine on cuda (simulator): pointwise ops match the cpu", "[sim][engine]") {
  const Shape s{2, 3, 5, 7};
  check_op("relu", {s}, [](auto& in) { return relu(in[0]); }, kExactTol);
  check_op("add", {s, s}, [](auto& in) { return add(in[0], in[1]); }, kExactTol);
  check_op("scale", {s}, [](auto& in) { return scale(in[0], -1.5f, 0.25f); }, kExactTol);
  check_op("clamp", {s}, [](auto& in) { return clamp(in[0], -0.5f, 0.3f); }, kExactTol);
  check_op("mean", {s}, [](auto& in) { return mean(in[0]); }, kReduceTol);
  // Channel slices (batch_stride > C*H*W; views carry no autograd history) through add.
  const Tensor wide = random_tensor({2, 6, 3, 5}, 4);
  const auto slices_sum = [](const Tensor& t) {
    return add(t.channel_slice(1, 4), t.channel_slice(2, 4));
  };
  CHECK(expect_close(slices_sum(wide.to(Device::CUDA)).to_vector(), slices_sum(wide).to_vector(),
                     kExactTol, kExactTol, "add of channel slices"));

  // accumulate: dst += src in place, no autograd.
  const Tensor dst_cpu = random_tensor(s, 1), src = random_tensor(s, 2);
  const Tensor dst_gpu = dst_cpu.to(Device::CUDA);
  accumulate(dst_cpu, src);
  accumulate(dst_gpu, src.to(Device::CUDA));
  CHECK(expect_close(dst_gpu.to_vector(), dst_cpu.to_vector(), kExactTol, kExactTol,
                     "accumulate"));

  // lerp: dst += weight * (src - dst) in place, no autograd.
  lerp(dst_cpu, src, 0.1f);
  lerp(dst_gpu, src.to(Device::CUDA), 0.1f);
  CHECK(expect_close(dst_gpu.to_vector(), dst_cpu.to_vector(), kExactTol, kExactTol, "lerp"));
}

TEST_CASE("engine on cuda (simulator): resampling and concat match the cpu", "[sim][engine]") {
  check_op("max_pool2d", {{2, 3, 7, 9}}, [](auto& in) { return max_pool2d(in[0]); }, kExactTol);
  check_op("upsample_bilinear2x", {{2, 3, 5, 3}},
           [](auto& in) { return upsample_bilinear2x(in[0]); }, kExactTol);
  check_op("concat", {{2, 3, 5, 7}, {2, 2, 5, 7}}, [](auto& in) { return concat(in[0], in[1]); },
           kExactTol);
}

TEST_CASE("engine on cuda (simulator): conv2d and group_norm match the cpu", "[sim][engine]") {
  check_op("conv2d 3x3", {{2, 5, 7, 9}, {4, 5, 3, 3}, {4, 1, 1, 1}},
           [](auto& in) { return conv2d(in[0], in[1], in[2]); }, kReduceTol);
  check_op("conv2d 1x1", {{2, 5, 3, 5}, {3, 5, 1, 1}, {3, 1, 1, 1}},
           [](auto& in) { return conv2d(in[0], in[1], in[2]); }, kReduceTol);
  for (bool fuse_relu : {false, true})
    check_op(std::string("group_norm") + (fuse_relu ? "+relu" : ""),
             {{2, 6, 5, 7}, {6, 1, 1, 1}, {6, 1, 1, 1}},
             [fuse_relu](auto& in) { return group_norm(in[0], in[1], in[2], 3, 1e-5f, fuse_relu); },
             kReduceTol);
}

TEST_CASE("engine on cuda (simulator): parameter gradients accumulate", "[sim][engine]") {
  // Two backward passes into the same leaves give twice one pass's gradient (+=, not =).
  const Tensor x = random_tensor({2, 3, 6, 5}, 21).to(Device::CUDA);
  Tensor weight = random_tensor({4, 3, 3, 3}, 22).to(Device::CUDA);
  Tensor bias = random_tensor({4, 1, 1, 1}, 23).to(Device::CUDA);
  weight.set_requires_grad(true);
  bias.set_requires_grad(true);
  mean(conv2d(x, weight, bias)).backward();
  const std::vector<float> once_w = weight.grad().to_vector(), once_b = bias.grad().to_vector();
  mean(conv2d(x, weight, bias)).backward();
  std::vector<float> twice_w = once_w, twice_b = once_b;
  for (float& v : twice_w) v *= 2.0f;
  for (float& v : twice_b) v *= 2.0f;
  // The same values added to themselves: exact but for the deterministic kernels' own rounding.
  CHECK(expect_close(weight.grad().to_vector(), twice_w, kExactTol, kExactTol, "weight grad x2"));
  CHECK(expect_close(bias.grad().to_vector(), twice_b, kExactTol, kExactTol, "bias grad x2"));
}

TEST_CASE("engine on cuda (simulator): losses match the cpu", "[sim][engine]") {
  const Shape s{2, 3, 5, 7};
  check_op("charbonnier", {s, s}, [](auto& in) { return charbonnier(in[0], in[1]); },
           kReduceTol);
  check_op("l1_loss", {s, s}, [](auto& in) { return l1_loss(in[0], in[1]); }, kReduceTol);
}

TEST_CASE("engine on cuda (simulator): the caching allocator reuses blocks", "[sim][engine]") {
  const Tensor x = random_tensor({2, 4, 9, 9}, 3).to(Device::CUDA);
  const auto step = [&] { return mean(relu(scale(x, 2.0f))).item(); };
  step();
  const CudaMemoryStats warm = cuda_memory_stats();
  for (int i = 0; i < 3; ++i) step();
  const CudaMemoryStats after = cuda_memory_stats();
  CHECK(after.malloc_calls == warm.malloc_calls);  // steady state: no cudaMalloc
  CHECK(after.in_use_bytes == warm.in_use_bytes);  // nothing leaked
  CHECK(after.peak_in_use_bytes >= after.in_use_bytes);
  cuda_empty_cache();
  CHECK(cuda_memory_stats().reserved_bytes == cuda_memory_stats().in_use_bytes);
}

// Parameter gradients of charbonnier(model(x), target) on `device`, and the output.
struct ModelRun {
  std::vector<float> output;
  std::vector<std::vector<float>> grads;
  std::vector<std::string> names;
};

ModelRun run_model(Device device, const Tensor& x, const Tensor& target) {
  DeblurUNet model(32, /*seed=*/5);
  model.to(device);
  REQUIRE(model.parameter_values().device() == device);
  REQUIRE(model.parameter_grads().device() == device);
  const Tensor y = model.forward(x.to(device));
  charbonnier(y, target.to(device)).backward();
  ModelRun run{y.to_vector(), {}, {}};
  for (const NamedParameter& p : model.parameters()) {
    REQUIRE(p.value->device() == device);
    run.names.push_back(p.name);
    run.grads.push_back(p.value->grad().to_vector());
  }
  return run;
}

TEST_CASE("engine on cuda (simulator): DeblurUNet forward and backward match the cpu",
          "[sim][engine]") {
  const Tensor x = random_tensor({1, 3, 32, 32}, 11);
  const Tensor target = random_tensor({1, 3, 32, 32}, 12);
  const ModelRun cpu = run_model(Device::CPU, x, target);
  const auto start = std::chrono::steady_clock::now();
  const ModelRun gpu = run_model(Device::CUDA, x, target);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const CudaMemoryStats memory = cuda_memory_stats();
  std::fprintf(stderr,
               "DeblurUNet 1x3x32x32 forward+backward in the simulator: %.1f s, peak %.1f MB "
               "in use, %lld cudaMalloc calls so far\n",
               seconds, memory.peak_in_use_bytes / 1e6, static_cast<long long>(memory.malloc_calls));

  // 23 layers of float reductions in different orders: the CPU's own fixture test measures
  // ~1e-6 relative L2 against float64 on the output and at most ~1e-5 on a gradient; 1e-4
  // leaves room for both backends' errors, and a real bug (a wrong element or slice) is O(1).
  constexpr double kModelTol = 1e-4;
  double output_norm = 0.0;
  for (float v : cpu.output) output_norm += double(v) * v;
  REQUIRE(output_norm > 0.0);  // a relative error of a zero output would say nothing
  const double output_error = relative_l2(gpu.output, cpu.output);
  CHECK(output_error < kModelTol);
  REQUIRE(gpu.grads.size() == 82);
  double worst = 0.0;
  std::string worst_name;
  for (size_t i = 0; i < gpu.grads.size(); ++i) {
    const double error = relative_l2(gpu.grads[i], cpu.grads[i]);
    if (error > worst) worst = error, worst_name = gpu.names[i];
    CHECK(error < kModelTol);
  }
  std::fprintf(stderr,
               "DeblurUNet cuda vs cpu: output relative L2 %.2e, worst gradient %.2e (%s)\n",
               output_error, worst, worst_name.c_str());
}

TEST_CASE("engine on cuda (simulator): Module::to moves the slabs and back", "[sim][engine]") {
  DeblurUNet model(32, /*seed=*/9);
  const std::vector<float> values = model.parameter_values().to_vector();
  model.to(Device::CUDA);
  CHECK(model.device() == Device::CUDA);
  model.zero_grad();
  model.to(Device::CPU);
  CHECK(model.parameter_values().to_vector() == values);
  // Every parameter is a view into the moved slabs: the first starts the value slab.
  const std::vector<NamedParameter> params = model.parameters();
  CHECK(params.front().value->data() == model.parameter_values().data());
  CHECK(params.front().value->grad().data() == model.parameter_grads().data());
}

}  // namespace
}  // namespace deblur
