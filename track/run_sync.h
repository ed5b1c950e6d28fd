// A training run folder (train/trainer.h: params.json, metrics.csv, metrics.png, run.json and the
// checkpoints it names) sent to an MLflow tracking server. The folder is the record; the server
// gets a copy, step by step, and <run_dir>/mlflow.json says, per tracking URI, what has landed:
// the run's id, the params, each epoch's metrics, each artifact's size and time, the model
// version and the status. So a sync can stop anywhere (a server gone, a timeout, the process
// killed) and the next one, during training or from `deblur runs push`, sends only the rest.
//
// On the server the run gets:
//   tags       git commit, device, host, the run folder, mlflow.source.*; deblur.run_uid (a
//              random id made once, so a run whose creation answer was lost is found, not made
//              twice)
//   params     every entry of params.json (the training configuration), sent once: MLflow's
//              params are immutable, so a value changed since (a resumed run's --resume) is the
//              tag deblur.changed.<name>
//   metrics    per epoch, step = epoch, timestamp = metrics.csv's timestamp_ms: train_loss,
//              val_loss, psnr, ssim, lr, grad_norm, msssim_fallbacks, images_per_s, and
//              epoch_seconds, input_psnr, input_ssim
//   artifacts  params.json, metrics.csv, metrics.png, run.json whenever they change; once the
//              run has ended, checkpoints/<best checkpoint> and deblur_model/ (MLmodel with the
//              signature and a "deblur" flavor, and model.safetensors: the best weights, F32)
//   a model version of registered_model_name (source runs:/<run>/deblur_model), when the run
//              FINISHED and a name is given, tagged with the checkpoint, epoch, PSNR and SSIM
//   status     RUNNING while it runs, then FINISHED, KILLED or FAILED from run.json
#pragma once

#include <string>
#include <vector>

#include "track/mlflow_client.h"

namespace deblur::track {

// Empty fields take what mlflow.json saved for this server, else the defaults. A run that exists
// on the server keeps its experiment and run name.
struct SyncOptions {
  std::string experiment_name;        // default "deblur"
  std::string run_name;               // default: the run folder's name
  std::string registered_model_name;  // default: none (no model version)
};

class RunSync {
 public:
  // The options are saved in mlflow.json with the run, so a later push without them finishes
  // the same work (a model version still owed, say).
  RunSync(MlflowClient& client, std::string run_dir, SyncOptions options);

  // Sends what the folder holds and the server lacks, recording each step in mlflow.json as it
  // lands; one sync of a folder at a time (mlflow.json.lock). Throws MlflowError at the first
  // call that fails (MlflowClient::cancel() makes the call in flight fail), deblur::Error for
  // a bad run folder.
  void sync();

  // After a sync: whether the server has the whole run, its end included.
  bool complete() const { return complete_; }
  // After a sync: what it left out and why (a server that does not proxy artifacts, a best
  // checkpoint no longer where run.json says).
  const std::vector<std::string>& notes() const { return notes_; }
  // "run <id> in experiment '<name>' at <uri>", or "" before the run exists on the server.
  std::string describe() const;

 private:
  void send();

  MlflowClient& client_;
  std::string run_dir_;
  SyncOptions options_;
  bool complete_ = false;
  std::vector<std::string> notes_;
  std::string run_id_, experiment_id_;
};

}  // namespace deblur::track
