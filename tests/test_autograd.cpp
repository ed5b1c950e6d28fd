// The autograd tape: gradient routing and summing, leaf accumulation, no-grad mode, freed
// graphs, and views.
#include <catch2/catch.hpp>
#include <cmath>

#include "engine/device_memory.h"
#include "engine/ops.h"
#include "tests/testing.h"

using namespace deblur;
using namespace deblur::testing;

TEST_CASE("gradients of a tensor used twice are summed", "[autograd]") {
  Tensor x = random_tensor({2, 3, 4, 5}, 1).set_requires_grad(true);
  Tensor h = scale(x, 2.0f);
  Tensor loss = mean(add(relu(h), h));
  loss.backward();
  const auto xv = x.to_vector(), g = x.grad().to_vector();
  // d/dx mean(relu(2x) + 2x) = (2 [x > 0] + 2) / numel; float rounding only (~1e-7).
  std::vector<float> expected(xv.size());
  for (size_t i = 0; i < xv.size(); ++i) expected[i] = (xv[i] > 0 ? 4.0f : 2.0f) / xv.size();
  CHECK(expect_close(g, expected, 0, 1e-6, "x.grad"));
}

TEST_CASE("leaf gradients accumulate until cleared", "[autograd]") {
  Tensor x = random_tensor({1, 2, 3, 3}, 2).set_requires_grad(true);
  mean(scale(x, 3.0f)).backward();
  mean(scale(x, 3.0f)).backward();
  const std::vector<float> twice(x.numel(), 6.0f / x.numel());
  CHECK(expect_close(x.grad().to_vector(), twice, 0, 1e-6, "accumulated"));
  x.set_grad(Tensor());
  mean(x).backward();
  const std::vector<float> once(x.numel(), 1.0f / x.numel());
  CHECK(expect_close(x.grad().to_vector(), once, 0, 1e-6, "after clearing"));
}

TEST_CASE("no-grad mode records nothing", "[autograd]") {
  Tensor x = random_tensor({1, 2, 3, 3}, 3).set_requires_grad(true);
  {
    NoGradGuard guard;
    Tensor y = relu(scale(x, 2.0f));
    CHECK_FALSE(y.requires_grad());
  }
  CHECK(grad_enabled());
  CHECK(relu(x).requires_grad());
}

TEST_CASE("backward frees the graph and says so when run twice", "[autograd]") {
  Tensor x = random_tensor({1, 1, 2, 2}, 4).set_requires_grad(true);
  Tensor loss = mean(relu(x));
  loss.backward();
  CHECK_THROWS_WITH(loss.backward(), Catch::Contains("second time"));
  CHECK_THROWS_WITH(relu(x).backward(), Catch::Contains("1-element"));
  CHECK_THROWS_WITH(mean(random_tensor({1, 1, 2, 2}, 5)).backward(),
                    Catch::Contains("does not require grad"));
}

TEST_CASE("backward from a non-scalar takes the upstream gradient", "[autograd]") {
  Tensor x = random_tensor({2, 2, 3, 1}, 6).set_requires_grad(true);
  Tensor gy = random_tensor(x.shape(), 7);
  scale(x, -2.0f).backward(gy);
  auto expected = gy.to_vector();
  for (float& v : expected) v *= -2.0f;
  CHECK(expect_close(x.grad().to_vector(), expected, 0, 0, "x.grad"));  // exact: one multiply
}

TEST_CASE("channel slices are zero-copy views", "[tensor]") {
  Tensor t = random_tensor({2, 5, 3, 4}, 8);
  Tensor s = t.channel_slice(1, 3);
  CHECK(s.shape() == Shape{2, 3, 3, 4});
  CHECK(s.same_storage(t));
  CHECK(s.batch_stride() == 5 * 3 * 4);
  CHECK_FALSE(s.is_contiguous());
  const auto all = t.to_vector(), part = s.to_vector();
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t i = 0; i < 3 * 12; ++i) CHECK(part[n * 36 + i] == all[n * 60 + 12 + i]);
  s.data()[0] = 42.0f;  // writes through to the base tensor
  CHECK(t.to_vector()[12] == 42.0f);
  CHECK_THROWS_WITH(t.channel_slice(4, 2), Catch::Contains("out of range"));
}

TEST_CASE("one tensor given twice to an op gets both gradients", "[autograd]") {
  // An intermediate used as both GroupNorm gamma and beta: both parameter gradients flow into
  // the same pending buffer. Reference: the same computation with a leaf, whose gradient
  // accumulates by construction.
  Tensor x = random_tensor({2, 4, 3, 3}, 9);
  Tensor p = random_tensor({4, 1, 1, 1}, 10, 0.5, 1.5).set_requires_grad(true);
  Tensor leaf = p.detach().clone().set_requires_grad(true);
  Tensor g = scale(p, 1.0f);  // not a leaf
  mean(group_norm(x, g, g, 2)).backward();
  mean(group_norm(x, leaf, leaf, 2)).backward();
  // Same float operations in the same order.
  CHECK(expect_close(p.grad().to_vector(), leaf.grad().to_vector(), 1e-7, 1e-6, "p.grad"));
  // And the same tensor twice to add: d mean(x + x) / dx = 2 / numel.
  Tensor y = random_tensor({1, 2, 2, 2}, 11).set_requires_grad(true);
  mean(add(y, y)).backward();
  CHECK(expect_close(y.grad().to_vector(), std::vector<float>(8, 0.25f), 0, 1e-7, "y.grad"));
}

TEST_CASE("parameters must be contiguous", "[autograd][tensor]") {
  // A channel slice of a [2, 2, 1, 1] tensor is 2 values 2 apart: not a flat parameter array.
  Tensor base = Tensor::from_vector({2, 2, 1, 1}, {10, 99, 20, 99});
  Tensor strided = base.channel_slice(0, 1);
  Tensor x = Tensor::zeros({1, 2, 3, 3});
  CHECK_THROWS_WITH(conv2d(x, Tensor::zeros({2, 2, 1, 1}), strided),
                    Catch::Contains("bias") && Catch::Contains("contiguous"));
  CHECK_THROWS_WITH(group_norm(x, strided, strided, 1), Catch::Contains("contiguous"));
  Tensor leaf = Tensor::zeros({2, 1, 1, 1}).set_requires_grad(true);
  CHECK_THROWS_WITH(leaf.set_grad(strided), Catch::Contains("contiguous"));
}

TEST_CASE("relu keeps NaN, as PyTorch does", "[autograd][relu]") {
  Tensor x = Tensor::from_vector({1, 1, 1, 3}, {NAN, -1.0f, 2.0f});
  const auto y = relu(x).to_vector();
  CHECK(std::isnan(y[0]));
  CHECK(y[1] == 0.0f);
  CHECK(y[2] == 2.0f);
  const auto z =
      group_norm(Tensor::from_vector({1, 1, 1, 2}, {NAN, 1.0f}), Tensor::full({1, 1, 1, 1}, 1.0f),
                 Tensor::zeros({1, 1, 1, 1}), 1, 1e-5f, /*fuse_relu=*/true)
          .to_vector();
  CHECK(std::isnan(z[0]));
}

TEST_CASE("tensor shapes that overflow are refused", "[tensor]") {
  CHECK_THROWS_WITH(Tensor::empty({1 << 21, 1 << 21, 1 << 21, 8}), Catch::Contains("too large"));
}

TEST_CASE("large host blocks are cached and reused, small ones are not counted", "[tensor]") {
  host_empty_cache();
  const HostMemoryStats before = host_memory_stats();
  const Shape large{1, 4, 256, 260};  // 1,064,960 bytes: size class 1 MiB + 1/8 MiB
  const size_t size_class = size_t(9) << 17;
  float* first = nullptr;
  {
    Tensor a = Tensor::zeros(large);
    first = a.data();
    const HostMemoryStats during = host_memory_stats();
    CHECK(during.in_use_bytes == before.in_use_bytes + size_class);
    CHECK(during.peak_in_use_bytes >= during.in_use_bytes);
    Tensor small = Tensor::zeros({1, 1, 16, 16});
    CHECK(host_memory_stats().in_use_bytes == during.in_use_bytes);
  }
  const HostMemoryStats after = host_memory_stats();
  CHECK(after.in_use_bytes == before.in_use_bytes);
  CHECK(after.cached_bytes == size_class);
  // The same size class comes back from the cache, zeroed when asked for.
  Tensor again = Tensor::zeros({1, 4, 256, 270});
  CHECK(again.data() == first);
  CHECK(host_memory_stats().cached_bytes == 0);
  for (float v : again.to_vector()) REQUIRE(v == 0.0f);
  host_empty_cache();
}

TEST_CASE("the host cache reuses near sizes and holds at most twice the peak in use",
          "[tensor]") {
  // Sizes far above the other tests' (never touched, so no pages are faulted in): the most in
  // use at once is set here, 256 MiB plus the little other tensors hold (ctest runs each test
  // case in a process of its own; the cache's peak is never reset).
  const size_t mib = size_t(1) << 20;
  host_empty_cache();
  { Tensor a = Tensor::empty({1, 1, 8192, 8192}); }  // 256 MiB
  CHECK(host_memory_stats().cached_bytes == 256 * mib);
  {
    // 256 MiB is more than 1/4 above 192 MiB: a miss, and room for both within twice the peak.
    Tensor b = Tensor::empty({1, 3, 4096, 4096});
    CHECK(host_memory_stats().cached_bytes == 256 * mib);
  }
  CHECK(host_memory_stats().cached_bytes == 448 * mib);
  {
    // 136 MiB (size class 144 MiB) misses too; keeping all three would hold 592 MiB, past twice
    // the peak (about 512 MiB), so the largest cached block goes.
    Tensor c = Tensor::empty({1, 1, 8704, 4096});
    CHECK(host_memory_stats().cached_bytes == 192 * mib);
  }
  {
    // 160 MiB: the 192 MiB block is within 1/4 and serves it; 144 MiB is too small.
    Tensor d = Tensor::empty({1, 1, 5120, 8192});
    const HostMemoryStats stats = host_memory_stats();
    CHECK(stats.cached_bytes == 144 * mib);
    CHECK(stats.in_use_bytes >= 192 * mib);
  }
  CHECK(host_memory_stats().cached_bytes == 336 * mib);  // back under its own size
  host_empty_cache();
}
