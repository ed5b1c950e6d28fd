// BatchLoader: the epoch order, per-sample seeds and the prefetching workers (train/loader.h).
#include "train/loader.h"

#include <algorithm>
#include <numeric>

#include "engine/check.h"
#include "infer/image_io.h"

namespace deblur::train {

BatchLoader::BatchLoader(Dataset data, LoaderOptions options)
    : data_(std::move(data)), options_(std::move(options)) {
  DEBLUR_CHECK(options_.batch_size > 0, "--batch_size must be positive, got ",
               options_.batch_size);
  DEBLUR_CHECK(options_.patch > 0, "--patch_size must be positive, got ", options_.patch);
  DEBLUR_CHECK(options_.workers >= 0, "--workers must be 0 or more, got ", options_.workers);
  DEBLUR_CHECK(!data_.pairs.empty(), data_.root, ": no training pairs");
  DEBLUR_CHECK(data_.layout != "sharp" || options_.synthesize,
               data_.root, ": a sharp-only dataset needs a blur synthesiser");
  if (options_.prefetch <= 0) options_.prefetch = 2 * std::max(1, options_.workers);
  for (int i = 0; i < options_.workers; ++i) workers_.emplace_back([this] { worker_loop(); });
}

BatchLoader::~BatchLoader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

int64_t BatchLoader::batches_per_epoch() const {
  return (samples() + options_.batch_size - 1) / options_.batch_size;
}

void BatchLoader::start_epoch(int64_t epoch, int64_t first) {
  DEBLUR_CHECK(epoch >= 0 && first >= 0 && first <= batches_per_epoch(), "epoch ", epoch,
               " cannot start at batch ", first, " of ", batches_per_epoch());
  std::unique_lock<std::mutex> lock(mutex_);
  next_claim_ = end_;  // no new work for the old epoch; let the batches in flight finish
  changed_.wait(lock, [&] { return in_flight_ == 0; });
  ready_.clear();
  error_ = nullptr;
  // Fisher-Yates from the epoch's seed.
  order_.resize(data_.pairs.size());
  std::iota(order_.begin(), order_.end(), int64_t{0});
  const uint64_t epoch_seed = mix_seed(options_.seed, static_cast<uint64_t>(epoch));
  for (size_t i = order_.size(); i > 1; --i) {
    const uint64_t j = mix_seed(epoch_seed ^ 0x5bd1e995ull, i) % i;
    std::swap(order_[i - 1], order_[j]);
  }
  epoch_ = epoch;
  end_ = batches_per_epoch();
  next_claim_ = next_return_ = first;
  lock.unlock();
  changed_.notify_all();
}

Batch BatchLoader::make_batch(int64_t epoch, int64_t index,
                              const std::vector<int64_t>& order) const {
  const int64_t begin = index * options_.batch_size;
  const int64_t count = std::min(options_.batch_size, samples() - begin);
  const int64_t p = options_.patch, sample_size = 3 * p * p;
  Batch batch{epoch, index, Tensor::empty({count, 3, p, p}), Tensor::empty({count, 3, p, p})};
  const uint64_t epoch_seed = mix_seed(options_.seed, static_cast<uint64_t>(epoch));
  for (int64_t k = 0; k < count; ++k) {
    const ImagePair& pair = data_.pairs[static_cast<size_t>(order[begin + k])];
    const uint64_t seed = mix_seed(epoch_seed, static_cast<uint64_t>(begin + k));
    const PatchSpec spec = draw_patch(pair.width, pair.height, p, seed);
    float* sharp = batch.sharp.data() + k * sample_size;
    float* blur = batch.blur.data() + k * sample_size;
    // Decode, cut the patch at once and let the whole image go: only patches stay in memory.
    auto cut = [&](const std::string& path, float* dst) {
      try {
        extract_patch(read_image(path), spec, p, dst);
      } catch (const Error& e) {  // e.g. the file changed since the start-up check
        throw Error(detail::concat(path, ": ", e.what()));
      }
    };
    cut(pair.sharp, sharp);
    if (pair.blur.empty())
      options_.synthesize(sharp, blur, p, mix_seed(seed, 3));
    else
      cut(pair.blur, blur);
  }
  return batch;
}

void BatchLoader::worker_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    changed_.wait(lock, [&] {
      return stopping_ || (next_claim_ < end_ && next_claim_ < next_return_ + options_.prefetch);
    });
    if (stopping_) return;
    const int64_t index = next_claim_++;
    const int64_t epoch = epoch_;
    ++in_flight_;
    lock.unlock();
    Batch batch;
    std::exception_ptr error;
    try {
      batch = make_batch(epoch, index, order_);  // order_ stays put while anything is in flight
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    --in_flight_;
    if (error) {
      if (!error_) error_ = error;
    } else if (epoch == epoch_) {
      ready_.emplace(index, std::move(batch));
    }
    changed_.notify_all();
  }
}

bool BatchLoader::next(Batch& out) {
  std::unique_lock<std::mutex> lock(mutex_);
  DEBLUR_CHECK(epoch_ >= 0, "BatchLoader::next before start_epoch");
  if (next_return_ >= end_) return false;
  const int64_t index = next_return_;
  if (workers_.empty()) {
    out = make_batch(epoch_, index, order_);
  } else {
    changed_.wait(lock, [&] { return error_ || ready_.count(index) > 0; });
    if (error_) std::rethrow_exception(error_);
    out = std::move(ready_.at(index));
    ready_.erase(index);
  }
  ++next_return_;
  lock.unlock();
  changed_.notify_all();  // a prefetch slot is free
  return true;
}

}  // namespace deblur::train
