// conv2d: gradchecks of the CPU kernels in double, a direct-formula forward check, and the op's
// gradient accumulation rules through autograd.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>

#include "engine/ops.h"
#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/conv2d_blocked.h"
#include "kernels/cpu/parallel.h"
#include "tests/testing.h"

using namespace deblur;
using namespace deblur::testing;

namespace {

// The definition, term by term: the oracle for the forward kernel.
std::vector<double> conv_by_definition(const std::vector<double>& x, Shape xs,
                                       const std::vector<double>& w, const std::vector<double>& b,
                                       int64_t out_c, int k) {
  std::vector<double> y(size_t(xs.n * out_c * xs.h * xs.w));
  const int64_t pad = k / 2;
  for (int64_t n = 0; n < xs.n; ++n)
    for (int64_t o = 0; o < out_c; ++o)
      for (int64_t i = 0; i < xs.h; ++i)
        for (int64_t j = 0; j < xs.w; ++j) {
          double s = b[o];
          for (int64_t c = 0; c < xs.c; ++c)
            for (int64_t u = 0; u < k; ++u)
              for (int64_t v = 0; v < k; ++v) {
                const int64_t r = i + u - pad, q = j + v - pad;
                if (r < 0 || r >= xs.h || q < 0 || q >= xs.w) continue;
                s +=
                    w[((o * xs.c + c) * k + u) * k + v] * x[((n * xs.c + c) * xs.h + r) * xs.w + q];
              }
          y[((n * out_c + o) * xs.h + i) * xs.w + j] = s;
        }
  return y;
}
}  // namespace

TEST_CASE("conv2d kernel forward equals the definition", "[conv2d]") {
  for (int k : {1, 3}) {
    const Shape xs{2, 5, 7, 9};
    const int64_t out_c = 11;  // not a multiple of the kernel's output-channel block
    auto x = random_values(xs.numel(), 1), w = random_values(out_c * xs.c * k * k, 2),
         b = random_values(out_c, 3);
    std::vector<double> y(size_t(xs.n * out_c * xs.h * xs.w));
    cpu::conv2d_forward<double>(view(x, xs), w.data(), b.data(), k,
                                view(y, {xs.n, out_c, xs.h, xs.w}));
    // Same terms summed in another order: only rounding differs (~1e-15 relative).
    CHECK(expect_close(y, conv_by_definition(x, xs, w, b, out_c, k), 1e-12, 1e-12,
                       "conv" + std::to_string(k)));
  }
}

TEST_CASE("conv2d float kernels of every instruction set equal the double reference",
          "[conv2d]") {
  // Odd widths cover every tile shape (one to four vectors per row, partial last vectors,
  // several rows per tile), channel counts that are no multiple of any output block, k = 1 and 3,
  // and an input that is a channel slice of a wider tensor (batch stride > C * H * W).
  struct Case {
    Shape xs;
    int64_t out_c;
  };
  const Case cases[] = {{{2, 3, 5, 1}, 5},   {{1, 7, 3, 17}, 13}, {{2, 5, 9, 33}, 7},
                        {{1, 4, 6, 70}, 6},  {{2, 13, 4, 8}, 3},  {{1, 3, 11, 130}, 32},
                        {{3, 16, 16, 16}, 12}, {{1, 3, 176, 176}, 8}, {{3, 16, 176, 176}, 8},
                        {{1, 8, 88, 88}, 16},
                        // The weight gradient stacks samples whose padded planes take 4 MB or
                        // less: 3 x 16 channels go 2 and 1 a job, 2 x 32 channels 1 a job.
                        {{2, 32, 176, 176}, 8}};
  for (const auto* isa : cpu::supported_conv2d_isas())
    for (int k : {1, 3})
      for (const Case& c : cases) {
        const Shape xs = c.xs, ys{xs.n, c.out_c, xs.h, xs.w};
        const std::string what = std::string(isa->name) + " conv" + std::to_string(k) + " " +
                                 std::to_string(xs.c) + "->" + std::to_string(c.out_c) + " " +
                                 std::to_string(xs.h) + "x" + std::to_string(xs.w);
        // x lives in a buffer with 2 extra channels per sample: the kernels must use the view's
        // batch stride.
        const Shape wide{xs.n, xs.c + 2, xs.h, xs.w};
        const auto x_wide = random_values(wide.numel(), 21);
        const auto w = random_values(c.out_c * xs.c * k * k, 22);
        const auto b = random_values(c.out_c, 23);
        const auto gy = random_values(ys.numel(), 24);
        auto xd = x_wide;
        cpu::NchwView<double> x_view{xd.data(), xs.n, xs.c, xs.h, xs.w, wide.c * wide.h * wide.w};
        std::vector<double> y_ref(ys.numel()), gw_ref(w.size(), 0.0), gyd = gy;
        cpu::conv2d_forward<double>(x_view, w.data(), b.data(), k, view(y_ref, ys));
        cpu::conv2d_backward_params<double>(x_view, view(gyd, ys), k, gw_ref.data(), nullptr);

        auto xf = to_float(x_wide);
        const auto wf = to_float(w), bf = to_float(b);
        auto gyf = to_float(gy);
        cpu::NchwView<float> xf_view{xf.data(), xs.n, xs.c, xs.h, xs.w, wide.c * wide.h * wide.w};
        std::vector<float> y(ys.numel(), 1e30f), gw(w.size(), 0.5f);
        isa->forward(xf_view, wf.data(), bf.data(), k, view(y, ys));
        isa->backward_weight(xf_view, view(gyf, ys), k, gw.data());
        for (float& v : gw) v -= 0.5f;  // pre-filled: the kernel adds
        // Float sums of at most 32 * 9 products of values in [-1, 1] (forward) and sums of up
        // to 3 * 176 * 176 pixel products (weight gradient: float over at most 64 vectors or a
        // row, then double): rounding stays below ~1e-6 and ~1e-4 of those sums' scale.
        CHECK(expect_close(to_double(y), y_ref, 2e-5, 1e-5, what + " forward"));
        CHECK(expect_close(to_double(gw), gw_ref, 2e-4, 1e-5, what + " weight grad"));
      }
}

TEST_CASE("conv2d Winograd F(4x4, 3x3) of every instruction set is close to the double reference",
          "[conv2d]") {
  // Heights and widths that are no multiple of the 4x4 output tile, channel counts that are no
  // multiple of a vector or of a GEMM chunk, and channel-slice views of wider tensors on both
  // sides (the U-Net's concat buffers). Whether a thread takes slabs of its own or the threads
  // share bands depends on the thread count: on 1 thread every case of 2+ slabs is private
  // (200x200 with a short last slab; 2 x 10x800, a tile row a slab, partial tiles at the
  // bottom), on 16 those two are shared bands, several of them, by 16 threads at once.
  struct Case {
    Shape xs;
    int64_t out_c;
  };
  const Case cases[] = {{{1, 16, 1, 1}, 8},    {{2, 17, 5, 7}, 3},     {{1, 32, 9, 13}, 32},
                        {{1, 40, 16, 16}, 40}, {{1, 64, 30, 22}, 72},  {{1, 24, 3, 70}, 64},
                        {{1, 128, 8, 8}, 130}, {{1, 32, 200, 200}, 32}, {{2, 32, 10, 800}, 20},
                        {{1, 384, 9, 7}, 256}};  // transformed weights over 12 MiB: large bands
  struct RestoreThreads {
    ~RestoreThreads() { cpu::set_num_threads(0); }
  } restore;
  for (const auto* isa : cpu::supported_conv2d_isas())
    for (const Case& c : cases) {
      const Shape xs = c.xs, ys{xs.n, c.out_c, xs.h, xs.w};
      const std::string what = std::string(isa->name) + " winograd " + std::to_string(xs.c) +
                               "->" + std::to_string(c.out_c) + " " + std::to_string(xs.h) + "x" +
                               std::to_string(xs.w);
      const Shape x_wide{xs.n, xs.c + 3, xs.h, xs.w}, y_wide{xs.n, c.out_c + 2, xs.h, xs.w};
      const auto x = random_values(x_wide.numel(), 31);
      const auto w = random_values(c.out_c * xs.c * 9, 32, -0.2, 0.2);
      const auto b = random_values(c.out_c, 33);
      auto xd = x;
      const int64_t x_stride = x_wide.c * xs.h * xs.w, y_stride = y_wide.c * xs.h * xs.w;
      std::vector<double> y_ref(ys.numel());
      cpu::conv2d_forward<double>({xd.data(), xs.n, xs.c, xs.h, xs.w, x_stride}, w.data(),
                                  b.data(), 3, view(y_ref, ys));
      auto xf = to_float(x);
      const auto wf = to_float(w), bf = to_float(b);
      // On 1 and 16 threads, the transformed weights kept for the next call (inference) or made
      // for this one (training).
      for (int threads : {1, 16})
        for (bool cache_weights : {true, false}) {
          cpu::set_num_threads(threads);
          std::vector<float> y_buffer(y_wide.numel(), 1e30f);
          isa->forward_winograd({xf.data(), xs.n, xs.c, xs.h, xs.w, x_stride}, wf.data(), bf.data(),
                                {y_buffer.data(), xs.n, c.out_c, xs.h, xs.w, y_stride},
                                /*upsample=*/false, cache_weights);
          std::vector<double> y(ys.numel());
          for (int64_t n = 0; n < xs.n; ++n)
            for (int64_t i = 0; i < c.out_c * xs.h * xs.w; ++i)
              y[n * c.out_c * xs.h * xs.w + i] = y_buffer[n * y_stride + i];
          // The channels past out_c in the wider output stay untouched.
          CHECK(y_buffer[size_t(c.out_c * xs.h * xs.w)] == 1e30f);
          // Outputs are sums of 9 * C products of size ~0.1 (|y| ~ 1 to 5). Winograd's transforms
          // scale intermediate values by up to ~100 (the 8 and 1/24 of F(4x4, 3x3)), so float
          // rounding reaches a few 1e-5 of the outputs' scale where the direct sum's is ~1e-6
          // (measured 2026-12-06: worst 1/3 of this bound, at 128 channels); the rounding of a sum
          // grows as the square root of its terms, so the bound does too past 128 channels (384:
          // worst 0.8 of it). A wrong tap, tile or channel is O(1).
          const double bound = 1e-4 * std::sqrt(std::max(1.0, double(xs.c) / 128));
          CHECK(expect_close(y, y_ref, bound, 1e-4,
                             what + (cache_weights ? " cached, " : ", ") + std::to_string(threads) +
                                 " threads"));
        }
    }
}

TEST_CASE("conv2d float forward and input gradient take Winograd where it pays", "[conv2d]") {
  // conv2d_forward<float> (training's forward; conv2d_backward_input through it) runs Winograd
  // with the weights transformed per call above kWinogradMinChannels, kWinogradMinPixels and up
  // to kWinogradMaxChannelProduct, else the direct kernel: bit for bit one or the other, and
  // both gradients close to the double reference.
  struct Case {
    Shape xs;
    int64_t out_c;
    bool winograd;
  };
  const Case cases[] = {{{2, 16, 32, 64}, 24, true},      // 4096 pixels over the batch
                        {{1, 16, 63, 65}, 24, false},     // 4095 pixels
                        {{1, 15, 64, 64}, 24, false},     // 15 input channels
                        {{1, 256, 64, 64}, 512, true},    // 256 x 512 channel pairs
                        {{1, 257, 64, 64}, 512, false}};  // 257 x 512
  const auto& isa = cpu::active_conv2d_isa();
  for (const Case& c : cases) {
    const Shape xs = c.xs, ys{xs.n, c.out_c, xs.h, xs.w};
    INFO(xs.str() << " -> " << c.out_c);
    auto x = to_float(random_values(xs.numel(), 41));
    const auto w = to_float(random_values(c.out_c * xs.c * 9, 42, -0.2, 0.2));
    const auto b = to_float(random_values(c.out_c, 43));
    std::vector<float> y(ys.numel()), want(ys.numel());
    cpu::conv2d_forward<float>(view(x, xs), w.data(), b.data(), 3, view(y, ys));
    if (c.winograd)
      isa.forward_winograd(view(x, xs), w.data(), b.data(), view(want, ys), /*upsample=*/false,
                           /*cache_weights=*/false);
    else
      isa.forward(view(x, xs), w.data(), b.data(), 3, view(want, ys));
    CHECK(std::memcmp(y.data(), want.data(), y.size() * sizeof(float)) == 0);
    if (xs.c * c.out_c > 64 * 64) continue;  // the double reference of the large case is slow
    // Against double: the forward and the input gradient (itself a forward of 24 -> 16 or 15
    // channels over the flipped weights, which takes Winograd by the same rules).
    const auto gy = random_values(ys.numel(), 44);
    auto xd = to_double(x), gyd = gy;
    const auto wd = to_double(w), bd = to_double(b);
    std::vector<double> y_ref(ys.numel()), gx_ref(xs.numel());
    cpu::conv2d_forward<double>(view(xd, xs), wd.data(), bd.data(), 3, view(y_ref, ys));
    cpu::conv2d_backward_input<double>(view(gyd, ys), wd.data(), 3, view(gx_ref, xs));
    auto gyf = to_float(gy);
    std::vector<float> gx(xs.numel());
    cpu::conv2d_backward_input<float>(view(gyf, ys), w.data(), 3, view(gx, xs));
    CHECK(expect_close(to_double(y), y_ref, 1e-4, 1e-4, "forward"));
    CHECK(expect_close(to_double(gx), gx_ref, 1e-4, 1e-4, "input gradient"));
  }
}

TEST_CASE("conv2d kernel gradcheck", "[gradcheck][conv2d]") {
  for (int k : {1, 3}) {
    const Shape xs{2, 3, 5, 7};
    const int64_t out_c = 4;
    const Shape ys{xs.n, out_c, xs.h, xs.w};
    const auto r = random_values(ys.numel(), 10);
    auto forward = [&](const std::vector<std::vector<double>>& in) {
      std::vector<double> x = in[0], y(ys.numel());
      cpu::conv2d_forward<double>(view(x, xs), in[1].data(), in[2].data(), k, view(y, ys));
      return y;
    };
    ScalarFn f = [&](const auto& in) { return weighted_sum(forward(in), r); };
    GradFn g = [&](const auto& in) {
      std::vector<double> x = in[0], gy = r, gx(xs.numel());
      // Pre-filled parameter gradients: the kernel must add to them, not overwrite.
      std::vector<double> gw(in[1].size(), 0.5), gb(in[2].size(), -0.25);
      cpu::conv2d_backward_input<double>(view(gy, ys), in[1].data(), k, view(gx, xs));
      cpu::conv2d_backward_params<double>(view(x, xs), view(gy, ys), k, gw.data(), gb.data());
      for (double& v : gw) v -= 0.5;
      for (double& v : gb) v += 0.25;
      return std::vector<std::vector<double>>{gx, gw, gb};
    };
    std::vector<std::vector<double>> inputs = {random_values(xs.numel(), 11),
                                               random_values(out_c * xs.c * k * k, 12),
                                               random_values(out_c, 13)};
    CHECK(gradcheck(f, g, inputs, "conv" + std::to_string(k)));
  }
}

TEST_CASE("conv2d op: parameter gradients accumulate, shapes are checked", "[conv2d][autograd]") {
  Tensor x = random_tensor({2, 3, 6, 5}, 1).set_requires_grad(true);
  Tensor w = random_tensor({4, 3, 3, 3}, 2).set_requires_grad(true);
  Tensor b = random_tensor({4, 1, 1, 1}, 3).set_requires_grad(true);
  mean(conv2d(x, w, b)).backward();
  const std::vector<Tensor> once = {x.grad().clone(), w.grad().clone(), b.grad().clone()};
  mean(conv2d(x, w, b)).backward();
  const std::vector<Tensor> twice = {x.grad(), w.grad(), b.grad()};
  const char* names[] = {"x", "weight", "bias"};
  for (int i = 0; i < 3; ++i) {
    std::vector<float> doubled = once[i].to_vector();
    for (float& v : doubled) v *= 2;
    // Two identical float sums: equal up to one rounding of the addition.
    CHECK(expect_close(twice[i].to_vector(), doubled, 1e-7, 1e-6,
                       std::string("conv ") + names[i] + " grad accumulates"));
  }
  CHECK_THROWS_WITH(conv2d(random_tensor({2, 5, 6, 5}, 4), w, b),
                    Catch::Contains("conv2d") && Catch::Contains("[2, 5, 6, 5]") &&
                        Catch::Contains("[4, 3, 3, 3]"));
  CHECK_THROWS_WITH(conv2d(x, random_tensor({4, 3, 5, 5}, 5), b), Catch::Contains("3x3"));
}
