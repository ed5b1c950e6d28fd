// CombinedLoss (train/loss.h).
#include "train/loss.h"

#include <cmath>

#include "engine/check.h"
#include "engine/ops.h"

namespace deblur::train {

LossTerms CombinedLoss::operator()(const Tensor& pred, const Tensor& target) {
  DEBLUR_CHECK(pred.shape() == target.shape(), "loss: prediction ", pred.shape().str(),
               " and target ", target.shape().str(), " differ");
  const Tensor p = clamp(pred, -1.0f, 1.0f);
  const Tensor t = clamp(target, -1.0f, 1.0f);
  LossTerms terms;
  Tensor structure;
  if (ms_ssim_supported(p.shape())) {
    const Tensor similarity = options_.seed_msssim
                                  ? ms_ssim(p, t, 2.0f)
                                  : ms_ssim(scale(p, 0.5f, 0.5f), scale(t, 0.5f, 0.5f), 1.0f);
    if (std::isfinite(similarity.item())) structure = scale(clamp(similarity, 0.0f, 1.0f), -1.0f, 1.0f);
  }
  if (!structure.defined()) {
    structure = l1_loss(p, t);
    terms.fell_back = true;
    ++fallbacks_;
  }
  terms.structure = structure;
  terms.charbonnier = charbonnier(p, t);
  terms.total = add(scale(structure, static_cast<float>(options_.alpha)),
                    scale(terms.charbonnier, static_cast<float>(options_.beta)));
  return terms;
}

}  // namespace deblur::train
