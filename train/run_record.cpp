// run.json (train/run_record.h).
#include "train/run_record.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "engine/check.h"
#include "engine/file_io.h"

namespace deblur::train {

namespace fs = std::filesystem;

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

int64_t unix_time_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void write_run_info(const std::string& path, const RunInfo& r) {
  nlohmann::ordered_json j;
  j["name"] = r.name;
  j["status"] = r.status;
  j["start_time"] = r.start_time;
  j["end_time"] = r.end_time;
  j["device"] = r.device;
  j["host"] = r.host;
  j["git_commit"] = r.git_commit;
  j["epochs"] = r.epochs;
  j["steps"] = r.steps;
  j["best_epoch"] = r.best_epoch;
  j["best_psnr"] = r.best_psnr;
  j["best_ssim"] = r.best_ssim;
  j["best_checkpoint"] = r.best_checkpoint;
  const std::string text = j.dump(2) + "\n";
  write_file_atomically(path, reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

RunInfo read_run_info(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file(path);
  const nlohmann::json j = nlohmann::json::parse(bytes.begin(), bytes.end(), nullptr, false);
  DEBLUR_CHECK(j.is_object() && j.contains("status") && j.contains("name"), path,
               ": not a deblur run.json (no JSON object with a name and a status)");
  RunInfo r;
  try {
    r.name = j.at("name").get<std::string>();
    r.status = j.at("status").get<std::string>();
    r.start_time = j.value("start_time", "");
    r.end_time = j.value("end_time", "");
    r.device = j.value("device", "");
    r.host = j.value("host", "");
    r.git_commit = j.value("git_commit", "");
    r.epochs = j.value("epochs", int64_t{0});
    r.steps = j.value("steps", int64_t{0});
    r.best_epoch = j.value("best_epoch", int64_t{0});
    r.best_psnr = j.value("best_psnr", 0.0);
    r.best_ssim = j.value("best_ssim", 0.0);
    r.best_checkpoint = j.value("best_checkpoint", "");
  } catch (const nlohmann::json::exception& e) {
    throw Error(detail::concat(path, ": a field has the wrong type (", e.what(), ")"));
  }
  return r;
}

std::vector<RunInfo> list_runs(const std::string& dir, std::vector<std::string>* skipped) {
  std::vector<RunInfo> runs;
  std::error_code ec;
  DEBLUR_CHECK(fs::is_directory(dir, ec), dir, ": no such folder (runs are in --run_dir, "
               "runs/<name> by default)");
  for (const auto& entry : fs::directory_iterator(dir)) {
    const fs::path file = entry.path() / "run.json";
    if (!fs::exists(file)) continue;
    try {
      runs.push_back(read_run_info(file.string()));
    } catch (const Error& e) {
      if (skipped) skipped->push_back(e.what());
    }
  }
  std::sort(runs.begin(), runs.end(),
            [](const RunInfo& a, const RunInfo& b) { return a.start_time < b.start_time; });
  return runs;
}

}  // namespace deblur::train
