// Block and DeblurUNet: registration in the reference module's order, and the forward pass.
#include "layers/deblur_unet.h"

#include <utility>
#include <vector>

#include "engine/check.h"
#include "engine/ops.h"

namespace deblur {

Block::Block(int64_t in_channels, int64_t out_channels, int groups)
    : conv1_(in_channels, out_channels, 3),
      norm1_(groups, out_channels),
      conv2_(out_channels, out_channels, 3),
      norm2_(groups, out_channels) {
  register_module("conv1", conv1_);
  register_module("norm1", norm1_);
  register_module("conv2", conv2_);
  register_module("norm2", norm2_);
}

Tensor Block::forward(const Tensor& x, const Tensor& out) const {
  // Without autograd nothing else holds a conv's output, so GroupNorm overwrites it in place and
  // the first half's result is dropped once the second conv has read it: two activations of
  // the block's size alive at most, not three (inference's peak memory).
  const bool in_place = !grad_enabled();
  Tensor h = conv1_.forward(x);
  h = norm1_.forward(h, /*fuse_relu=*/true, in_place ? h : Tensor());
  Tensor z = conv2_.forward(h);
  h = Tensor();
  return norm2_.forward(z, /*fuse_relu=*/true, out.defined() || !in_place ? out : z);
}

DeblurUNet::DeblurUNet(int64_t base, uint64_t seed)
    : base_(base),
      enc1_(3, base),
      enc2_(base, 2 * base),
      enc3_(2 * base, 4 * base),
      enc4_(4 * base, 8 * base),
      bottleneck_(8 * base, 16 * base),
      up4_(16 * base, 8 * base, 3),
      dec4_(16 * base, 8 * base),
      up3_(8 * base, 4 * base, 3),
      dec3_(8 * base, 4 * base),
      up2_(4 * base, 2 * base, 3),
      dec2_(4 * base, 2 * base),
      up1_(2 * base, base, 3),
      dec1_(2 * base, base),
      final_(base, 3, 1) {
  // The reference module's attribute order, which fixes the state_dict order.
  register_module("enc1", enc1_);
  register_module("enc2", enc2_);
  register_module("enc3", enc3_);
  register_module("enc4", enc4_);
  register_module("bottleneck", bottleneck_);
  register_module("up4", up4_);
  register_module("dec4", dec4_);
  register_module("up3", up3_);
  register_module("dec3", dec3_);
  register_module("up2", up2_);
  register_module("dec2", dec2_);
  register_module("up1", up1_);
  register_module("dec1", dec1_);
  register_module("final", final_);
  reset_parameters(seed);
  pack_parameters();
}

int64_t DeblurUNet::forward_macs(int64_t height, int64_t width) const {
  auto conv = [](int64_t cin, int64_t cout, int64_t k, int64_t pixels) {
    return cin * cout * k * k * pixels;
  };
  auto block = [&](int64_t cin, int64_t cout, int64_t pixels) {
    return conv(cin, cout, 3, pixels) + conv(cout, cout, 3, pixels);
  };
  int64_t macs = 0;
  int64_t c = base_;
  int64_t pixels = height * width;
  macs += block(3, c, pixels) + conv(c, 3, 1, pixels);          // enc1, final
  macs += block(2 * c, c, pixels) + conv(2 * c, c, 3, pixels);  // dec1, up1
  for (int level = 1; level < 4; ++level) {  // enc2..enc4 with dec2..dec4 and up2..up4
    pixels /= 4;
    macs += block(c, 2 * c, pixels) + block(4 * c, 2 * c, pixels) + conv(4 * c, 2 * c, 3, pixels);
    c *= 2;
  }
  macs += block(c, 2 * c, pixels / 4);  // bottleneck
  return macs;
}

Tensor DeblurUNet::up_concat(const Conv2d& conv, const Tensor& x, const Tensor& skip,
                             const Tensor& buffer) const {
  const int64_t up_c = conv.weight().n();
  Tensor u = upsample_conv2d(x, conv.weight(), conv.bias(), buffer.channel_slice(0, up_c));
  return concat_into(buffer, u, skip);
}

Tensor DeblurUNet::forward(const Tensor& x) const {
  DEBLUR_CHECK(x.c() == 3, "DeblurUNet: input ", x.shape().str(), " must have 3 channels");
  DEBLUR_CHECK(x.h() % 16 == 0 && x.w() % 16 == 0 && x.h() > 0 && x.w() > 0, "DeblurUNet: input ",
               x.shape().str(), " needs height and width that are multiples of 16");
  // The decoder's concat buffers come first, so that each encoder block writes its output (the
  // skip connection) straight into the upper half of the buffer its decoder reads, and the up
  // path's conv the lower half: no concat copies anything.
  std::vector<Tensor> cat;
  for (int level = 0; level < 4; ++level)
    cat.push_back(Tensor::empty({x.n(), 2 * (base_ << level), x.h() >> level, x.w() >> level},
                                x.device()));
  auto skip = [&](int level) {
    const int64_t half = cat[level].c() / 2;
    return cat[level].channel_slice(half, half);
  };
  Tensor e1 = enc1_.forward(x, skip(0));
  Tensor e2 = enc2_.forward(max_pool2d(e1), skip(1));
  Tensor e3 = enc3_.forward(max_pool2d(e2), skip(2));
  Tensor e4 = enc4_.forward(max_pool2d(e3), skip(3));
  Tensor b = bottleneck_.forward(max_pool2d(e4));
  // Each decoder level takes the level below's output, its skip and its buffer, and lets go of
  // each once done with it: without autograd the level below's output is freed before the
  // level's block runs, and the buffer with the skip when the level returns, so the top level
  // runs with no deeper level's memory alive.
  auto decode = [this](const Block& block, const Conv2d& up, Tensor low, Tensor encoded,
                       Tensor buffer) {
    const Tensor joined = up_concat(up, low, encoded, buffer);
    low = encoded = buffer = Tensor();
    return block.forward(joined);
  };
  Tensor d = decode(dec4_, up4_, std::move(b), std::move(e4), std::move(cat[3]));
  d = decode(dec3_, up3_, std::move(d), std::move(e3), std::move(cat[2]));
  d = decode(dec2_, up2_, std::move(d), std::move(e2), std::move(cat[1]));
  d = decode(dec1_, up1_, std::move(d), std::move(e1), std::move(cat[0]));
  return final_.forward(d);  // no activation; clamp to [-1, 1] only at inference
}

SafetensorsFile model_weights(const SafetensorsFile& file) {
  SafetensorsFile weights;
  weights.metadata = file.metadata;
  for (const TensorRecord& record : file.tensors)
    if (record.name.rfind("optimizer.", 0) != 0) weights.tensors.push_back(record);
  return weights;
}

std::unique_ptr<DeblurUNet> load_deblur_unet(const SafetensorsFile& file,
                                             const std::string& source) {
  const SafetensorsFile weights = model_weights(file);
  int64_t base = 32;
  if (const TensorRecord* first = weights.find("enc1.conv1.weight");
      first && first->shape.size() == 4 && first->shape[1] == 3) {
    base = first->shape[0];
    DEBLUR_CHECK(base >= 8 && base % 8 == 0, source, ": enc1.conv1.weight is ",
                 shape_string(first->shape), ", a width of ", base,
                 " channels; DeblurUNet needs a positive multiple of 8 (GroupNorm's 8 groups)");
  }
  auto model = std::make_unique<DeblurUNet>(base);
  model->load_state(weights, source);
  model->drop_gradients();  // every caller runs or saves the model; training builds its own
  return model;
}

std::unique_ptr<DeblurUNet> load_deblur_unet(const std::string& path) {
  return load_deblur_unet(read_safetensors(path), path);
}

}  // namespace deblur
