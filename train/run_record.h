// The run folder's run.json: what a training run is and how it stands, written atomically when
// the run starts (RUNNING), after every epoch, and when it ends (FINISHED, KILLED on Ctrl-C,
// FAILED on an error), the way MLflow records a run's status. `deblur runs` lists them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace deblur::train {

struct RunInfo {
  std::string name;       // --registered_model_name
  std::string status;     // RUNNING, FINISHED, KILLED, FAILED
  std::string start_time, end_time;  // UTC, ISO 8601; end_time empty while running
  std::string device, host, git_commit;
  int64_t epochs = 0, steps = 0;     // finished epochs, optimizer steps
  int64_t best_epoch = 0;            // 0: no epoch finished
  double best_psnr = 0.0, best_ssim = 0.0;
  std::string best_checkpoint;
};

// The current UTC time as 2026-11-25T18:40:00Z.
std::string utc_now();
// Wall-clock milliseconds since 1970 (metrics.csv's timestamp_ms, MLflow's timestamps).
int64_t unix_time_ms();

void write_run_info(const std::string& path, const RunInfo& info);
// Throws deblur::Error naming the file when it cannot be read or is not a run.json.
RunInfo read_run_info(const std::string& path);

// Every <dir>/<run>/run.json, oldest first; unreadable ones are skipped with a line in `skipped`.
std::vector<RunInfo> list_runs(const std::string& dir, std::vector<std::string>* skipped);

}  // namespace deblur::train
