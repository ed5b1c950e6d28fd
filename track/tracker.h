// The experiment tracker of `deblur train --tracking_uri`: a background thread that keeps an
// MLflow server up to date with the run folder (track/run_sync.h) while training goes on.
//
// Training never waits for the server and never stops because of it. The trainer calls
// notify() when the folder has something new (the run started, an epoch ended); the thread
// syncs. A failed call is retried with exponential backoff (1 s doubling to max_backoff_s), and
// each retry sends everything still missing, so what a dead server missed arrives when it comes
// back. The user is told once when the server stops answering, and once when it is caught up
// (so once per outage). An error the server gives for the request itself (no permission, a
// deleted experiment), or one here (a full disk, a broken run folder), stops tracking for this
// run with one message: retrying would not help. finish() waits up to
// finish_wait_s for the run's end to be sent, then says what is left and that
// `deblur runs push RUN_DIR` sends it.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "track/mlflow_client.h"
#include "track/run_sync.h"

namespace deblur::track {

struct TrackerOptions {
  std::string tracking_uri;
  SyncOptions sync;
  HttpTimeouts timeouts;
  double max_backoff_s = 30.0;
  double finish_wait_s = 120.0;
};

class Tracker {
 public:
  using Log = std::function<void(const std::string& line)>;
  // Nothing is sent before the first notify().
  Tracker(TrackerOptions options, std::string run_dir, Log log);
  ~Tracker();  // finish() if it was not called
  Tracker(const Tracker&) = delete;
  Tracker& operator=(const Tracker&) = delete;

  void notify();
  // Sends the run's end (run.json must say it ended), waiting at most finish_wait_s (then the
  // request in flight is cancelled). Returns whether the server has the whole run.
  bool finish();

 private:
  void loop();

  TrackerOptions options_;
  std::string run_dir_;
  Log log_;
  MlflowClient client_;
  RunSync sync_;

  std::mutex mutex_;
  std::condition_variable wake_;
  bool pending_ = false, finishing_ = false, give_up_ = false, done_ = false;
  bool complete_ = false, refused_ = false;
  std::string last_error_;
  std::thread thread_;
};

}  // namespace deblur::track
