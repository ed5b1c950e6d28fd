// deblur train: the command line of the trainer (train/trainer.h), with the seed's flags.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "engine/check.h"
#include "infer/cli/args.h"
#include "infer/cli/commands.h"
#include "track/tracker.h"
#include "train/trainer.h"

namespace deblur::cli {

namespace {

constexpr const char* kHelp =
    "usage: deblur train --train_data DIR --test_data DIR [options]\n"
    "\n"
    "Trains a DeblurUNet (8.6M parameters) on blurry/sharp pairs: random patches with the same\n"
    "flip and rotation on both images, CombinedLoss (MS-SSIM + Charbonnier), AdamW with global\n"
    "gradient-norm clipping, cosine learning rate stepped per epoch, validation on the whole\n"
    "validation images every epoch, best-only checkpoints and early stopping. Data folders use\n"
    "the GoPro layout (DIR/<scene>/blur/*.png and DIR/<scene>/sharp/*.png, partners share a\n"
    "name) or the flat one (DIR/blur, DIR/sharp); every pair is checked before training starts.\n"
    "Options take the seed's spelling (--batch_size) or the hyphenated one (--batch-size).\n"
    "\n"
    "data:\n"
    "  --train_data DIR             training pairs (required)\n"
    "  --test_data DIR              validation pairs (required)\n"
    "  --synthetic_blur             --train_data holds sharp images only (any folder tree):\n"
    "                               each patch gets a new random camera-shake blur and noise\n"
    "  --patch_size 256             training crop side, a multiple of 16\n"
    "  --workers 4                  loader threads decoding ahead of the trainer (0: none)\n"
    "  --skip_bad                   leave out bad pairs with a warning instead of failing\n"
    "training:\n"
    "  --device cpu                 cpu, or cuda (needs a CUDA build and a GPU)\n"
    "  --batch_size 24\n"
    "  --num_epochs 200             also the cosine schedule's T_max\n"
    "  --learning_rate 0.0002       AdamW's initial learning rate\n"
    "  --eta_min 1e-06              the cosine schedule's floor\n"
    "  --weight_decay 0.0001        AdamW's decoupled weight decay\n"
    "  --clip 1.0                   global gradient-norm clipping\n"
    "  --ema 0                      validate, checkpoint and export a moving average of the\n"
    "                               weights with this decay (0.999: over about the last 1000\n"
    "                               steps), steadier than the raw weights at small batches;\n"
    "                               0: the raw weights, as the seed\n"
    "  --alpha 0.84                 MS-SSIM term's weight\n"
    "  --beta 0.16                  Charbonnier term's weight\n"
    "  --seed_msssim                MS-SSIM on [-1, 1] with data_range 2, as the seed (the\n"
    "                               default maps to [0, 1] first: the seed's form collapses near\n"
    "                               grey, see ../shared/BRIEF.md)\n"
    "  --patience 50                early stop after this many epochs without a better PSNR\n"
    "  --seed 42                    initial weights, shuffling, patches and synthetic blur\n"
    "  --max_steps 0                stop after this many optimizer steps (0: no limit)\n"
    "  --threads N                  CPU threads (default: all cores)\n"
    "  --val_tile 512               validation tile side (0: whole images)\n"
    "  --base 32                    first-level channels (the reference model's 32; a narrower\n"
    "                               network trains faster; deblur infer reads the width off\n"
    "                               the file, PyTorch needs DeblurUNet(base=...))\n"
    "output:\n"
    "  --registered_model_name deblur_unet   names the run (runs/NAME); given, with tracking,\n"
    "                               a finished run's best model becomes a new version of\n"
    "                               this registered model in MLflow\n"
    "  --checkpoint_dir checkpoints  best_model_epoch_{E}_psnr_{P}.safetensors (best only)\n"
    "                               and last.safetensors (every epoch, and on Ctrl-C)\n"
    "  --run_dir runs/NAME          params.json, metrics.csv, metrics.png and run.json\n"
    "                               (deblur runs lists them)\n"
    "  --resume PATH                continue a run from a checkpoint (last.safetensors)\n"
    "  --init_weights PATH          start a new run (fresh optimizer and schedule) from a\n"
    "                               model's weights: deblur export's file, a checkpoint, or\n"
    "                               PyTorch weights converted by data_tools/\n"
    "                               pth_to_safetensors.py; its width must be --base's; not\n"
    "                               with --resume\n"
    "tracking (MLflow, through its REST API; the run folder is complete without it):\n"
    "  --tracking_uri URI           an MLflow tracking server, http(s)://host:port (default:\n"
    "                               $MLFLOW_TRACKING_URI; neither: no tracking)\n"
    "  --experiment_name deblur     (default: $MLFLOW_EXPERIMENT_NAME, else deblur)\n"
    "  --run_name NAME              (default: the run folder's name)\n"
    "  --tracking_wait 120          seconds to wait at the end for the server to have the\n"
    "                               whole run; what is left, deblur runs push sends later\n"
    "\n"
    "Checkpoints hold the weights under the reference module's names (they load into the\n"
    "PyTorch DeblurUNet and into deblur infer), the optimizer state and the run's metadata.\n";

// The tracker's messages, from its own thread, on a line of their own (past a live progress
// line on a terminal).
void print_line(const std::string& line) {
  std::printf(isatty(STDOUT_FILENO) ? "\r\033[K%s\n" : "%s\n", line.c_str());
  std::fflush(stdout);
}

}  // namespace

int run_train(int argc, char** argv) {
  Args args(argc, argv, 2, {"help", "synthetic_blur", "skip_bad", "seed_msssim"});
  if (args.has("help")) {
    std::printf("%s", kHelp);
    return 0;
  }
  args.allow_only({"help", "train_data", "test_data", "registered_model_name", "batch_size",
                   "num_epochs", "learning_rate", "patience", "device", "patch_size",
                   "weight_decay", "clip", "eta_min", "ema", "alpha", "beta", "seed_msssim", "seed",
                   "workers", "checkpoint_dir", "run_dir", "resume", "init_weights", "max_steps",
                   "synthetic_blur", "skip_bad", "threads", "val_tile", "base", "tracking_uri",
                   "experiment_name", "run_name", "tracking_wait"});
  train::TrainConfig c;
  c.train_data = args.get("train_data", "");
  c.test_data = args.get("test_data", "");
  DEBLUR_CHECK(!c.train_data.empty() && !c.test_data.empty(),
               "--train_data and --test_data are required (see --help)");
  c.registered_model_name = args.get("registered_model_name", c.registered_model_name);
  c.batch_size = args.get_int("batch_size", c.batch_size);
  c.num_epochs = args.get_int("num_epochs", c.num_epochs);
  c.learning_rate = args.get_double("learning_rate", c.learning_rate);
  c.patience = args.get_int("patience", c.patience);
  c.device = args.get("device", c.device);
  c.patch_size = args.get_int("patch_size", c.patch_size);
  c.weight_decay = args.get_double("weight_decay", c.weight_decay);
  c.clip = args.get_double("clip", c.clip);
  c.eta_min = args.get_double("eta_min", c.eta_min);
  c.ema = args.get_double("ema", c.ema);
  DEBLUR_CHECK(std::isfinite(c.ema) && c.ema >= 0.0 && c.ema < 1.0,
               "--ema must be a decay in [0, 1) (0: no average), got ", c.ema);
  c.loss.alpha = args.get_double("alpha", c.loss.alpha);
  c.loss.beta = args.get_double("beta", c.loss.beta);
  c.loss.seed_msssim = args.has("seed_msssim");
  c.seed = static_cast<uint64_t>(args.get_int("seed", static_cast<int64_t>(c.seed)));
  c.workers = static_cast<int>(args.get_int("workers", c.workers));
  c.checkpoint_dir = args.get("checkpoint_dir", c.checkpoint_dir);
  c.run_dir = args.get("run_dir", c.run_dir);
  c.resume = args.get("resume", c.resume);
  c.init_weights = args.get("init_weights", c.init_weights);
  c.max_steps = args.get_int("max_steps", c.max_steps);
  c.synthetic_blur = args.has("synthetic_blur");
  c.skip_bad = args.has("skip_bad");
  c.threads = static_cast<int>(args.get_int("threads", 0));
  c.val_tile = args.get_int("val_tile", c.val_tile);
  c.base = args.get_int("base", c.base);
  DEBLUR_CHECK(c.base >= 8 && c.base % 8 == 0, "--base must be a positive multiple of 8 (GroupNorm's "
               "8 groups), got ", c.base);
  DEBLUR_CHECK(c.patience > 0, "--patience must be positive, got ", c.patience);
  DEBLUR_CHECK(c.val_tile >= 0 && c.val_tile % 16 == 0,
               "--val_tile must be 0 or a positive multiple of 16, got ", c.val_tile);

  // MLflow: the tracker starts when the run folder exists and keeps the server up to date in
  // the background; it is told how the run ended either way (run.json says it).
  track::TrackerOptions tracking;
  tracking.tracking_uri = args.get("tracking_uri", env_or("MLFLOW_TRACKING_URI", ""));
  tracking.sync.experiment_name = args.get("experiment_name", env_or("MLFLOW_EXPERIMENT_NAME", ""));
  tracking.sync.run_name = args.get("run_name", "");
  if (args.has("registered_model_name")) tracking.sync.registered_model_name = c.registered_model_name;
  tracking.finish_wait_s = args.get_double("tracking_wait", tracking.finish_wait_s);
  DEBLUR_CHECK(std::isfinite(tracking.finish_wait_s) && tracking.finish_wait_s >= 0,
               "--tracking_wait must be a number of seconds, not negative");
  if (!tracking.tracking_uri.empty()) track::check_tracking_uri(tracking.tracking_uri);
  std::unique_ptr<track::Tracker> tracker;
  bool tracking_failed = false;
  const train::RunObserver observer = [&](const std::string& run_dir) {
    if (tracking.tracking_uri.empty() || tracking_failed) return;
    try {  // tracking must never end the training
      if (!tracker) tracker = std::make_unique<track::Tracker>(tracking, run_dir, print_line);
      tracker->notify();
    } catch (const std::exception& e) {
      tracking_failed = true;
      print_line(std::string("warning: MLflow tracking could not start, training goes on: ") +
                 e.what());
    }
  };
  train::TrainResult result;
  try {
    result = train::run_training(c, {}, observer);
  } catch (...) {
    if (tracker) tracker->finish();  // run.json says FAILED
    throw;
  }
  if (tracker) tracker->finish();
  if (result.interrupted) return 130;
  return 0;
}

}  // namespace deblur::cli
