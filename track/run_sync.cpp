// A run folder sent to MLflow step by step, with mlflow.json as the ledger (track/run_sync.h).
#include "track/run_sync.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iomanip>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "engine/check.h"
#include "engine/file_io.h"
#include "engine/safetensors.h"
#include "layers/deblur_unet.h"
#include "train/run_record.h"

namespace deblur::track {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kLedger = "mlflow.json";
constexpr const char* kModelDir = "deblur_model";  // the seed's artifact_path
constexpr const char* kModelKey = "registered_model_name";

// metrics.csv column -> MLflow metric name (the seed's names where it has one).
const std::pair<const char*, const char*> kMetricColumns[] = {
    {"train_loss", "train_loss"}, {"val_loss", "val_loss"},
    {"val_psnr", "psnr"},         {"val_ssim", "ssim"},
    {"lr", "lr"},                 {"grad_norm", "grad_norm"},
    {"loss_fallbacks", "msssim_fallbacks"},
    {"images_per_s", "images_per_s"},
    {"seconds", "epoch_seconds"}, {"input_psnr", "input_psnr"},
    {"input_ssim", "input_ssim"},
};

// run.json's "2026-11-25T18:40:00Z" as milliseconds since 1970; 0 when empty or unreadable.
int64_t iso_to_ms(const std::string& text) {
  std::tm t{};
  std::istringstream in(text);
  in >> std::get_time(&t, "%Y-%m-%dT%H:%M:%SZ");
  if (in.fail()) return 0;
  return int64_t(timegm(&t)) * 1000;
}

std::string random_hex(int bytes) {
  std::random_device device;
  std::string out;
  static const char* hex = "0123456789abcdef";
  for (int i = 0; i < bytes; ++i) {
    const unsigned v = device() & 255u;
    out += hex[v >> 4];
    out += hex[v & 15];
  }
  return out;
}

// Size and modification time: what changes when the trainer rewrites a file.
std::string file_signature(const std::string& path) {
  struct stat s {};
  if (stat(path.c_str(), &s) != 0) return "";
  return detail::concat(s.st_size, ":", s.st_mtim.tv_sec, ".", s.st_mtim.tv_nsec);
}

json read_json_file(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file(path);
  json j = json::parse(bytes.begin(), bytes.end(), nullptr, false);
  DEBLUR_CHECK(!j.is_discarded() && j.is_object(), path, ": not a JSON object");
  return j;
}

void write_json_file(const std::string& path, const json& j) {
  const std::string text = j.dump(2) + "\n";
  write_file_atomically(path, reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

// metrics.csv's rows as column -> cell, empty cells left out.
std::vector<std::map<std::string, std::string>> read_metrics_csv(const std::string& path) {
  std::vector<std::map<std::string, std::string>> rows;
  std::ifstream in(path);
  if (!in) return rows;  // no epoch finished yet
  auto split = [](const std::string& line) {
    std::vector<std::string> cells;
    std::stringstream s(line);
    for (std::string cell; std::getline(s, cell, ',');) cells.push_back(cell);
    return cells;
  };
  std::string line;
  if (!std::getline(in, line)) return rows;
  const std::vector<std::string> header = split(line);
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const std::vector<std::string> cells = split(line);
    DEBLUR_CHECK(cells.size() <= header.size(), path, ": a row has ", cells.size(),
                 " cells where the header has ", header.size());
    // A row written before a column existed (a run resumed across versions) lacks its cells.
    std::map<std::string, std::string> row;
    for (size_t i = 0; i < cells.size(); ++i)
      if (!cells[i].empty()) row[header[i]] = cells[i];
    rows.push_back(std::move(row));
  }
  return rows;
}

double cell_number(const std::map<std::string, std::string>& row, const std::string& column,
                   const std::string& path) {
  const std::string& text = row.at(column);
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  DEBLUR_CHECK(end != text.c_str() && *end == '\0', path, ": '", column, "' is not a number: '",
               text, "'");
  return value;
}

// A param's text: strings as they are, everything else as JSON.
std::string param_text(const json& value) {
  return value.is_string() ? value.get<std::string>() : value.dump();
}

// The folder's absolute path without a trailing separator ("runs/r1/" -> /.../runs/r1).
fs::path folder_path(const std::string& dir) {
  fs::path path = fs::absolute(dir).lexically_normal();
  if (path.filename().empty()) path = path.parent_path();
  return path;
}

// An exclusive lock on a file for the object's life (flock: released if the process dies).
class LedgerLock {
 public:
  explicit LedgerLock(const std::string& path) : fd_(open(path.c_str(), O_RDWR | O_CREAT, 0644)) {
    DEBLUR_CHECK(fd_ >= 0, path, ": cannot open (", std::strerror(errno), ")");
    while (flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
    }
  }
  ~LedgerLock() { close(fd_); }
  LedgerLock(const LedgerLock&) = delete;
  LedgerLock& operator=(const LedgerLock&) = delete;

 private:
  int fd_;
};

// run.json's best checkpoint as written by the trainer (relative to where it ran), else next to
// the run folder's parent (a run folder and its checkpoints moved together).
std::string find_checkpoint(const std::string& recorded, const std::string& run_dir) {
  if (recorded.empty()) return "";
  if (fs::exists(recorded)) return recorded;
  const fs::path beside = folder_path(run_dir).parent_path().parent_path() / recorded;
  if (fs::exists(beside)) return beside.string();
  return "";
}

std::string model_signature_yaml() {
  // The seed's infer_signature: float32 tensors [batch, 3, H, W]; ours leaves H and W free (the
  // network is fully convolutional; deblur infer tiles any size).
  const std::string spec =
      R"('[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 3, -1, -1]}}]')";
  return "signature:\n  inputs: " + spec + "\n  outputs: " + spec + "\n  params: null\n";
}

// deblur_model/ in the run folder: model.safetensors (the best checkpoint's weights, F32) and
// MLmodel (MLflow's model description: a "deblur" flavor and the signature). Rewritten only
// when the best checkpoint changes.
void write_model_dir(const std::string& run_dir, const std::string& checkpoint) {
  const fs::path dir = fs::path(run_dir) / kModelDir;
  const fs::path weights = dir / "model.safetensors";
  const std::string source = fs::path(checkpoint).filename().string();
  if (fs::exists(weights) && fs::exists(dir / "MLmodel")) {
    const SafetensorsFile existing = read_safetensors(weights.string());
    const auto it = existing.metadata.find("source");
    const std::vector<uint8_t> mlmodel = read_file((dir / "MLmodel").string());
    const std::string line = "source_checkpoint: " + source + "\n";
    const bool mlmodel_current = std::search(mlmodel.begin(), mlmodel.end(), line.begin(),
                                             line.end()) != mlmodel.end();
    if (it != existing.metadata.end() && it->second == source && mlmodel_current) return;
  }
  fs::create_directories(dir);
  const SafetensorsFile file = read_safetensors(checkpoint);
  const std::unique_ptr<DeblurUNet> model = load_deblur_unet(file, checkpoint);
  std::map<std::string, std::string> metadata = {{"source", source}};
  for (const char* key : {"epoch", "step", "psnr", "ssim", "config", "git_commit"})
    if (const auto it = file.metadata.find(key); it != file.metadata.end()) metadata[key] = it->second;
  model->save_state(weights.string(), metadata, DType::F32);
  const int64_t base = file.find("enc1.conv1.weight")->shape[0];  // load_deblur_unet checked it

  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char created[40];
  std::strftime(created, sizeof created, "%Y-%m-%d %H:%M:%S.000000", &utc);
  const std::string text = detail::concat(
      "artifact_path: ", kModelDir, "\n",
      "flavors:\n",
      "  deblur:\n",
      "    architecture: DeblurUNet\n",
      "    base: ", base, "\n",
      "    data: model.safetensors\n",
      "    format: safetensors\n",
      "    input_range: '[-1, 1]'\n",
      "    parameters: ", model->parameter_count(), "\n",
      "    source_checkpoint: ", source, "\n",
      "model_size_bytes: ", fs::file_size(weights), "\n",
      "model_uuid: ", random_hex(16), "\n",
      model_signature_yaml(),
      "utc_time_created: '", created, "'\n");
  write_file_atomically((dir / "MLmodel").string(), reinterpret_cast<const uint8_t*>(text.data()),
                        text.size());
}

}  // namespace

RunSync::RunSync(MlflowClient& client, std::string run_dir, SyncOptions options)
    : client_(client), run_dir_(std::move(run_dir)), options_(std::move(options)) {
  DEBLUR_CHECK(fs::exists(fs::path(run_dir_) / "run.json"), run_dir_,
               ": not a training run folder (no run.json; deblur train --run_dir makes one)");
}

std::string RunSync::describe() const {
  if (run_id_.empty()) return "";
  return detail::concat("run ", run_id_, " in experiment '", options_.experiment_name, "' at ",
                        client_.uri(), " (", client_.uri(), "/#/experiments/", experiment_id_,
                        "/runs/", run_id_, ")");
}

void RunSync::sync() {
  complete_ = false;
  notes_.clear();
  try {
    send();
  } catch (const nlohmann::json::exception& e) {
    throw MlflowError(detail::concat(run_dir_, ": unexpected JSON in ", kLedger,
                                     " or in an answer from ", client_.uri(), ": ", e.what()),
                      false);
  }
}

void RunSync::send() {
  const std::string ledger_path = (fs::path(run_dir_) / kLedger).string();
  // One sync of a folder at a time (a push while the trainer tracks it): the ledger is
  // read, changed and written whole.
  const LedgerLock lock(ledger_path + ".lock");
  json ledger = fs::exists(ledger_path) ? read_json_file(ledger_path) : json::object();
  json& entry = ledger["servers"][client_.uri()];
  if (!entry.is_object()) entry = json::object();
  auto save = [&] { write_json_file(ledger_path, ledger); };

  // Options. A run that exists on this server keeps the experiment and name it was made with.
  // Otherwise: this call's; else what an earlier sync of the folder saved, for this server,
  // then for any (a run tracked to a server that never answered, pushed to another); else the
  // defaults. A model name can come later (a push registering a finished run).
  const bool run_exists = entry.contains("run_id");
  auto resolve = [&](std::string& value, const char* key, bool fixed_by_run,
                     const std::string& fallback) {
    if (value.empty() || fixed_by_run) value = entry.value(key, ledger.value(key, std::string()));
    if (value.empty()) value = fallback;
    entry[key] = value;
    if (!value.empty()) ledger[key] = value;
  };
  resolve(options_.experiment_name, "experiment_name", run_exists, "deblur");
  resolve(options_.run_name, "run_name", run_exists, folder_path(run_dir_).filename().string());
  resolve(options_.registered_model_name, kModelKey, false, "");
  save();  // before any call: a run the server never saw still knows what is owed

  const train::RunInfo info = train::read_run_info((fs::path(run_dir_) / "run.json").string());
  const std::string params_path = (fs::path(run_dir_) / "params.json").string();
  const json params = fs::exists(params_path) ? read_json_file(params_path) : json::object();

  // The run: created once; a creation whose answer was lost is found by its deblur.run_uid.
  if (!run_exists) {
    experiment_id_ = client_.experiment_id(options_.experiment_name);
    if (!entry.contains("run_uid")) {
      entry["run_uid"] = random_hex(16);
      save();
    }
    const std::string uid = entry.value("run_uid", "");
    std::vector<MlflowRun> found = client_.find_runs_by_tag(experiment_id_, "deblur.run_uid", uid);
    if (found.empty()) {
      char host[256] = {};
      gethostname(host, sizeof host - 1);
      const char* user = std::getenv("USER");
      Tags tags = {{"deblur.run_uid", uid},
                   {"deblur.run_dir", folder_path(run_dir_).string()},
                   {"git_commit", info.git_commit},
                   {"device", info.device},
                   {"host", info.host.empty() ? host : info.host},
                   {"mlflow.source.git.commit", info.git_commit},
                   {"mlflow.source.name", "deblur train"},
                   {"mlflow.source.type", "LOCAL"}};
      if (user) tags["mlflow.user"] = user;
      const int64_t start = iso_to_ms(info.start_time);
      found.push_back(client_.create_run(experiment_id_, options_.run_name,
                                         start > 0 ? start : train::unix_time_ms(), tags));
    }
    entry["experiment_id"] = experiment_id_;
    entry["run_id"] = found.front().run_id;
    entry["artifact_uri"] = found.front().artifact_uri;
    entry["status"] = "RUNNING";
    save();
  }
  run_id_ = entry.value("run_id", "");
  experiment_id_ = entry.value("experiment_id", "");
  const std::string artifact_uri = entry.value("artifact_uri", "");

  // Params not sent yet. MLflow refuses to change a param, so a value that changed since (a
  // resumed run's --resume) goes in as the tag deblur.changed.<name>.
  Tags new_params, changed;
  json& sent_params = entry["params"];
  if (!sent_params.is_object()) sent_params = json::object();
  json& sent_changes = entry["changed"];
  if (!sent_changes.is_object()) sent_changes = json::object();
  for (const auto& [key, value] : params.items()) {
    const std::string text = param_text(value);
    if (!sent_params.contains(key))
      new_params[key] = text;
    else if (sent_params[key] != text && sent_changes.value(key, "") != text)
      changed["deblur.changed." + key] = text;
  }
  if (!new_params.empty() || !changed.empty()) {
    client_.log_batch(run_id_, {}, new_params, changed);
    for (const auto& [key, value] : new_params) sent_params[key] = value;
    for (const auto& [tag, value] : changed)
      sent_changes[tag.substr(std::string("deblur.changed.").size())] = value;
    save();
  }

  // Each epoch's row, once per (epoch, timestamp): a run resumed from an earlier checkpoint
  // logs its repeated epochs again, as the history they are. A row from before timestamp_ms
  // gets a fixed stand-in (the run's start plus its epoch in ms), so it too is sent once.
  const std::string csv_path = (fs::path(run_dir_) / "metrics.csv").string();
  json& sent_epochs = entry["epochs"];
  if (!sent_epochs.is_object()) sent_epochs = json::object();
  std::vector<MlflowMetric> metrics;
  std::vector<std::pair<std::string, int64_t>> rows_sent;
  for (const auto& row : read_metrics_csv(csv_path)) {
    DEBLUR_CHECK(row.count("epoch"), csv_path, ": a row without its epoch");
    const int64_t epoch = int64_t(cell_number(row, "epoch", csv_path));
    const int64_t timestamp = row.count("timestamp_ms")
                                  ? int64_t(cell_number(row, "timestamp_ms", csv_path))
                                  : iso_to_ms(info.start_time) + epoch;
    const std::string key = std::to_string(epoch);
    if (sent_epochs.value(key, int64_t{-1}) == timestamp) continue;
    for (const auto& [column, name] : kMetricColumns)
      if (row.count(column))
        metrics.push_back({name, cell_number(row, column, csv_path), timestamp, epoch});
    rows_sent.emplace_back(key, timestamp);
  }
  if (!metrics.empty()) {
    client_.log_batch(run_id_, metrics, {}, {});
    for (const auto& [key, timestamp] : rows_sent) sent_epochs[key] = timestamp;
    save();
  }

  // Artifacts, when the server proxies them: each file unless this very version (size and
  // time) is already there.
  const bool artifacts = proxied_artifact_root(artifact_uri);
  if (!artifacts)
    notes_.push_back("no artifacts sent (files, checkpoint, model, model version): the run's "
                     "artifact root is '" + artifact_uri + "', which this server does not proxy "
                     "(start `mlflow server` with --serve-artifacts, its default)");
  json& sent_artifacts = entry["artifacts"];
  if (!sent_artifacts.is_object()) sent_artifacts = json::object();
  auto upload = [&](const std::string& local, const std::string& artifact) {
    const std::string signature = file_signature(local);
    if (!artifacts || signature.empty() || sent_artifacts.value(artifact, "") == signature) return;
    client_.upload_artifact(artifact_uri, artifact, local);
    sent_artifacts[artifact] = signature;
    save();
  };
  for (const char* name : {"params.json", "metrics.csv", "metrics.png"})
    upload((fs::path(run_dir_) / name).string(), name);

  const bool ended = info.status != "RUNNING";
  const std::string best = find_checkpoint(info.best_checkpoint, run_dir_);
  if (ended && best.empty() && !info.best_checkpoint.empty())
    notes_.push_back("the best checkpoint " + info.best_checkpoint + " was not found (from " +
                     fs::current_path().string() + "), so it and the model are not sent");
  if (ended && !best.empty() && artifacts) {
    upload(best, "checkpoints/" + fs::path(best).filename().string());
    write_model_dir(run_dir_, best);
    upload((fs::path(run_dir_) / kModelDir / "MLmodel").string(),
           std::string(kModelDir) + "/MLmodel");
    upload((fs::path(run_dir_) / kModelDir / "model.safetensors").string(),
           std::string(kModelDir) + "/model.safetensors");
  }

  // A model version for a finished run's best checkpoint, made once: a creation whose answer
  // was lost is found again by the run and the checkpoint tag.
  const std::string& model_name = options_.registered_model_name;
  const std::string checkpoint_name = best.empty() ? "" : fs::path(best).filename().string();
  if (info.status == "FINISHED" && !best.empty() && artifacts && !model_name.empty() &&
      entry.value("model_checkpoint", "") != checkpoint_name) {
    client_.create_registered_model_if_missing(model_name);
    std::string version;
    for (const ModelVersion& v : client_.find_model_versions(model_name, run_id_))
      if (v.tags.count("checkpoint") && v.tags.at("checkpoint") == checkpoint_name) version = v.version;
    if (version.empty()) {
      const Tags tags = {{"checkpoint", checkpoint_name},
                         {"epoch", std::to_string(info.best_epoch)},
                         {"psnr", detail::concat(info.best_psnr)},
                         {"ssim", detail::concat(info.best_ssim)}};
      version = client_
                    .create_model_version(
                        model_name, "runs:/" + run_id_ + "/" + kModelDir, run_id_,
                        detail::concat("DeblurUNet, best of run '", options_.run_name, "': epoch ",
                                       info.best_epoch, ", validation PSNR ", info.best_psnr,
                                       " dB, SSIM ", info.best_ssim, " (", checkpoint_name, ")"),
                        tags)
                    .version;
    }
    entry["model_checkpoint"] = checkpoint_name;
    entry["model_version"] = version;
    save();
  }

  // run.json last: once the server holds it, it holds the run's end.
  upload((fs::path(run_dir_) / "run.json").string(), "run.json");
  if (entry.value("status", "") != info.status) {
    client_.update_run(run_id_, info.status, ended ? iso_to_ms(info.end_time) : 0);
    entry["status"] = info.status;
    save();
  }
  complete_ = ended;
}

}  // namespace deblur::track
