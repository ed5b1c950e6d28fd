// deblur runs: the local training runs under a folder (their run.json), oldest first.
#include <cstdio>
#include <string>
#include <vector>

#include "engine/check.h"
#include "infer/cli/args.h"
#include "infer/cli/commands.h"
#include "train/run_record.h"

namespace deblur::cli {

int run_runs(int argc, char** argv) {
  Args args(argc, argv, 2, {"help"});
  if (args.has("help")) {
    std::printf(
        "usage: deblur runs [--dir runs]\n\n"
        "Lists the training runs in the folder's subfolders (each a deblur train --run_dir with\n"
        "its run.json), oldest first: name, status (RUNNING, FINISHED, KILLED by Ctrl-C, FAILED),\n"
        "start time, device, finished epochs and steps, and the best validation PSNR/SSIM with\n"
        "the epoch and checkpoint that scored them.\n");
    return 0;
  }
  args.allow_only({"help", "dir"});
  std::vector<std::string> skipped;
  const std::vector<train::RunInfo> runs = train::list_runs(args.get("dir", "runs"), &skipped);
  for (const std::string& line : skipped) std::fprintf(stderr, "deblur runs: %s (skipped)\n", line.c_str());
  if (runs.empty()) {
    std::printf("no runs in %s\n", args.get("dir", "runs").c_str());
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
