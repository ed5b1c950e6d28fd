// Synthetic camera-shake blur: what --synthetic_blur does to each sharp patch on the fly, and
// what `deblur make-dataset` writes, so every epoch can see new blur.
//
// The model of Boracchi and Foi ("Modeling the performance of image restoration from motion
// blur", IEEE TIP 2012), as DeblurGAN's generator uses it: a camera-shake trajectory is a random
// walk of a point whose velocity keeps its inertia, takes a Gaussian kick and, now and then, an
// impulsive jerk, and is pulled back towards the start (a hand holds the camera). The exposure
// covers a random portion of the trajectory; the blur kernel is the time the point spends at
// each position (bilinear splatting onto a grid), normalised to sum 1 and centred on its
// centroid, so the blurry image is not shifted against the sharp one. As GoPro's blurry frames
// average consecutive sharp frames of light, the kernel is applied to linear intensities (the
// patch's [0, 1] values to the power 2.2, and back), with reflected borders. Then Gaussian sensor
// noise. Every draw comes from one seed.
#pragma once

#include <cstdint>
#include <vector>

namespace deblur::train {

struct BlurKernel {
  int64_t size = 1;            // odd; the kernel is size x size
  std::vector<float> weights;  // row-major, sum 1
};

// A camera-shake kernel of at most max_size x max_size (odd, >= 3) from `seed`.
BlurKernel camera_shake_kernel(uint64_t seed, int64_t max_size);

// blur = shake(sharp) + noise for a [3, height, width] image in [-1, 1], with a kernel of at
// most max_kernel x max_kernel (odd, >= 3); the noise's standard deviation is drawn in
// [0, 0.01] of the [0, 1] range.
void apply_camera_shake(const float* sharp, float* blur, int64_t width, int64_t height,
                        int64_t max_kernel, uint64_t seed);

// apply_camera_shake on one [3, patch, patch] patch in [-1, 1] (SynthesizeBlur's
// signature, train/loader.h). The largest kernel is make-dataset's default, 31, as patches are
// crops of photos at the validation images' scale and should see their blur; patches under 124
// pixels get at most a quarter of their side.
void synthesize_camera_shake(const float* sharp, float* blur, int64_t patch, uint64_t seed);

}  // namespace deblur::train
