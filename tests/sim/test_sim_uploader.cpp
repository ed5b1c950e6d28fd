// BatchUploader: batches reach the CUDA device intact through the page-locked staging slots,
// slots are reused in turn, and a larger batch after smaller ones grows them (in the simulator
// in CI, on a real device in deblur_gpu_tests, where the copies are really asynchronous).
#include <catch2/catch.hpp>
#include <vector>

#include "tests/testing.h"
#include "train/uploader.h"

namespace deblur::train {
namespace {

using testing::random_tensor;

Batch make_batch(int64_t n, int64_t side, uint64_t seed) {
  return {0, static_cast<int64_t>(seed), random_tensor({n, 3, side, side}, seed),
          random_tensor({n, 3, side, side}, seed + 1000)};
}

TEST_CASE("BatchUploader delivers every batch to cuda intact, slots reused in turn",
          "[sim][uploader]") {
  BatchUploader uploader(Device::CUDA);
  // Sizes: the first fixes the slots, smaller ones fit, a larger one regrows them.
  const int64_t sizes[] = {2, 2, 1, 2, 3, 1};
  std::vector<Batch> sent;
  std::vector<DeviceBatch> received;
  for (size_t k = 0; k < std::size(sizes); ++k) {
    sent.push_back(make_batch(sizes[k], 8, 10 + k));
    received.push_back(uploader.upload(sent.back()));
  }
  // All of them still hold their own values: the slots did not overwrite a copy in flight.
  for (size_t k = 0; k < sent.size(); ++k) {
    INFO("batch " << k);
    REQUIRE(received[k].blur.device() == Device::CUDA);
    CHECK(received[k].blur.shape() == sent[k].blur.shape());
    CHECK(received[k].blur.to_vector() == sent[k].blur.to_vector());
    CHECK(received[k].sharp.to_vector() == sent[k].sharp.to_vector());
  }
}

TEST_CASE("BatchUploader on the cpu hands the batch over as it is", "[sim][uploader]") {
  BatchUploader uploader(Device::CPU);
  const Batch batch = make_batch(2, 4, 3);
  const DeviceBatch out = uploader.upload(batch);
  CHECK(out.blur.data() == batch.blur.data());
  CHECK(out.sharp.data() == batch.sharp.data());
}

}  // namespace
}  // namespace deblur::train
