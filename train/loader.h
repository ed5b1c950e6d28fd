// Batches of training samples (train/dataset.h), decoded by worker threads ahead of the trainer.
//
// An epoch visits every pair once in an order shuffled from (seed, epoch); batch b holds the
// pairs at positions [b * batch_size, (b + 1) * batch_size) of that order (the last batch may be
// smaller, as PyTorch's DataLoader without drop_last). Sample k of the epoch uses the seed
// mix_seed(mix_seed(seed, epoch), k) for its patch, flip and turns (and for its synthetic blur),
// so batches are the same whatever the number of workers, and an epoch restarted at batch b (a
// resumed run) continues exactly where it left off.
//
// Workers decode up to `prefetch` batches ahead of the one the trainer is using; batches are
// handed out in order. A worker's error (an image that became unreadable after the start-up
// check) is rethrown by next() with the file's name.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/tensor.h"
#include "train/dataset.h"

namespace deblur::train {

struct Batch {
  int64_t epoch = 0, index = 0;
  Tensor blur, sharp;  // CPU tensors [n, 3, patch, patch] in [-1, 1]
};

// Makes a blurry patch from a sharp one, both [3, patch, patch]; deterministic in `seed`.
using SynthesizeBlur =
    std::function<void(const float* sharp, float* blur, int64_t patch, uint64_t seed)>;

struct LoaderOptions {
  int64_t batch_size = 24;
  int64_t patch = 256;
  int workers = 4;        // 0: decode on the caller's thread, inside next()
  int64_t prefetch = 0;   // batches decoded ahead; 0: 2 per worker
  uint64_t seed = 0;
  SynthesizeBlur synthesize;  // required for sharp-only datasets, unused otherwise
};

class BatchLoader {
 public:
  BatchLoader(Dataset data, LoaderOptions options);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  int64_t batches_per_epoch() const;
  int64_t samples() const { return static_cast<int64_t>(data_.pairs.size()); }

  // Starts an epoch at batch `first` (0 for a fresh epoch), dropping any batches still queued.
  void start_epoch(int64_t epoch, int64_t first = 0);
  // The epoch's next batch, in order; false once the epoch is done.
  bool next(Batch& out);

 private:
  Batch make_batch(int64_t epoch, int64_t index, const std::vector<int64_t>& order) const;
  void worker_loop();

  Dataset data_;
  LoaderOptions options_;

  std::mutex mutex_;
  std::condition_variable changed_;
  bool stopping_ = false;
  int64_t epoch_ = -1;
  std::vector<int64_t> order_;  // the epoch's shuffled pair indices
  int64_t next_claim_ = 0;      // the next batch a worker may start
  int64_t next_return_ = 0;     // the next batch next() hands out
  int64_t end_ = 0;             // batches in the epoch
  int in_flight_ = 0;           // batches being decoded right now
  std::map<int64_t, Batch> ready_;
  std::exception_ptr error_;
  std::vector<std::thread> workers_;
};

}  // namespace deblur::train
