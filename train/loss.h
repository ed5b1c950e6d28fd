// The training loss, as ../shared/BRIEF.md defines it (the seed's CombinedLoss, corrected):
//   alpha * (1 - clamp(MS-SSIM, 0, 1)) + beta * Charbonnier(eps 1e-3)
// with prediction and target clamped to [-1, 1] first. MS-SSIM runs on the images mapped to
// [0, 1] with data_range 1: on the seed's [-1, 1] inputs with data_range 2 the luminance term
// collapses near grey (two near-grey patches score 0 with zero gradient), which pytorch_msssim's
// README warns of; seed_msssim restores the seed's form for comparison. Where MS-SSIM cannot be
// computed (a side of 160 pixels or less, or a non-finite value) the term falls back to L1, as
// the seed's except branch does, and the fallback is counted.
#pragma once

#include <cstdint>

#include "engine/tensor.h"

namespace deblur::train {

struct LossOptions {
  double alpha = 0.84;       // MS-SSIM term's weight
  double beta = 0.16;        // Charbonnier term's weight
  bool seed_msssim = false;  // MS-SSIM on [-1, 1] with data_range 2, as the seed
};

struct LossTerms {
  // [1, 1, 1, 1] each, on the inputs' device; reading one (item()) waits for the device.
  Tensor total;             // differentiable
  Tensor structure;         // the first term before alpha: 1 - clamp(MS-SSIM) or the L1 fallback
  Tensor charbonnier;
  bool fell_back = false;   // the first term is L1
};

class CombinedLoss {
 public:
  explicit CombinedLoss(LossOptions options = {}) : options_(options) {}
  // pred and target: [n, 3, h, w] on one device. Reads the MS-SSIM value back to decide on the
  // fallback (a device sync on CUDA), nothing else.
  LossTerms operator()(const Tensor& pred, const Tensor& target);
  int64_t fallbacks() const { return fallbacks_; }
  const LossOptions& options() const { return options_; }

 private:
  LossOptions options_;
  int64_t fallbacks_ = 0;
};

}  // namespace deblur::train
