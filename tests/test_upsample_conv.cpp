// upsample_conv2d and concat_into on the CPU: the fused op is the composition of the CPU
// upsample and conv kernels, so it must equal conv2d(upsample_bilinear2x(x)) bitwise, forward
// and backward (no new CPU kernel: those kernels have their own gradchecks); concat_into must
// give the same output and gradients as concat(), write nothing when its inputs are in place,
// copy those that are not, and refuse bad buffers.
#include <catch2/catch.hpp>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "engine/ops.h"
#include "kernels/cpu/conv2d_blocked.h"
#include "kernels/cpu/parallel.h"
#include "tests/testing.h"

using namespace deblur;
using namespace deblur::testing;

namespace {

struct Run {
  std::vector<float> output;
  std::vector<std::vector<float>> grads;
};

using OpFn = std::function<Tensor(const std::vector<Tensor>&)>;

// op on fresh leaves made from fixed seeds, backward seeded with a fixed random gradient. The
// parameter-like inputs (index >= 1) start with a pre-filled gradient, which must be added to.
Run run(const std::vector<Shape>& shapes, const OpFn& op, uint64_t seed = 5) {
  std::vector<Tensor> inputs;
  for (size_t i = 0; i < shapes.size(); ++i) {
    Tensor t = random_tensor(shapes[i], seed + i);
    t.set_requires_grad(true);
    if (i >= 1) t.set_grad(random_tensor(shapes[i], seed + 50 + i));
    inputs.push_back(t);
  }
  Tensor y = op(inputs);
  y.backward(random_tensor(y.shape(), seed + 100));
  Run r{y.to_vector(), {}};
  // (A channel slice of an input carries no autograd history: that input gets no gradient.)
  for (const Tensor& t : inputs)
    r.grads.push_back(t.grad().defined() ? t.grad().to_vector() : std::vector<float>{});
  return r;
}

void check_same(const std::string& name, const std::vector<Shape>& shapes, const OpFn& op,
                const OpFn& ref) {
  const Run a = run(shapes, op), b = run(shapes, ref);
  CHECK(expect_close(a.output, b.output, 0.0, 0.0, name + " forward"));
  for (size_t i = 0; i < shapes.size(); ++i)
    CHECK(expect_close(a.grads[i], b.grads[i], 0.0, 0.0,
                       name + " gradient of input " + std::to_string(i)));
}

Tensor unfused(const std::vector<Tensor>& in) {
  return conv2d(upsample_bilinear2x(in[0]), in[1], in[2]);
}

}  // namespace

TEST_CASE("upsample_conv2d equals conv2d of upsample_bilinear2x on the cpu", "[upsample_conv]") {
  // Odd x_low planes, batch 2, 3 and 6 input channels.
  check_same(
      "upsample_conv2d", {{2, 3, 5, 7}, {4, 3, 3, 3}, {4, 1, 1, 1}},
      [](auto& in) { return upsample_conv2d(in[0], in[1], in[2]); }, unfused);
  check_same(
      "upsample_conv2d", {{2, 6, 1, 3}, {3, 6, 3, 3}, {3, 1, 1, 1}},
      [](auto& in) { return upsample_conv2d(in[0], in[1], in[2]); }, unfused);
  // On a channel slice of a wider input (a view: no gradient for it), into a channel slice of a
  // wider output; the parameters' gradients still flow.
  check_same(
      "upsample_conv2d (slices)", {{2, 5, 3, 5}, {4, 3, 3, 3}, {4, 1, 1, 1}},
      [](auto& in) {
        Tensor out = Tensor::empty({2, 6, 6, 10});
        return upsample_conv2d(in[0].channel_slice(1, 3), in[1], in[2], out.channel_slice(1, 4));
      },
      [](auto& in) {
        return conv2d(upsample_bilinear2x(in[0].channel_slice(1, 3)), in[1], in[2]);
      });
}

TEST_CASE("upsample_conv2d without autograd equals upsample then conv2d, bit for bit",
          "[upsample_conv]") {
  // Inference fuses the upsample into Winograd's band packing from kWinogradMinChannels input
  // channels (below, it upsamples into a temporary): the values must be those of the two ops in
  // turn, under NoGradGuard as well (both then take the inference conv). Odd low-resolution
  // sizes put the border taps and Winograd's partial tiles at the edges; two samples check the
  // batch offset; the wide one takes slabs of a thread's own on 1 thread and shares its bands
  // on 16. Every instruction set this CPU runs (each compiles the packing on its own).
  struct RestoreIsa {
    std::string name = cpu::active_conv2d_isa().name;
    ~RestoreIsa() {
      cpu::use_conv2d_isa(name);
      cpu::set_num_threads(0);
    }
  } restore;
  for (int threads : {1, 16}) {
    for (const cpu::Conv2dIsa* isa : cpu::supported_conv2d_isas()) {
      cpu::set_num_threads(threads);
      cpu::use_conv2d_isa(isa->name);
      for (const Shape& low : {Shape{2, 64, 7, 5}, Shape{1, 72, 12, 9}, Shape{2, 16, 5, 6},
                               Shape{2, 8, 5, 6}, Shape{2, 32, 5, 400}}) {
        INFO(isa->name << " " << low.str() << " " << threads << " threads");
        const Tensor x = random_tensor(low, 31);
        const Tensor w = random_tensor({24, low.c, 3, 3}, 32, -0.1, 0.1);
        const Tensor b = random_tensor({24, 1, 1, 1}, 33);
        NoGradGuard no_grad;
        const std::vector<float> fused = upsample_conv2d(x, w, b).to_vector();
        const std::vector<float> composed = conv2d(upsample_bilinear2x(x), w, b).to_vector();
        REQUIRE(fused.size() == composed.size());
        CHECK(std::memcmp(fused.data(), composed.data(), fused.size() * sizeof(float)) == 0);
      }
    }
  }
}

TEST_CASE("upsample_conv2d checks its arguments", "[upsample_conv]") {
  const Tensor x = random_tensor({1, 3, 4, 4}, 1), w = random_tensor({2, 3, 3, 3}, 2);
  CHECK_THROWS_WITH(upsample_conv2d(x, random_tensor({2, 3, 1, 1}, 3), Tensor()),
                    Catch::Contains("3x3"));
  CHECK_THROWS_WITH(upsample_conv2d(x, random_tensor({2, 4, 3, 3}, 3), Tensor()),
                    Catch::Contains("channels"));
  CHECK_THROWS_WITH(upsample_conv2d(x, w, Tensor(), Tensor::empty({1, 2, 4, 4})),
                    Catch::Contains("out"));
  Tensor used = Tensor::empty({1, 2, 8, 8});
  used.set_requires_grad(true);
  CHECK_THROWS_WITH(upsample_conv2d(x, w, Tensor(), used), Catch::Contains("autograd"));
}

namespace {

// The decoder's pattern, in place: the up path written into the buffer, the skip (made by
// another op, and also consumed elsewhere) copied in; a conv then reads the whole buffer.
Tensor up_concat(const std::vector<Tensor>& in) {
  const Tensor skip = relu(in[3]);
  Tensor buffer = Tensor::empty({skip.n(), in[1].n() + skip.c(), skip.h(), skip.w()});
  Tensor u = upsample_conv2d(in[0], in[1], in[2], buffer.channel_slice(0, in[1].n()));
  REQUIRE(u.data() == buffer.data());
  Tensor cat = concat_into(buffer, u, skip);
  REQUIRE(cat.data() == buffer.data());
  REQUIRE(cat.same_storage(buffer));
  return add(conv2d(cat, in[4], in[5]), conv2d(cat, in[4], in[5]));
}

Tensor up_concat_ref(const std::vector<Tensor>& in) {
  const Tensor cat = concat(unfused(in), relu(in[3]));
  return add(conv2d(cat, in[4], in[5]), conv2d(cat, in[4], in[5]));
}

}  // namespace

TEST_CASE("concat_into gives concat's output and gradients, in place", "[upsample_conv]") {
  check_same("concat_into",
             {{2, 5, 3, 5}, {4, 5, 3, 3}, {4, 1, 1, 1}, {2, 3, 6, 10}, {2, 7, 3, 3}, {2, 1, 1, 1}},
             up_concat, up_concat_ref);
  // Neither input in place: both copied, the same results as concat.
  check_same(
      "concat_into (copies)", {{2, 3, 4, 5}, {2, 2, 4, 5}},
      [](auto& in) {
        return concat_into(Tensor::empty({2, 5, 4, 5}), relu(in[0]), in[1]);
      },
      [](auto& in) { return concat(relu(in[0]), in[1]); });
}

TEST_CASE("concat_into writes nothing over inputs already in place", "[upsample_conv]") {
  Tensor buffer = Tensor::full({2, 5, 3, 4}, 7.0f);
  const Tensor a = buffer.channel_slice(0, 2), b = buffer.channel_slice(2, 3);
  const std::vector<float> before = buffer.to_vector();
  const Tensor cat = concat_into(buffer, a, b);
  CHECK(cat.data() == buffer.data());
  CHECK(expect_close(cat.to_vector(), before, 0.0, 0.0, "buffer untouched"));
  // Slices of the buffer in the wrong places would be an overlapping copy: refused.
  CHECK_THROWS_WITH(concat_into(buffer, buffer.channel_slice(3, 2), buffer.channel_slice(0, 3)),
                    Catch::Contains("overlapping"));
}

TEST_CASE("concat_into checks its buffer", "[upsample_conv]") {
  const Tensor a = random_tensor({1, 2, 3, 4}, 1), b = random_tensor({1, 3, 3, 4}, 2);
  CHECK_THROWS_WITH(concat_into(Tensor::empty({1, 4, 3, 4}), a, b), Catch::Contains("buffer"));
  Tensor used = Tensor::empty({1, 5, 3, 4});
  used.set_requires_grad(true);
  CHECK_THROWS_WITH(concat_into(used, a, b), Catch::Contains("autograd"));
}
