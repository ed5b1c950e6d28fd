// The training loop, validation, checkpoints and the run folder (train/trainer.h).
#include "train/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <ctime>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <optional>
#include <type_traits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/autograd.h"
#include "engine/check.h"
#include "engine/device_memory.h"
#include "engine/dispatch.h"
#include "engine/file_io.h"
#include "engine/ops.h"
#include "infer/image_io.h"
#include "infer/metrics.h"
#include "infer/predictor.h"
#include "kernels/cpu/adamw.h"
#include "kernels/cpu/parallel.h"
#include "layers/deblur_unet.h"
#include "train/dataset.h"
#include "train/ema.h"
#include "train/loader.h"
#include "train/optimizer.h"
#include "train/plot.h"
#include "train/run_record.h"
#include "train/synthetic_blur.h"
#include "train/uploader.h"

#ifndef DEBLUR_GIT_COMMIT
#define DEBLUR_GIT_COMMIT "unknown"
#endif

namespace deblur::train {

namespace fs = std::filesystem;

namespace {

constexpr const char* kCheckpointFormat = "deblur checkpoint v1";
constexpr double kPsnrCap = 100.0;  // an identical image's infinite PSNR, for averaging

// Ctrl-C: the loop finishes its step, saves last.safetensors and returns. A second Ctrl-C half a
// second or more after the first ends the process at once; one sooner is the same interrupt
// delivered twice (timeout(1) and a terminal both signal the child and its process group too),
// and is ignored.
std::atomic<bool> g_interrupted{false};
std::atomic<int64_t> g_interrupted_at_ns{0};
extern "C" void on_interrupt(int) {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);  // async-signal-safe
  const int64_t now_ns = int64_t(now.tv_sec) * 1000000000 + now.tv_nsec;
  if (!g_interrupted.exchange(true)) {
    g_interrupted_at_ns.store(now_ns);
    return;
  }
  if (now_ns - g_interrupted_at_ns.load() < 500000000) return;
  std::signal(SIGINT, SIG_DFL);
  std::raise(SIGINT);
}

class InterruptScope {
 public:
  InterruptScope() {
    g_interrupted.store(false);
    previous_ = std::signal(SIGINT, on_interrupt);
  }
  ~InterruptScope() { std::signal(SIGINT, previous_); }

 private:
  void (*previous_)(int);
};

std::string format_double(double value, int decimals) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

std::string format_duration(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  char text[32];
  std::snprintf(text, sizeof text, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  return text;
}

// An Image's colour channels as a [1, 3, h, w] tensor in [-1, 1] (gray fills all three).
Tensor image_tensor(const Image& image) {
  Tensor t = Tensor::empty({1, 3, image.height, image.width});
  const bool gray = image.color_channels() == 1;
  float* dst = t.data();
  for (int c = 0; c < 3; ++c)
    for (int64_t y = 0; y < image.height; ++y)
      for (int64_t x = 0; x < image.width; ++x)
        *dst++ = image.unit(x, y, gray ? 0 : c);
  return t;
}

// The state a run carries from one epoch (or one interruption) to the next.
struct RunState {
  int64_t epoch = 0;  // the epoch to run next (0-based)
  int64_t batch = 0;  // its first batch
  int64_t step = 0;   // optimizer steps taken
  double best_psnr = -1.0, best_ssim = 0.0;
  int64_t best_epoch = 0;  // 1-based; 0: none yet
  std::string best_path;
  int64_t epochs_without_improvement = 0;
  int64_t loss_fallbacks = 0;  // over the whole run
  // The current epoch's training sums so far, so an epoch resumed halfway reports all of it.
  double epoch_loss_sum = 0.0, epoch_grad_norm_sum = 0.0;
  int64_t epoch_steps = 0;
};

struct EpochMetrics {
  double train_loss = 0.0, val_loss = 0.0, psnr = 0.0, ssim = 0.0;
  double grad_norm = 0.0;      // mean global gradient norm before clipping
  double images_per_s = 0.0;   // training samples over the epoch's training time
};

// The weights: the model's, or with --ema the average's and the raw ones (train/ema.h).
void save_checkpoint(const std::string& path, DeblurUNet& model, WeightAverage* average,
                     const AdamW& optimizer, const TrainConfig& config, const RunState& state,
                     const EpochMetrics& m, double lr) {
  std::vector<TensorRecord> tensors = average ? average->state() : model.state();
  for (TensorRecord& record : optimizer.state()) tensors.push_back(std::move(record));
  const std::map<std::string, std::string> metadata = {
      {"format", kCheckpointFormat},
      {"epoch", std::to_string(state.epoch)},
      {"batch", std::to_string(state.batch)},
      {"step", std::to_string(state.step)},
      {"psnr", format_double(m.psnr, 6)},
      {"ssim", format_double(m.ssim, 6)},
      {"loss", format_double(m.val_loss, 6)},
      {"lr", format_double(lr, 12)},
      {"best_psnr", format_double(state.best_psnr, 6)},
      {"best_ssim", format_double(state.best_ssim, 6)},
      {"best_epoch", std::to_string(state.best_epoch)},
      {"best_path", state.best_path},
      {"epochs_without_improvement", std::to_string(state.epochs_without_improvement)},
      {"loss_fallbacks", std::to_string(state.loss_fallbacks)},
      {"epoch_loss_sum", format_double(state.epoch_loss_sum, 12)},
      {"epoch_grad_norm_sum", format_double(state.epoch_grad_norm_sum, 12)},
      {"epoch_steps", std::to_string(state.epoch_steps)},
      {"config", config_json(config)},
      {"git_commit", DEBLUR_GIT_COMMIT},
  };
  fs::create_directories(fs::path(path).parent_path());
  write_safetensors(path, tensors, metadata);
}

// A number from the checkpoint's metadata; a missing key or a value that is not wholly a
// number is an error naming the file and the key.
template <class T>
T meta_number(const SafetensorsFile& file, const std::string& key, const std::string& source) {
  const auto it = file.metadata.find(key);
  DEBLUR_CHECK(it != file.metadata.end(), source, ": not a deblur training checkpoint (no '", key,
               "' in its metadata)");
  size_t used = 0;
  try {
    const T value = std::is_integral_v<T> ? T(std::stoll(it->second, &used))
                                          : T(std::stod(it->second, &used));
    if (used == it->second.size()) return value;
  } catch (const std::exception&) {
  }
  throw Error(detail::concat(source, ": metadata '", key, "' is not a number: '", it->second, "'"));
}

// The settings a resumed run must share with the run it continues: any other value would make
// it a different run (other batches, schedule or network), not the same one carried on. Returns
// the checkpoint's configuration.
nlohmann::json check_same_run(const SafetensorsFile& file, const std::string& path,
                              const TrainConfig& c) {
  const auto it = file.metadata.find("config");
  DEBLUR_CHECK(it != file.metadata.end(), path, ": no 'config' in its metadata");
  const nlohmann::json saved = nlohmann::json::parse(it->second, nullptr, false);
  DEBLUR_CHECK(!saved.is_discarded(), path, ": its 'config' metadata is not JSON");
  const nlohmann::json now = nlohmann::json::parse(config_json(c));
  std::string differences;
  for (const char* key : {"train_data", "synthetic_blur", "batch_size", "patch_size",
                          "num_epochs", "seed", "base"})
    if (saved.value(key, nlohmann::json()) != now[key])
      differences += detail::concat("\n  --", key, ": ", saved.value(key, nlohmann::json()).dump(),
                                    " in the checkpoint, ", now[key].dump(), " now");
  const double saved_ema = saved.value("ema", 0.0);  // checkpoints from before --ema: none
  if (saved_ema != c.ema)
    differences += detail::concat("\n  --ema: ", saved_ema, " in the checkpoint, ", c.ema, " now");
  DEBLUR_CHECK(differences.empty(), path, ": --resume continues a run with its own settings; these "
               "differ:", differences);
  return saved;
}

// Restores weights, optimizer moments and the run state from a checkpoint, and the run's
// --init_weights into config, so params.json goes on saying where the run began.
RunState resume_from(const std::string& path, TrainConfig& config, DeblurUNet& model,
                     WeightAverage* average, AdamW& optimizer) {
  const SafetensorsFile file = read_safetensors(path);
  const auto format = file.metadata.find("format");
  DEBLUR_CHECK(format != file.metadata.end() && format->second == kCheckpointFormat, path,
               ": not a deblur training checkpoint (metadata 'format' should be '",
               kCheckpointFormat, "')");
  config.init_weights =
      check_same_run(file, path, config).value("init_weights", std::string());
  if (average)
    average->load_state(file, path);
  else
    model.load_state(model_weights(file), path);
  RunState state;
  state.epoch = meta_number<int64_t>(file, "epoch", path);
  state.batch = meta_number<int64_t>(file, "batch", path);
  state.step = meta_number<int64_t>(file, "step", path);
  state.best_psnr = meta_number<double>(file, "best_psnr", path);
  state.best_ssim = meta_number<double>(file, "best_ssim", path);
  state.best_epoch = meta_number<int64_t>(file, "best_epoch", path);
  state.best_path = file.metadata.count("best_path") ? file.metadata.at("best_path") : "";
  state.epochs_without_improvement = meta_number<int64_t>(file, "epochs_without_improvement", path);
  state.loss_fallbacks = meta_number<int64_t>(file, "loss_fallbacks", path);
  state.epoch_loss_sum = meta_number<double>(file, "epoch_loss_sum", path);
  state.epoch_grad_norm_sum = meta_number<double>(file, "epoch_grad_norm_sum", path);
  state.epoch_steps = meta_number<int64_t>(file, "epoch_steps", path);
  optimizer.load_state(file, path, state.step);
  return state;
}

// The validation pairs, decoded again each epoch rather than held: the GoPro test set's 1111
// pairs at 1280x720 would take ~6 GB. The next pair is decoded on another thread while the
// current one runs through the model.
// run.json through the run (train/run_record.h): RUNNING from the start, refreshed after each
// epoch; FAILED if an error leaves run_training before finish() says how the run ended.
class RunRecorder {
 public:
  RunRecorder(std::string path, const TrainConfig& config) : path_(std::move(path)) {
    if (!config.resume.empty() && fs::exists(path_))  // a resumed run keeps its start
      info_ = read_run_info(path_);
    else
      info_.start_time = utc_now();
    info_.name = config.registered_model_name;
    info_.status = "RUNNING";
    info_.end_time.clear();
    info_.device = config.device;
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    info_.host = host;
    info_.git_commit = DEBLUR_GIT_COMMIT;
    write_run_info(path_, info_);
  }
  ~RunRecorder() {
    if (finished_) return;
    info_.status = "FAILED";
    info_.end_time = utc_now();
    try {
      write_run_info(path_, info_);
    } catch (...) {  // already leaving with an error: that one is the one to report
    }
  }
  RunRecorder(const RunRecorder&) = delete;
  RunRecorder& operator=(const RunRecorder&) = delete;

  void update(const RunState& state) {
    info_.epochs = state.epoch;
    info_.steps = state.step;
    info_.best_epoch = state.best_epoch;
    info_.best_psnr = state.best_epoch > 0 ? state.best_psnr : 0.0;
    info_.best_ssim = state.best_ssim;
    info_.best_checkpoint = state.best_path;
    write_run_info(path_, info_);
  }
  void finish(const RunState& state, bool interrupted) {
    info_.status = interrupted ? "KILLED" : "FINISHED";
    info_.end_time = utc_now();
    update(state);
    finished_ = true;
  }

 private:
  std::string path_;
  RunInfo info_;
  bool finished_ = false;
};

struct ValidationSet {
  std::vector<ImagePair> pairs;
  double input_psnr = 0.0, input_ssim = 0.0;  // the blurry inputs' own
};

struct DecodedPair {
  Image blur, sharp;
};

DecodedPair decode(const ImagePair& pair) {
  return {read_image(pair.blur), read_image(pair.sharp)};
}

// Calls visit(decoded pair) for each pair in order, decoding one ahead.
template <class Visit>
void for_each_pair(const ValidationSet& set, Visit visit) {
  std::future<DecodedPair> next =
      std::async(std::launch::async, decode, std::cref(set.pairs.front()));
  for (size_t i = 0; i < set.pairs.size(); ++i) {
    DecodedPair current = next.get();
    if (i + 1 < set.pairs.size())
      next = std::async(std::launch::async, decode, std::cref(set.pairs[i + 1]));
    visit(current);
  }
}

ValidationSet load_validation(const TrainConfig& config, const LogFn& log) {
  ScanOptions options;
  options.skip_bad = config.skip_bad;
  options.min_side = kMetricsMinSide;
  Dataset data = scan_pairs(config.test_data, options);
  for (const std::string& warning : data.warnings) log("warning: " + warning, false);
  ValidationSet set;
  set.pairs = std::move(data.pairs);
  for_each_pair(set, [&](const DecodedPair& pair) {
    const ImageMetrics m = compare_images(pair.blur, pair.sharp);
    set.input_psnr += std::min(m.psnr, kPsnrCap);
    set.input_ssim += m.ssim;
  });
  set.input_psnr /= double(set.pairs.size());
  set.input_ssim /= double(set.pairs.size());
  return set;
}

// Validation: the tiled predictor on the training device, metrics on the 8-bit outputs.
EpochMetrics validate(const DeblurUNet& model, const ValidationSet& set, const TrainConfig& config,
                      CombinedLoss& loss) {
  TileOptions tiles;
  tiles.tile = config.val_tile;
  tiles.overlap = std::clamp<int64_t>(config.val_tile / 2 - 16, 0, 64);  // under half a tile
  const Predictor predictor(model, tiles);
  EpochMetrics m;
  NoGradGuard no_grad;
  for_each_pair(set, [&](const DecodedPair& pair) {
    const Image out = predictor.run(pair.blur);
    const ImageMetrics metrics = compare_images(out, pair.sharp);
    m.psnr += std::min(metrics.psnr, kPsnrCap);
    m.ssim += metrics.ssim;
    m.val_loss += loss(image_tensor(out), image_tensor(pair.sharp)).total.item();
  });
  const double n = double(set.pairs.size());
  m.psnr /= n;
  m.ssim /= n;
  m.val_loss /= n;
  return m;
}

// metrics.csv, one row per finished epoch, rewritten whole (atomically) at each append.
class MetricsCsv {
 public:
  static constexpr const char* kHeader =
      "epoch,step,lr,train_loss,val_loss,val_psnr,val_ssim,input_psnr,input_ssim,"
      "loss_fallbacks,grad_norm,images_per_s,seconds,timestamp_ms";

  // Keeps the rows of epochs 1..keep_epochs an existing file holds (a resumed run's); a row
  // written before a column existed gets an empty cell for it.
  MetricsCsv(std::string path, int64_t keep_epochs) : path_(std::move(path)) {
    std::ifstream in(path_);
    std::string line;
    const auto columns = std::count(kHeader, kHeader + std::strlen(kHeader), ',') + 1;
    for (bool header = true; std::getline(in, line); header = false)
      if (!header && !line.empty() && std::atoll(line.c_str()) <= keep_epochs) {
        line.append(std::max<int64_t>(columns - 1 - std::count(line.begin(), line.end(), ','), 0), ',');
        rows_.push_back(line);
      }
    write();
  }
  void append(const std::string& row) {
    rows_.push_back(row);
    write();
  }
  const std::string& path() const { return path_; }

 private:
  void write() const {
    std::string text = std::string(kHeader) + "\n";
    for (const std::string& row : rows_) text += row + "\n";
    write_file_atomically(path_, reinterpret_cast<const uint8_t*>(text.data()), text.size());
  }
  std::string path_;
  std::vector<std::string> rows_;
};

}  // namespace

std::string config_json(const TrainConfig& c) {
  nlohmann::ordered_json j;
  j["train_data"] = c.train_data;
  j["test_data"] = c.test_data;
  j["registered_model_name"] = c.registered_model_name;
  j["batch_size"] = c.batch_size;
  j["num_epochs"] = c.num_epochs;
  j["learning_rate"] = c.learning_rate;
  j["patience"] = c.patience;
  j["device"] = c.device;
  j["patch_size"] = c.patch_size;
  j["weight_decay"] = c.weight_decay;
  j["clip"] = c.clip;
  j["eta_min"] = c.eta_min;
  j["ema"] = c.ema;
  j["alpha"] = c.loss.alpha;
  j["beta"] = c.loss.beta;
  j["seed_msssim"] = c.loss.seed_msssim;
  j["seed"] = c.seed;
  j["workers"] = c.workers;
  j["checkpoint_dir"] = c.checkpoint_dir;
  j["run_dir"] = c.run_dir;
  j["resume"] = c.resume;
  j["init_weights"] = c.init_weights;
  j["max_steps"] = c.max_steps;
  j["synthetic_blur"] = c.synthetic_blur;
  j["skip_bad"] = c.skip_bad;
  j["val_tile"] = c.val_tile;
  j["base"] = c.base;
  return j.dump();
}

TrainResult run_training(const TrainConfig& input_config, const LogFn& user_log,
                         const RunObserver& observer) {
  // Ctrl-C from the start: during the checks and set-up it stops the run before its first step
  // (saving last.safetensors like any other interruption), during a step or a validation right
  // after it; a second Ctrl-C ends the process at once.
  InterruptScope interrupt_scope;
  TrainConfig config = input_config;
  if (config.run_dir.empty()) config.run_dir = "runs/" + config.registered_model_name;
  // On a terminal, one live progress line rewritten in place; otherwise plain lines.
  const bool terminal = isatty(STDOUT_FILENO) != 0;
  const bool live = terminal && !user_log;
  const LogFn log = user_log ? user_log : [terminal](const std::string& line, bool transient) {
    if (terminal)
      std::printf(transient ? "\r\033[K%s" : "\r\033[K%s\n", line.c_str());
    else
      std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  };
  DEBLUR_CHECK(config.batch_size > 0, "--batch_size must be positive");
  DEBLUR_CHECK(config.num_epochs > 0, "--num_epochs must be positive");
  DEBLUR_CHECK(config.patch_size >= 16 && config.patch_size % 16 == 0,
               "--patch_size must be a positive multiple of 16, got ", config.patch_size);
  DEBLUR_CHECK(config.learning_rate > 0 && config.eta_min >= 0 && config.clip > 0,
               "--learning_rate and --clip must be positive and --eta_min not negative");
  DEBLUR_CHECK(config.device == "cpu" || config.device == "cuda",
               "--device must be cpu or cuda, got '", config.device, "'");
  const Device device = config.device == "cuda" ? Device::CUDA : Device::CPU;
  DEBLUR_CHECK(device == Device::CPU || cuda_available(),
               "--device cuda: no CUDA device is visible, or this build has no CUDA backend");
  DEBLUR_CHECK(config.init_weights.empty() || config.resume.empty(),
               "--init_weights starts a new run from a model's weights and --resume continues a "
               "run from its checkpoint: give one of them");
  cpu::set_num_threads(config.threads);

  // A new run never writes over an earlier one's checkpoints or metrics.
  if (config.resume.empty())
    for (const fs::path& earlier : {fs::path(config.checkpoint_dir) / "last.safetensors",
                                    fs::path(config.run_dir) / "metrics.csv"})
      DEBLUR_CHECK(!fs::exists(earlier), earlier.string(), " is from an earlier run: continue it "
                   "with --resume ", (fs::path(config.checkpoint_dir) / "last.safetensors").string(),
                   ", or give this run its own --checkpoint_dir and --run_dir");

  // Data first: a bad dataset fails before any model is built.
  ScanOptions scan;
  scan.min_side = config.patch_size;
  scan.skip_bad = config.skip_bad;
  scan.sharp_only = config.synthetic_blur;
  Dataset train_data = scan_pairs(config.train_data, scan);
  for (const std::string& warning : train_data.warnings) log("warning: " + warning, false);
  const ValidationSet validation = load_validation(config, log);
  LoaderOptions loader_options;
  loader_options.batch_size = config.batch_size;
  loader_options.patch = config.patch_size;
  loader_options.workers = config.workers;
  loader_options.seed = config.seed;
  if (config.synthetic_blur) loader_options.synthesize = synthesize_camera_shake;
  BatchLoader loader(std::move(train_data), loader_options);

  DeblurUNet model(config.base, config.seed);
  if (!config.init_weights.empty()) {
    const SafetensorsFile init = model_weights(read_safetensors(config.init_weights));
    // A width mismatch says so, rather than listing every tensor's shape.
    if (const TensorRecord* first = init.find("enc1.conv1.weight"); first && !first->shape.empty())
      DEBLUR_CHECK(first->shape[0] == config.base, config.init_weights, ": enc1.conv1.weight is ",
                   shape_string(first->shape), ", a network of width ", first->shape[0],
                   "; this run builds width ", config.base, " (--base)");
    model.load_state(init, config.init_weights);
    log("starting from the weights of " + config.init_weights, false);
  }
  model.to(device);
  common::AdamWHyper hyper;
  hyper.lr = config.learning_rate;
  hyper.weight_decay = config.weight_decay;
  hyper.max_norm = config.clip;
  AdamW optimizer(model, hyper);
  std::optional<WeightAverage> average;
  if (config.ema > 0.0) average.emplace(model, config.ema);
  WeightAverage* const averaged = average ? &*average : nullptr;
  // What validation runs and checkpoints name as the model.
  DeblurUNet& validated = average ? average->average() : model;
  RunState state;
  if (!config.resume.empty()) {
    state = resume_from(config.resume, config, model, averaged, optimizer);
    log(detail::concat("resumed from ", config.resume, ": epoch ", state.epoch + 1, ", batch ",
                       state.batch, ", step ", state.step),
        false);
  }
  CombinedLoss loss(config.loss);
  CombinedLoss validation_loss(config.loss);  // its fallbacks are not training's
  BatchUploader uploader(device);
  fs::create_directories(config.run_dir);
  fs::create_directories(config.checkpoint_dir);
  // metrics.csv holds this run's epochs: on resume, those up to the checkpoint's.
  MetricsCsv metrics_csv((fs::path(config.run_dir) / "metrics.csv").string(), state.epoch);
  const std::string config_text = config_json(config);
  write_file_atomically((fs::path(config.run_dir) / "params.json").string(),
                        reinterpret_cast<const uint8_t*>(config_text.data()), config_text.size());
  RunRecorder recorder((fs::path(config.run_dir) / "run.json").string(), config);
  recorder.update(state);
  if (observer) observer(config.run_dir);

  const int64_t batches = loader.batches_per_epoch();
  log(detail::concat("training on ", config.device, ": ", loader.samples(), " ",
                     config.synthetic_blur ? "sharp images (synthetic blur)" : "pairs", ", ",
                     batches, " batches of ", config.batch_size, " x ", config.patch_size, "x",
                     config.patch_size, " per epoch; validation: ", validation.pairs.size(),
                     " images, blurry input PSNR ", format_double(validation.input_psnr, 2),
                     " dB, SSIM ", format_double(validation.input_ssim, 4)),
      false);

  TrainResult result;
  const fs::path last_path = fs::path(config.checkpoint_dir) / "last.safetensors";
  const auto run_start = std::chrono::steady_clock::now();
  const int64_t first_step = state.step;
  const int64_t restored_fallbacks = state.loss_fallbacks;
  EpochMetrics last_metrics;
  // Saves last.safetensors where the run stands and says so (Ctrl-C, --max_steps).
  auto stop_here = [&](double lr, const char* why) {
    result.interrupted = g_interrupted.load();
    save_checkpoint(last_path.string(), model, averaged, optimizer, config, state, last_metrics,
                    lr);
    log(detail::concat(why, " at step ", state.step, ": saved ", last_path.string(),
                       " (resume with --resume ", last_path.string(), ")"),
        false);
  };
  const bool steps_done_at_start = config.max_steps > 0 && state.step >= config.max_steps;
  if (steps_done_at_start)
    log(detail::concat("--max_steps ", config.max_steps, ": already reached (step ", state.step,
                       ")"),
        false);
  while (state.epoch < config.num_epochs && !steps_done_at_start) {
    const int64_t epoch = state.epoch;
    const double lr =
        cpu::cosine_annealing_lr(config.learning_rate, config.eta_min, epoch, config.num_epochs);
    if (g_interrupted.load()) {
      stop_here(lr, "interrupted");
      break;
    }
    loader.start_epoch(epoch, state.batch);
    const auto epoch_start = std::chrono::steady_clock::now();
    int64_t images = 0;
    Batch batch;
    bool have_batch = loader.next(batch);
    DeviceBatch current = have_batch ? uploader.upload(batch) : DeviceBatch{};
    bool stop = false;
    while (have_batch) {
      model.zero_grad();
      const LossTerms terms = loss(model.forward(current.blur), current.sharp);
      terms.total.backward();
      optimizer.step(lr);
      if (average) average->update();
      ++state.step;
      state.batch = batch.index + 1;
      const int64_t batch_images = current.blur.n();
      // The next batch goes out while the backward and the optimizer still run on the device
      // (its copy queues behind their kernels); reading the loss below waits for the step.
      have_batch = loader.next(batch);
      if (have_batch) current = uploader.upload(batch);
      const double value = terms.total.item();
      state.epoch_loss_sum += value;
      state.epoch_grad_norm_sum += optimizer.last_grad_norm();
      ++state.epoch_steps;
      state.loss_fallbacks = restored_fallbacks + loss.fallbacks();
      images += batch_images;
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                                           epoch_start).count();
      const int64_t done = state.step - first_step;
      const double per_step = std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                                            run_start).count() / double(done);
      const int64_t left = config.max_steps > 0
                               ? config.max_steps - state.step
                               : (config.num_epochs - epoch) * batches - state.batch;
      const bool report = live || state.batch == batches || state.step % 50 == 0;
      if (report)
        log(detail::concat("epoch ", epoch + 1, "/", config.num_epochs, " step ", state.batch, "/",
                           batches, "  loss ", format_double(value, 4), "  ",
                           format_double(images / std::max(seconds, 1e-9), 1), " images/s  ETA ",
                           format_duration(per_step * double(std::max<int64_t>(left, 0)))),
            live);
      if (terms.fell_back && loss.fallbacks() <= 3)
        log(detail::concat("warning: MS-SSIM could not be computed (patches of ",
                           config.patch_size, " need more than 160 pixels, or a non-finite "
                           "value); the structure term is L1 for this batch (",
                           state.loss_fallbacks, " so far; counted in metrics.csv)"),
            false);
      // --max_steps ending an epoch lets its validation run first (below).
      const bool steps_done = config.max_steps > 0 && state.step >= config.max_steps;
      if (g_interrupted.load() || (steps_done && state.batch < batches)) {
        stop = true;
        break;
      }
    }
    if (stop) {
      // An interrupted last batch saves batch == batches: a resumed run validates the epoch.
      stop_here(lr, g_interrupted.load() ? "interrupted" : "--max_steps reached");
      break;
    }

    const double train_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count();
    EpochMetrics m = validate(validated, validation, config, validation_loss);
    const double steps = double(std::max<int64_t>(state.epoch_steps, 1));
    m.train_loss = state.epoch_loss_sum / steps;
    m.grad_norm = state.epoch_grad_norm_sum / steps;
    m.images_per_s = double(images) / std::max(train_seconds, 1e-9);
    last_metrics = m;
    const double epoch_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count();
    // The epoch is done: every checkpoint from here on starts the next one at its first batch.
    ++state.epoch;
    state.batch = 0;
    state.epoch_loss_sum = state.epoch_grad_norm_sum = 0.0;
    state.epoch_steps = 0;
    const bool improved = m.psnr > state.best_psnr;
    if (improved) {
      const std::string name = detail::concat("best_model_epoch_", state.epoch, "_psnr_",
                                              format_double(m.psnr, 2), ".safetensors");
      const std::string path = (fs::path(config.checkpoint_dir) / name).string();
      const std::string previous = state.best_path;
      state.best_psnr = m.psnr;
      state.best_ssim = m.ssim;
      state.best_epoch = state.epoch;
      state.best_path = path;
      state.epochs_without_improvement = 0;
      save_checkpoint(path, model, averaged, optimizer, config, state, m, lr);
      if (!previous.empty() && previous != path) fs::remove(previous);
    } else {
      ++state.epochs_without_improvement;
    }
    save_checkpoint(last_path.string(), model, averaged, optimizer, config, state, m, lr);
    metrics_csv.append(
        detail::concat(state.epoch, ",", state.step, ",", format_double(lr, 10), ",",
                       format_double(m.train_loss, 6), ",", format_double(m.val_loss, 6), ",",
                       format_double(m.psnr, 4), ",", format_double(m.ssim, 5), ",",
                       format_double(validation.input_psnr, 4), ",",
                       format_double(validation.input_ssim, 5), ",", state.loss_fallbacks, ",",
                       format_double(m.grad_norm, 5), ",", format_double(m.images_per_s, 2), ",",
                       format_double(epoch_seconds, 1), ",", unix_time_ms()));
    plot_metrics(metrics_csv.path(), (fs::path(config.run_dir) / "metrics.png").string());
    recorder.update(state);
    if (observer) observer(config.run_dir);
    log(detail::concat("epoch ", state.epoch, "/", config.num_epochs, ": train loss ",
                       format_double(m.train_loss, 4), ", val loss ",
                       format_double(m.val_loss, 4), ", PSNR ", format_double(m.psnr, 2),
                       " dB (input ", format_double(validation.input_psnr, 2), "), SSIM ",
                       format_double(m.ssim, 4), " (input ",
                       format_double(validation.input_ssim, 4), "), lr ",
                       format_double(lr, 8), ", grad norm ", format_double(m.grad_norm, 3), ", ",
                       format_double(m.images_per_s, 1), " images/s, ",
                       format_double(epoch_seconds, 1), " s",
                       improved ? "  [best]" : ""),
        false);
    if (config.max_steps > 0 && state.step >= config.max_steps) {
      log(detail::concat("--max_steps reached at step ", state.step, ": saved ",
                         last_path.string()),
          false);
      break;
    }
    if (state.epochs_without_improvement >= config.patience) {
      result.early_stopped = true;
      log(detail::concat("early stop: no PSNR improvement in ", config.patience, " epochs"),
          false);
      break;
    }
  }
  recorder.finish(state, result.interrupted);
  result.best_checkpoint = state.best_path;
  result.best_psnr = state.best_psnr;
  result.best_ssim = state.best_ssim;
  result.best_epoch = state.best_epoch;
  result.epochs_run = state.epoch;
  result.steps = state.step;
  if (!state.best_path.empty())
    log(detail::concat("best: ", state.best_path, " (epoch ", state.best_epoch, ", PSNR ",
                       format_double(state.best_psnr, 2), " dB, SSIM ",
                       format_double(state.best_ssim, 4), ")"),
        false);
  return result;
}

}  // namespace deblur::train
