// DeblurUNet: the seed's U-Net, with exactly the reference module's parameter names and shapes
// (../shared/reference/deblur_unet.py, 8,636,451 parameters, 82 tensors).
//
// Encoder 32-64-128-256, bottleneck 512; each Block is two (3x3 conv, GroupNorm(8), ReLU);
// 2x2 max-pool down; up: bilinear x2 upsample (align_corners=False), 3x3 conv halving the
// channels, concat [upsampled, skip], Block; final 1x1 conv to 3 channels, no activation.
// Input and output: [N, 3, H, W] in [-1, 1], H and W multiples of 16.
#pragma once

#include <memory>
#include <string>

#include "engine/safetensors.h"
#include "layers/conv2d.h"
#include "layers/group_norm.h"

namespace deblur {

class Block : public Module {
 public:
  Block(int64_t in_channels, int64_t out_channels, int groups = 8);
  // With `out` defined (a fresh [N, out_channels, H, W] view), the block writes its result
  // there: how an encoder block puts its skip straight into the decoder's concat buffer.
  Tensor forward(const Tensor& x, const Tensor& out = Tensor()) const;

 private:
  Conv2d conv1_;
  GroupNorm norm1_;
  Conv2d conv2_;
  GroupNorm norm2_;
};

class DeblurUNet : public Module {
 public:
  static constexpr int64_t kParameterCount = 8636451;

  // Parameters packed into slabs and initialised as PyTorch's defaults from `seed`.
  explicit DeblurUNet(int64_t base = 32, uint64_t seed = 0);
  Tensor forward(const Tensor& x) const;
  int64_t base() const { return base_; }  // first-level channels

  // Multiply-accumulates of one forward pass on a height x width image (convolutions only:
  // everything else is under 1% of the work).
  int64_t forward_macs(int64_t height, int64_t width) const;

 private:
  // cat([conv(upsample_bilinear2x(x)), skip]) on channels in `buffer` with nothing copied: the
  // fused upsample_conv2d writes the lower channels, the encoder already wrote `skip` (a view of
  // the upper ones), and concat_into joins the two for autograd.
  Tensor up_concat(const Conv2d& conv, const Tensor& x, const Tensor& skip,
                   const Tensor& buffer) const;

  int64_t base_;

  Block enc1_, enc2_, enc3_, enc4_, bottleneck_;
  Conv2d up4_;
  Block dec4_;
  Conv2d up3_;
  Block dec3_;
  Conv2d up2_;
  Block dec2_;
  Conv2d up1_;
  Block dec1_;
  Conv2d final_;
};

// A checkpoint's tensors without its optimizer state (those named "optimizer.*"): the weights.
SafetensorsFile model_weights(const SafetensorsFile& file);

// A DeblurUNet from a model file or a `deblur train` checkpoint: its width is read off
// enc1.conv1.weight ([base, 3, 3, 3]; 32 for the reference model), a checkpoint's optimizer
// state (tensors named "optimizer.*") is skipped, and every other tensor must match the
// reference names and shapes (the error lists each mismatch and names `source`). The model is
// for inference: it has no gradient slab (Module::drop_gradients).
std::unique_ptr<DeblurUNet> load_deblur_unet(const SafetensorsFile& file, const std::string& source);
std::unique_ptr<DeblurUNet> load_deblur_unet(const std::string& path);

}  // namespace deblur
