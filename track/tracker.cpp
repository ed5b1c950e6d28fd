// The background sync of a training run to MLflow, with backoff (track/tracker.h).
#include "track/tracker.h"

#include <algorithm>
#include <chrono>
#include <set>
#include <vector>

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
  std::set<std::string> noted;
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
    lock.unlock();  // the sync and the messages run unlocked: notify() never waits on them
    std::string server_error, local_error;
    bool retryable = true;
    try {
      sync_.sync();
    } catch (const MlflowError& e) {
      server_error = e.what();
      retryable = e.retryable();
    } catch (const std::exception& e) {  // the run folder or the disk, not the server
      local_error = e.what();
    }
    std::vector<std::string> messages;
    if (server_error.empty() && local_error.empty()) {
      backoff = 1.0;
      if (failing) messages.push_back("MLflow: " + client_.uri() + " answers again; the run is caught up");
      failing = false;
      for (const std::string& note : sync_.notes())
        if (noted.insert(note).second) messages.push_back("warning: MLflow: " + note);
    }
    const std::string push_hint = "`deblur runs push " + run_dir_ + " --tracking_uri " +
                                  client_.uri() + "`";
    const bool stop = !local_error.empty() || !retryable;
    if (!local_error.empty())
      messages.push_back("warning: MLflow tracking stopped for this run, by an error here, not "
                         "on the server (training goes on; once it is fixed, " + push_hint +
                         " sends the run): " + local_error);
    else if (!retryable)
      messages.push_back("warning: MLflow refused a request, so this run is no longer tracked "
                         "(training goes on; the run folder keeps everything; once the cause is "
                         "fixed, " + push_hint + " sends it): " + server_error);
    else if (!server_error.empty() && !failing) {
      failing = true;
      messages.push_back("warning: MLflow at " + client_.uri() + " is not answering (" +
                         server_error + "); training goes on, the run folder keeps everything, "
                         "and what is missing is sent when the server answers again");
    }
    for (const std::string& message : messages) log_(message);
    lock.lock();
    if (!server_error.empty() || !local_error.empty()) last_error_ = server_error + local_error;
    if (stop) {
      refused_ = true;
      break;
    }
    if (server_error.empty()) {
      if (final_pass) {
        complete_ = sync_.complete();
        break;
      }
      continue;
    }
    pending_ = true;
    if (finishing_) backoff = std::min(backoff, kFinishBackoffCap);
    next_try = Clock::now() + std::chrono::duration_cast<Clock::duration>(Seconds(backoff));
    backoff = std::min(backoff * 2.0, finishing_ ? kFinishBackoffCap : options_.max_backoff_s);
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
    client_.cancel();  // a request in flight (an upload to a server that drips) ends now
  }
  lock.unlock();
  thread_.join();
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
