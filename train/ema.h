// An exponential moving average of a DeblurUNet's weights (deblur train --ema DECAY): after every
// optimizer step, average += (1 - decay) * (weights - average), over the packed parameter slabs
// in one pass on the model's device (timm's ModelEmaV3, BasicSR's net_g_ema). With small batches
// the raw weights wander from step to step, most visibly in the output's overall colour; the
// average follows their trend over about 1 / (1 - decay) steps. Validation, best checkpoints and
// exported models use the average; the optimizer goes on stepping the raw weights.
//
// Checkpoint form: the average under the reference names (what deblur infer, export and PyTorch
// load), the raw weights as "optimizer.weights.<name>" (training state, skipped by model_weights
// as all "optimizer.*" tensors are).
#pragma once

#include <string>
#include <vector>

#include "engine/safetensors.h"
#include "layers/deblur_unet.h"

namespace deblur::train {

class WeightAverage {
 public:
  // Starts equal to `model`'s weights, on its device. decay in [0, 1).
  WeightAverage(DeblurUNet& model, double decay);

  // After an optimizer step: the average moves (1 - decay) of the way to the model's weights.
  void update();

  // The network holding the average (validate and save this one).
  DeblurUNet& average() { return average_; }

  // Checkpoint tensors: the average under the reference names, the raw weights under
  // "optimizer.weights.<name>".
  std::vector<TensorRecord> state();
  // Restores both from a checkpoint that state() wrote (errors name `source`).
  void load_state(const SafetensorsFile& file, const std::string& source);

 private:
  DeblurUNet& model_;
  DeblurUNet average_;
  float weight_;  // 1 - decay
};

// A checkpoint's "optimizer.weights.*" tensors (the raw weights of a run with --ema) under the
// reference names; empty for other checkpoints.
SafetensorsFile training_weights(const SafetensorsFile& checkpoint);

}  // namespace deblur::train
