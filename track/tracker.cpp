// The background sync of a training run to MLflow, with backoff (track/tracker.h).
#include "track/tracker.h"

#include <algorithm>
#include <chrono>

namespace deblur::track {

namespace {
using Clock = std::chrono::steady_clock;
using Seconds = std::chrono::duration<double>;
// While finishing, a dead server is tried this often at most, so a server back within the wait
// is not missed by a long backoff.
constexpr double kFinishBackoffCap = 5.0;
}  // namespace

Tracker::Tracker(TrackerOptions options, std::string run_dir, Log log)
    : options_(std::move(options)),
      run_dir_(std::move(run_dir)),
      log_(std::move(log)),
      client_(options_.tracking_uri, options_.timeouts),
      sync_(client_, run_dir_, options_.sync) {
  thread_ = std::thread([this] { loop(); });
}

Tracker::~Tracker() {
  try {
    finish();
  } catch (...) {  // a destructor must not throw; finish() only logs
  }
}

void Tracker::notify() {
  std::lock_guard<std::mutex> lock(mutex_);
  pending_ = true;
  wake_.notify_all();
}

void Tracker::loop() {
  double backoff = 1.0;
  bool failing = false;  // the user has been told that the server is not answering
  bool final_tried = false;
  Clock::time_point next_try = Clock::now();
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    wake_.wait(lock, [&] { return give_up_ || pending_ || finishing_; });
    // Backoff after a failure; the request to finish cuts it short once.
    wake_.wait_until(lock, next_try, [&] { return give_up_ || (finishing_ && !final_tried); });
    if (give_up_) break;
    const bool final_pass = finishing_;
    final_tried = final_tried || final_pass;
    pending_ = false;
    lock.unlock();
    std::string error;
    bool retryable = true;
    try {
      sync_.sync([this] {
        std::lock_guard<std::mutex> guard(mutex_);
        return give_up_;
      });
    } catch (const MlflowError& e) {
      error = e.what();
      retryable = e.retryable();
    } catch (const std::exception& e) {  // the run folder itself: a retry reads it again
      error = e.what();
    }
    lock.lock();
    if (error.empty()) {
      backoff = 1.0;
      if (failing) {
        failing = false;
        log_("MLflow: " + client_.uri() + " answers again; the run is caught up");
      }
      if (final_pass) {
        complete_ = sync_.complete();
        break;
      }
      continue;
    }
    last_error_ = error;
    if (!retryable) {
      refused_ = true;
      log_("warning: MLflow refused a request, so this run is no longer tracked (training goes "
           "on; the run folder keeps everything; once the cause is fixed, `deblur runs push " +
           run_dir_ + " --tracking_uri " + client_.uri() + "` sends it): " + error);
      break;
    }
    if (!failing) {
      failing = true;
      log_("warning: MLflow at " + client_.uri() + " is not answering (" + error + "); training "
           "goes on, the run folder keeps everything, and what is missing is sent when the "
           "server answers again");
    }
    pending_ = true;
    next_try = Clock::now() + std::chrono::duration_cast<Clock::duration>(Seconds(backoff));
    backoff = std::min(backoff * 2.0, finishing_ ? std::min(options_.max_backoff_s, kFinishBackoffCap)
                                                 : options_.max_backoff_s);
  }
  done_ = true;
  wake_.notify_all();
}

bool Tracker::finish() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!thread_.joinable()) return complete_;
  finishing_ = true;
  wake_.notify_all();
  if (!wake_.wait_for(lock, Seconds(options_.finish_wait_s), [&] { return done_; })) {
    give_up_ = true;
    wake_.notify_all();
  }
  lock.unlock();
  thread_.join();  // a request in flight ends within its timeouts
  if (complete_)
    log_("MLflow: " + sync_.describe());
  else if (!refused_)
    log_("warning: MLflow at " + client_.uri() + " did not get the whole run within " +
         std::to_string(int(options_.finish_wait_s)) + " s (" +
         (last_error_.empty() ? "still sending" : last_error_) +
         "); the run folder has everything, and `deblur runs push " + run_dir_ +
         " --tracking_uri " + client_.uri() + "` sends the rest");
  return complete_;
}

}  // namespace deblur::track
