// The moving average of the weights (train/ema.h).
#include "train/ema.h"

#include <cmath>

#include "engine/check.h"
#include "engine/ops.h"

namespace deblur::train {

namespace {
constexpr const char* kRawPrefix = "optimizer.weights.";
}  // namespace

WeightAverage::WeightAverage(DeblurUNet& model, double decay)
    : model_(model), average_(model.base()), weight_(static_cast<float>(1.0 - decay)) {
  DEBLUR_CHECK(std::isfinite(decay) && decay >= 0.0 && decay < 1.0,
               "the weight average's decay must be in [0, 1), got ", decay);
  SafetensorsFile weights;
  weights.tensors = model_.state();
  average_.load_state(weights, "the model being trained");
  average_.to(model_.device());
}

void WeightAverage::update() {
  lerp(average_.parameter_values(), model_.parameter_values(), weight_);
}

std::vector<TensorRecord> WeightAverage::state() {
  std::vector<TensorRecord> records = average_.state();
  for (TensorRecord& raw : model_.state()) {
    raw.name = kRawPrefix + raw.name;
    records.push_back(std::move(raw));
  }
  return records;
}

void WeightAverage::load_state(const SafetensorsFile& file, const std::string& source) {
  const SafetensorsFile raw = training_weights(file);
  DEBLUR_CHECK(!raw.tensors.empty(), source, ": no '", kRawPrefix,
               "*' tensors (the weights the optimizer steps): not a checkpoint of a run with --ema");
  model_.load_state(raw, source);
  average_.load_state(model_weights(file), source);
}

SafetensorsFile training_weights(const SafetensorsFile& checkpoint) {
  SafetensorsFile raw;
  for (const TensorRecord& record : checkpoint.tensors)
    if (record.name.rfind(kRawPrefix, 0) == 0) {
      raw.tensors.push_back(record);
      raw.tensors.back().name.erase(0, std::string(kRawPrefix).size());
    }
  return raw;
}

}  // namespace deblur::train
