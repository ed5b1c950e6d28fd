// Our CUDA conv2d (kernels/cuda/conv2d.cuh) against the library path (engine/cudnn_conv.h: cuDNN,
// and cuBLAS GEMMs for 1x1) on a real GPU: forward, input gradient, and parameter gradients
// accumulated into pre-filled buffers, on odd shapes (3-channel first and last layers, channel
// counts off every tile, planes smaller than the kernel, batch > 1) and on channel slices of
// larger tensors, whose other channels must stay as they were. Both are also checked against the
// CPU kernels in double, so a wrong reference cannot hide a wrong kernel. Then the conv2d op on
// Device::CUDA through autograd with --conv-backend cudnn against native.
//
// Only in deblur_gpu_tests of a build with cuDNN (DEBLUR_WITH_CUDNN): not a test_sim_* file, as
// the simulator build has no cuDNN.
//
// Tolerances, per element, from the worst-case error of a float sum of L terms t in any order,
// (L - 1) u sum|t| (u = 2^-24), with sum|t| bounded from the data (inputs and output gradients
// lie in [-1, 1]):
//   forward: L = C k^2 + 1 (the bias), sum|t| <= max over o of |b[o]| + sum |w[o, ...]|;
//   input gradient: L = O k^2, sum|t| <= max over c of sum |w[..., c, ...]|;
//   parameter gradients: L = N H W, sum|t| <= N H W, plus 2 u (|prefill| + sum|t|) for the +=.
// Our kernels, cuBLAS (a GEMM sums directly, split or not) and cuDNN's bias ops sum directly, so
// the bound holds as it is. cuDNN's convolution algorithms are its heuristics' choice and may be
// Winograd or FFT, whose transforms amplify rounding by a small constant (Winograd F(2x2, 3x3)'s
// matrices have entries up to 1, F(4x4, 3x3)'s up to 8, summed over a 4x4 or 6x6 tile) beyond a
// direct sum: kTransformFactor widens the bound for them. The worst-case bound is ~100x above the
// typical error of a direct sum (~u sqrt(L) rms), so the factor leaves Winograd room while a
// missing term, a transposed weight or a = for += still fails by orders of magnitude.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "engine/conv_backend.h"
#include "engine/cudnn_conv.h"
#include "engine/ops.h"
#include "kernels/cpu/conv2d.h"
#include "kernels/cuda/conv2d.cuh"
#include "tests/sim/device_testing.h"
#include "tests/testing.h"

namespace deblur {
namespace {

using cuda::DeviceBuffer;
using testing::expect_close;
using testing::HostTensor;
using testing::kUnitRoundoff;
using testing::random_floats;
using testing::random_host;
using testing::to_double;
using Library = cudnn::Library;

constexpr double kTransformFactor = 8.0;  // cuDNN's Winograd / FFT algorithms (file comment)

// The view `t` describes, over a buffer of any element type holding all of its channels.
template <class T>
cpu::NchwView<T> view_of(const HostTensor& t, T* base) {
  const int64_t plane = t.shape.h * t.shape.w;
  T* const data = base + t.first * plane;
  return {data, t.shape.n, t.shape.c, t.shape.h, t.shape.w, t.total_channels() * plane};
}

// A workspace of at least `bytes` bytes for our parameter-gradient kernel.
DeviceBuffer<double> workspace(size_t bytes) {
  return DeviceBuffer<double>(std::max<size_t>(1, (bytes + sizeof(double) - 1) / sizeof(double)));
}

const char* library_name(Library library) {
  return library == Library::Cublas ? "cublas" : library == Library::Cudnn ? "cudnn" : "auto";
}

std::string label(const char* op, Shape s, int64_t out_c, int kernel, bool slice, Library library) {
  return std::string(op) + " " + s.str() + " -> " + std::to_string(out_c) + " k" +
         std::to_string(kernel) + (slice ? " (channel slices)" : "") + " [" +
         library_name(library) + "]";
}

struct Bounds {
  double forward, input, params;  // absolute, per element, for one direct float sum
};

Bounds bounds(Shape xs, int64_t out_c, int kernel, const std::vector<float>& w,
              const std::vector<float>& b, double prefill) {
  const int64_t taps = int64_t(kernel) * kernel;
  double fwd_sum = 0.0, bwd_sum = 0.0;
  for (int64_t o = 0; o < out_c; ++o) {
    double s = b.empty() ? 0.0 : std::abs(b[o]);
    for (int64_t k = 0; k < xs.c * taps; ++k) s += std::abs(w[o * xs.c * taps + k]);
    fwd_sum = std::max(fwd_sum, s);
  }
  for (int64_t c = 0; c < xs.c; ++c) {
    double s = 0.0;
    for (int64_t o = 0; o < out_c; ++o)
      for (int64_t t = 0; t < taps; ++t) s += std::abs(w[(o * xs.c + c) * taps + t]);
    bwd_sum = std::max(bwd_sum, s);
  }
  const double pixels = double(xs.n * xs.h * xs.w);
  return {double(xs.c * taps + 1) * kUnitRoundoff * fwd_sum,
          double(out_c * taps) * kUnitRoundoff * bwd_sum,
          pixels * kUnitRoundoff * pixels + 2 * kUnitRoundoff * (prefill + pixels)};
}

// Forward, input gradient and parameter gradients of one convolution: ours and the library's,
// each against the CPU in double and against each other.
void check_conv(Shape xs, int64_t out_c, int kernel, bool slice, uint64_t seed, Library library) {
  const Shape ys{xs.n, out_c, xs.h, xs.w};
  const int64_t weights = out_c * xs.c * kernel * kernel;
  const HostTensor x = random_host(xs, slice, seed), gy = random_host(ys, slice, seed + 1);
  // Outputs start as garbage; parameter gradients pre-filled (|prefill| <= 3).
  const HostTensor y = random_host(ys, slice, seed + 2, 5.0, 9.0);
  const HostTensor gx = random_host(xs, slice, seed + 3, 5.0, 9.0);
  const std::vector<float> w = random_floats(weights, seed + 4), b = random_floats(out_c, seed + 5);
  const std::vector<float> gw = random_floats(weights, seed + 6, -3.0, 3.0);
  const std::vector<float> gb = random_floats(out_c, seed + 7, -3.0, 3.0);

  // The CPU in double.
  std::vector<double> x_ref = to_double(x.values), gy_ref = to_double(gy.values),
                      y_ref = to_double(y.values), gx_ref = to_double(gx.values),
                      w_ref = to_double(w), b_ref = to_double(b), gw_ref = to_double(gw),
                      gb_ref = to_double(gb);
  cpu::conv2d_forward<double>(view_of<double>(x, x_ref.data()), w_ref.data(), b_ref.data(), kernel,
                              view_of<double>(y, y_ref.data()));
  cpu::conv2d_backward_input<double>(view_of<double>(gy, gy_ref.data()), w_ref.data(), kernel,
                                     view_of<double>(gx, gx_ref.data()));
  cpu::conv2d_backward_params<double>(view_of<double>(x, x_ref.data()),
                                      view_of<double>(gy, gy_ref.data()), kernel, gw_ref.data(),
                                      gb_ref.data());

  // Ours.
  DeviceBuffer<float> x_gpu(x.values), gy_gpu(gy.values), w_gpu(w), b_gpu(b);
  DeviceBuffer<float> y_ours(y.values), gx_ours(gx.values), gw_ours(gw), gb_ours(gb);
  cuda::conv2d_forward(view_of<float>(x, x_gpu.data()), w_gpu.data(), b_gpu.data(), kernel,
                       view_of<float>(y, y_ours.data()), nullptr);
  cuda::conv2d_backward_input(view_of<float>(gy, gy_gpu.data()), w_gpu.data(), kernel,
                              view_of<float>(gx, gx_ours.data()), nullptr);
  const auto ws = workspace(cuda::conv2d_backward_params_workspace_bytes(
      view_of<float>(x, x_gpu.data()), view_of<float>(gy, gy_gpu.data()), kernel));
  cuda::conv2d_backward_params(view_of<float>(x, x_gpu.data()), view_of<float>(gy, gy_gpu.data()),
                               kernel, gw_ours.data(), gb_ours.data(), ws.data(), nullptr);

  // The library's.
  DeviceBuffer<float> y_lib(y.values), gx_lib(gx.values), gw_lib(gw), gb_lib(gb);
  cudnn::conv2d_forward(view_of<float>(x, x_gpu.data()), w_gpu.data(), b_gpu.data(), kernel,
                        view_of<float>(y, y_lib.data()), library);
  cudnn::conv2d_backward_input(view_of<float>(gy, gy_gpu.data()), w_gpu.data(), kernel,
                               view_of<float>(gx, gx_lib.data()), library);
  cudnn::conv2d_backward_params(view_of<float>(x, x_gpu.data()), view_of<float>(gy, gy_gpu.data()),
                                kernel, gw_lib.data(), gb_lib.data(), library);

  const Bounds ours = bounds(xs, out_c, kernel, w, b, 3.0);
  // cuBLAS and cuDNN's bias ops sum directly; cuDNN's convolutions may transform.
  const bool gemm = library == Library::Cublas || (library == Library::Auto && kernel == 1);
  const double conv_factor = gemm ? 1.0 : kTransformFactor;
  const Bounds lib{conv_factor * ours.forward, conv_factor * ours.input, conv_factor * ours.params};
  const std::vector<float> y_o = y_ours.download(), gx_o = gx_ours.download(),
                           gw_o = gw_ours.download(), gb_o = gb_ours.download();
  const std::vector<float> y_l = y_lib.download(), gx_l = gx_lib.download(),
                           gw_l = gw_lib.download(), gb_l = gb_lib.download();

  // The library against the CPU in double: it is a valid reference.
  CHECK(expect_close(to_double(y_l), y_ref, lib.forward, 0.0,
                     label("library forward vs cpu", xs, out_c, kernel, slice, library)));
  CHECK(expect_close(to_double(gx_l), gx_ref, lib.input, 0.0,
                     label("library grad_x vs cpu", xs, out_c, kernel, slice, library)));
  CHECK(expect_close(to_double(gw_l), gw_ref, lib.params, 0.0,
                     label("library grad_weight vs cpu", xs, out_c, kernel, slice, library)));
  CHECK(expect_close(to_double(gb_l), gb_ref, ours.params, 0.0,
                     label("library grad_bias vs cpu", xs, out_c, kernel, slice, library)));
  // Ours against the CPU in double.
  CHECK(expect_close(to_double(y_o), y_ref, ours.forward, 0.0,
                     label("native forward vs cpu", xs, out_c, kernel, slice, library)));
  CHECK(expect_close(to_double(gx_o), gx_ref, ours.input, 0.0,
                     label("native grad_x vs cpu", xs, out_c, kernel, slice, library)));
  CHECK(expect_close(to_double(gw_o), gw_ref, ours.params, 0.0,
                     label("native grad_weight vs cpu", xs, out_c, kernel, slice, library)));
  CHECK(expect_close(to_double(gb_o), gb_ref, ours.params, 0.0,
                     label("native grad_bias vs cpu", xs, out_c, kernel, slice, library)));
  // Ours against the library: within both errors.
  CHECK(expect_close(y_o, y_l, ours.forward + lib.forward, 0.0,
                     label("native vs library forward", xs, out_c, kernel, slice, library)));
  CHECK(expect_close(gx_o, gx_l, ours.input + lib.input, 0.0,
                     label("native vs library grad_x", xs, out_c, kernel, slice, library)));
  CHECK(expect_close(gw_o, gw_l, ours.params + lib.params, 0.0,
                     label("native vs library grad_weight", xs, out_c, kernel, slice, library)));
  CHECK(expect_close(gb_o, gb_l, 2 * ours.params, 0.0,
                     label("native vs library grad_bias", xs, out_c, kernel, slice, library)));
}

TEST_CASE("cudnn: conv2d matches ours on the first and last layers' 3 channels", "[cudnn]") {
  for (bool slice : {false, true}) {
    check_conv({2, 3, 7, 9}, 5, 3, slice, 10, Library::Auto);  // 3 input channels, cuDNN
    // The final 1x1 to 3 channels: cuBLAS (what --conv-backend cudnn runs) and cuDNN.
    check_conv({2, 6, 5, 7}, 3, 1, slice, 20, Library::Auto);
    check_conv({2, 6, 5, 7}, 3, 1, slice, 20, Library::Cudnn);
    check_conv({2, 6, 5, 7}, 3, 1, slice, 20, Library::Cublas);
  }
}

TEST_CASE("cudnn: conv2d matches ours on odd shapes and channel slices", "[cudnn]") {
  check_conv({3, 5, 1, 2}, 4, 3, true, 30, Library::Auto);  // a plane smaller than the kernel
  check_conv({1, 20, 9, 11}, 17, 3, true, 40, Library::Auto);
  check_conv({1, 20, 9, 11}, 17, 1, false, 50, Library::Cublas);
  check_conv({1, 20, 9, 11}, 17, 1, true, 50, Library::Cudnn);
  check_conv({2, 4, 20, 35}, 6, 3, true, 60, Library::Auto);
  // Layer-like sizes, where cuDNN's heuristics pick its fast (possibly Winograd) algorithms.
  check_conv({2, 32, 40, 36}, 32, 3, false, 70, Library::Auto);
  check_conv({1, 64, 33, 31}, 48, 3, true, 80, Library::Auto);
  check_conv({2, 32, 33, 47}, 3, 1, false, 90, Library::Auto);
  check_conv({2, 32, 33, 47}, 3, 1, true, 90, Library::Cudnn);
}

TEST_CASE("cudnn: parameter gradients accumulate, and only those asked for", "[cudnn]") {
  const Shape xs{2, 4, 9, 13}, ys{2, 6, 9, 13};
  for (int kernel : {1, 3}) {
    const HostTensor x = random_host(xs, false, 100), gy = random_host(ys, false, 101);
    const int64_t weights = 6 * 4 * kernel * kernel;
    DeviceBuffer<float> x_gpu(x.values), gy_gpu(gy.values);
    DeviceBuffer<float> gw(std::vector<float>(size_t(weights), 0.0f)),
        gb(std::vector<float>(6, 0.0f));
    const auto xv = view_of<float>(x, x_gpu.data());
    const auto gyv = view_of<float>(gy, gy_gpu.data());
    cudnn::conv2d_backward_params(xv, gyv, kernel, gw.data(), gb.data());
    const std::vector<float> gw_once = gw.download(), gb_once = gb.download();
    cudnn::conv2d_backward_params(xv, gyv, kernel, gw.data(), gb.data());
    // Twice the sums (cuDNN may sum with atomics, in another order each time: the bound of two
    // sums, with sum|t| <= N H W = 234, and the += rounding).
    const double pixels = double(xs.n * xs.h * xs.w);
    const double tol =
        kTransformFactor * (2 * pixels * kUnitRoundoff * pixels) + 4 * kUnitRoundoff * 2 * pixels;
    std::vector<float> gw_twice = gw_once, gb_twice = gb_once;
    for (float& v : gw_twice) v *= 2.0f;
    for (float& v : gb_twice) v *= 2.0f;
    const std::string k = " k" + std::to_string(kernel);
    CHECK(expect_close(gw.download(), gw_twice, tol, 0.0, "grad_weight after two backwards" + k));
    CHECK(expect_close(gb.download(), gb_twice, tol, 0.0, "grad_bias after two backwards" + k));
    // Bias alone (weight null), then weight alone (bias null), each onto ones.
    DeviceBuffer<float> ones_b(std::vector<float>(6, 1.0f)),
        ones_w(std::vector<float>(size_t(weights), 1.0f));
    cudnn::conv2d_backward_params(xv, gyv, kernel, nullptr, ones_b.data());
    cudnn::conv2d_backward_params(xv, gyv, kernel, ones_w.data(), nullptr);
    std::vector<float> gb_plus_one = gb_once, gw_plus_one = gw_once;
    for (float& v : gb_plus_one) v += 1.0f;
    for (float& v : gw_plus_one) v += 1.0f;
    CHECK(expect_close(ones_b.download(), gb_plus_one, tol, 0.0, "grad_bias alone" + k));
    CHECK(expect_close(ones_w.download(), gw_plus_one, tol, 0.0, "grad_weight alone" + k));
  }
}

TEST_CASE("cudnn: shapes the library cannot take are clear errors", "[cudnn]") {
  DeviceBuffer<float> buffer(std::vector<float>(2 * 4 * 5 * 5, 0.0f));
  const cpu::NchwView<float> v{buffer.data(), 2, 4, 5, 5, 4 * 5 * 5};
  CHECK_THROWS_WITH(cudnn::conv2d_forward(v, buffer.data(), nullptr, 3, v, Library::Cublas),
                    Catch::Contains("1x1"));
  CHECK_THROWS_WITH(cudnn::conv2d_forward(v, buffer.data(), nullptr, 5, v),
                    Catch::Contains("kernel must be 1 or 3"));
}

// The conv2d op on Device::CUDA, forward and backward through autograd, with --conv-backend
// cudnn against native: the op's dispatch into engine/cudnn_conv.h.
TEST_CASE("cudnn: the conv2d op on CUDA tensors with --conv-backend cudnn", "[cudnn]") {
  struct Restore {
    ~Restore() { set_conv_backend(ConvBackend::Native); }
  } restore;
  for (int kernel : {1, 3}) {
    const Shape xs{2, 5, 7, 9};
    const int64_t out_c = 4;
    struct Result {
      std::vector<float> y, gx, gw, gb;
    };
    auto run = [&](ConvBackend backend) {
      set_conv_backend(backend);
      Tensor x = testing::random_tensor(xs, 200).to(Device::CUDA);
      Tensor w = testing::random_tensor({out_c, xs.c, kernel, kernel}, 201).to(Device::CUDA);
      Tensor b = testing::random_tensor({out_c, 1, 1, 1}, 202).to(Device::CUDA);
      x.set_requires_grad(true);
      w.set_requires_grad(true);
      b.set_requires_grad(true);
      Tensor y = conv2d(x, w, b);
      y.backward(testing::random_tensor(y.shape(), 203).to(Device::CUDA));
      return Result{y.to_vector(), x.grad().to_vector(), w.grad().to_vector(),
                    b.grad().to_vector()};
    };
    const Result native = run(ConvBackend::Native), library = run(ConvBackend::Cudnn);
    // Values in [-1, 1]: the bounds of check_conv with every |w|, |b| <= 1, both ways.
    const std::vector<float> w_max(size_t(out_c * xs.c * kernel * kernel), 1.0f),
        b_max(size_t(out_c), 1.0f);
    const Bounds one = bounds(xs, out_c, kernel, w_max, b_max, 0.0);
    const double f = 1.0 + kTransformFactor;
    const std::string k = " k" + std::to_string(kernel);
    CHECK(expect_close(library.y, native.y, f * one.forward, 0.0, "conv2d op forward" + k));
    CHECK(expect_close(library.gx, native.gx, f * one.input, 0.0, "conv2d op grad_x" + k));
    CHECK(expect_close(library.gw, native.gw, f * one.params, 0.0, "conv2d op grad_weight" + k));
    CHECK(expect_close(library.gb, native.gb, f * one.params, 0.0, "conv2d op grad_bias" + k));
  }
}

}  // namespace
}  // namespace deblur
