// deblur runs: the local training runs under a folder (their run.json), oldest first; and
// deblur runs push, a run folder sent to an MLflow tracking server.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "engine/check.h"
#include "infer/cli/args.h"
#include "infer/cli/commands.h"
#include "track/run_sync.h"
#include "train/run_record.h"

namespace deblur::cli {

namespace {

int run_push(int argc, char** argv) {
  const bool help = argc <= 3 || std::string(argv[3]) == "--help";
  if (help) {
    std::printf(
        "usage: deblur runs push RUN_DIR [--tracking_uri URI] [--experiment_name NAME]\n"
        "                        [--run_name NAME] [--registered_model_name NAME] [--wait 60]\n\n"
        "Sends a training run folder (deblur train --run_dir) to an MLflow tracking server:\n"
        "whatever the server does not have yet, as RUN_DIR/mlflow.json records (a run trained\n"
        "without tracking, or one whose server was down, is sent whole or finished off): params,\n"
        "every epoch's metrics, metrics.csv, metrics.png, the best checkpoint, the model folder\n"
        "with its signature, the end status and, for a finished run with a registered model\n"
        "name (given here or when it was tracked), a new model version. The URI defaults to\n"
        "$MLFLOW_TRACKING_URI; a server that does not answer is retried for --wait seconds.\n");
    return help && argc > 3 ? 0 : 2;
  }
  const std::string run_dir = argv[3];
  Args args(argc, argv, 4, {});
  args.allow_only({"tracking_uri", "experiment_name", "run_name", "registered_model_name", "wait"});
  const std::string uri = args.get("tracking_uri", env_or("MLFLOW_TRACKING_URI", ""));
  DEBLUR_CHECK(!uri.empty(), "deblur runs push: no tracking server (--tracking_uri or "
               "MLFLOW_TRACKING_URI)");
  const std::string wait_text = args.get("wait", "60");
  char* end = nullptr;
  const double wait_s = std::strtod(wait_text.c_str(), &end);
  DEBLUR_CHECK(end != wait_text.c_str() && *end == '\0' && wait_s >= 0,
               "--wait needs a number of seconds, got '", wait_text, "'");
  track::SyncOptions options;
  options.experiment_name = args.get("experiment_name", env_or("MLFLOW_EXPERIMENT_NAME", ""));
  options.run_name = args.get("run_name", "");
  options.registered_model_name = args.get("registered_model_name", "");
  track::MlflowClient client(uri);
  track::RunSync sync(client, run_dir, options);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(wait_s);
  for (double backoff = 1.0;; backoff = std::min(backoff * 2.0, 10.0)) {
    try {
      sync.sync();
      break;
    } catch (const track::MlflowError& e) {
      if (!e.retryable() || std::chrono::steady_clock::now() + std::chrono::duration<double>(
                                                                   backoff) > deadline)
        throw Error(std::string("deblur runs push ") + run_dir + ": " + e.what() +
                    " (what was sent is kept in " + run_dir + "/mlflow.json; run it again to "
                    "send the rest)");
      std::fprintf(stderr, "deblur runs push: %s; trying again in %.0f s\n", e.what(), backoff);
      std::this_thread::sleep_for(std::chrono::duration<double>(backoff));
    }
  }
  for (const std::string& note : sync.notes())
    std::fprintf(stderr, "deblur runs push: warning: %s\n", note.c_str());
  std::printf("%s: %s%s\n", run_dir.c_str(), sync.describe().c_str(),
              sync.complete() ? "" : " (run.json says RUNNING: sent what is there, not an end)");
  return 0;
}

}  // namespace

int run_runs(int argc, char** argv) {
  if (argc > 2 && std::string(argv[2]) == "push") return run_push(argc, argv);
  // The folder as the first argument (deblur runs DIR) or as --dir.
  const bool positional = argc > 2 && std::string(argv[2]).rfind("--", 0) != 0;
  Args args(argc, argv, positional ? 3 : 2, {"help"});
  if (args.has("help")) {
    std::printf(
        "usage: deblur runs [DIR]   (or --dir DIR; default runs)\n"
        "       deblur runs push RUN_DIR [--tracking_uri URI] ... (deblur runs push --help)\n\n"
        "Lists the training runs in the folder's subfolders (each a deblur train --run_dir with\n"
        "its run.json), oldest first: name, status (RUNNING, FINISHED, KILLED by Ctrl-C, FAILED),\n"
        "start time, device, finished epochs and steps, and the best validation PSNR/SSIM with\n"
        "the epoch and checkpoint that scored them.\n");
    return 0;
  }
  args.allow_only({"help", "dir"});
  DEBLUR_CHECK(!(positional && args.has("dir")), "give the folder once: DIR or --dir DIR");
  const std::string dir = positional ? argv[2] : args.get("dir", "runs");
  std::vector<std::string> skipped;
  const std::vector<train::RunInfo> runs = train::list_runs(dir, &skipped);
  for (const std::string& line : skipped) std::fprintf(stderr, "deblur runs: %s (skipped)\n", line.c_str());
  if (runs.empty()) {
    std::printf("no runs in %s\n", dir.c_str());
    return 0;
  }
  std::printf("%-20s %-9s %-20s %-6s %6s %8s %9s %7s %5s  %s\n", "name", "status", "started",
              "device", "epochs", "steps", "PSNR", "SSIM", "best", "checkpoint");
  for (const train::RunInfo& r : runs) {
    if (r.best_epoch > 0)
      std::printf("%-20s %-9s %-20s %-6s %6lld %8lld %9.2f %7.4f %5lld  %s\n", r.name.c_str(),
                  r.status.c_str(), r.start_time.c_str(), r.device.c_str(),
                  static_cast<long long>(r.epochs), static_cast<long long>(r.steps), r.best_psnr,
                  r.best_ssim, static_cast<long long>(r.best_epoch), r.best_checkpoint.c_str());
    else
      std::printf("%-20s %-9s %-20s %-6s %6lld %8lld %9s %7s %5s  %s\n", r.name.c_str(),
                  r.status.c_str(), r.start_time.c_str(), r.device.c_str(),
                  static_cast<long long>(r.epochs), static_cast<long long>(r.steps), "-", "-", "-",
                  "(no epoch finished)");
  }
  return 0;
}

}  // namespace deblur::cli
