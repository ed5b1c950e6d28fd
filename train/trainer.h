// The trainer behind `deblur train`: the seed's training pipeline on the engine.
//
// Per epoch e (0-based inside, 1-based in everything a user sees): the learning rate of
// CosineAnnealingLR(T_max = num_epochs, eta_min) after e scheduler steps (stepped per epoch, as
// the seed); every batch of the epoch's shuffled order (train/loader.h) runs forward,
// CombinedLoss (train/loss.h), backward, global-norm clipping and AdamW (train/optimizer.h).
// Then validation on the whole validation images on the training device, through the same
// tiled predictor as `deblur infer`: PSNR and SSIM of the 8-bit output against the sharp image
// computed the standard way (infer/metrics.h), and the validation loss, CombinedLoss of that
// output (mapped back to [-1, 1]) against the sharp image. The blurry inputs' own PSNR/SSIM are
// computed once, so every run shows its gain over doing nothing.
//
// Checkpoints (safetensors, written atomically): the weights under the reference names, the
// optimizer moments (train/optimizer.h) and metadata (format, epoch, step, psnr, ssim, loss, lr,
// the whole configuration as JSON, the git commit, and the run state needed to resume).
//   <checkpoint_dir>/best_model_epoch_{E}_psnr_{P:.2f}.safetensors   best-only: the previous
//                                                                      best is removed
//   <checkpoint_dir>/last.safetensors   after every epoch, at --max_steps, and on Ctrl-C
// --resume PATH continues exactly where PATH left off (epoch, batch within the epoch, step,
// best PSNR, epochs without improvement): batches depend only on (seed, epoch, position), so a
// resumed run sees the batches the uninterrupted one would have.
// --init_weights PATH starts a new run from PATH's weights instead of the seeded initialisation
// (to carry a model on with other data or settings, or from one machine's run to another's).
// In <run_dir>: params.json (the configuration), metrics.csv (one row per epoch, ending with its
// wall-clock timestamp_ms), metrics.png
// (loss and PSNR by epoch) and run.json (status, times, best scores: train/run_record.h).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "train/loss.h"

namespace deblur::train {

struct TrainConfig {
  std::string train_data, test_data;
  std::string registered_model_name = "deblur_unet";
  int64_t batch_size = 24;
  int64_t num_epochs = 200;
  double learning_rate = 2e-4;
  int64_t patience = 50;
  std::string device = "cpu";
  int64_t patch_size = 256;
  double weight_decay = 1e-4;
  double clip = 1.0;
  double eta_min = 1e-6;
  // Decay of the moving average of the weights that validation, best checkpoints and exports use
  // (train/ema.h); 0: none, the seed's way (validate the raw weights).
  double ema = 0.0;
  LossOptions loss;
  uint64_t seed = 42;
  int workers = 4;
  std::string checkpoint_dir = "checkpoints";
  std::string run_dir;  // default: runs/<registered_model_name>
  std::string resume;
  // A new run's starting weights (a model file, a checkpoint, or PyTorch's weights converted):
  // the optimizer, schedule and step count start fresh. Not with resume.
  std::string init_weights;
  int64_t max_steps = 0;  // 0: no limit
  bool synthetic_blur = false;
  bool skip_bad = false;
  int64_t val_tile = 512;  // validation tiles (0: whole images)
  int threads = 0;         // CPU threads (0: all cores)
  int64_t base = 32;       // first-level channels; the reference model (and deblur infer) use 32,
                           // tests train narrower copies of the same network
};

struct TrainResult {
  std::string best_checkpoint;  // empty if no epoch finished
  double best_psnr = 0.0, best_ssim = 0.0;
  int64_t best_epoch = 0;  // 1-based
  int64_t epochs_run = 0, steps = 0;
  bool interrupted = false;     // stopped by Ctrl-C (last.safetensors holds where)
  bool early_stopped = false;   // patience ran out
};

// What the trainer prints: progress lines and summaries go to `log` (stdout by default).
using LogFn = std::function<void(const std::string& line, bool transient)>;

// The configuration as JSON (checkpoint metadata, the run folder's params.json).
std::string config_json(const TrainConfig& config);

// Told the run folder's path each time it has something new: once when the run starts (params.json
// and run.json written), then after each epoch (metrics.csv, metrics.png, run.json). How the run
// ended is in run.json once run_training returns or throws. The experiment tracker listens here.
using RunObserver = std::function<void(const std::string& run_dir)>;

// Runs training to the end (num_epochs, patience, max_steps or Ctrl-C). Errors (bad data, a
// checkpoint that does not fit) are deblur::Error naming the file.
TrainResult run_training(const TrainConfig& config, const LogFn& log = {},
                         const RunObserver& observer = {});

}  // namespace deblur::train
