// Procedural sharp images: what `deblur make-dataset --procedural N` draws when no photos are at
// hand (tests, smoke runs, a first look at the pipeline). Each is a smooth two-colour gradient
// under multi-octave value noise (texture at several scales), with random filled rectangles,
// discs and rings, thin lines and small checkerboards on top: hard edges of every orientation
// and width, which is what a deblurring network must learn to restore. Edges are antialiased
// (4x4 samples per pixel). A pure function of (width, height, seed).
#pragma once

#include <cstdint>

#include "infer/image.h"

namespace deblur::train {

// An 8-bit RGB width x height image.
Image procedural_image(int64_t width, int64_t height, uint64_t seed);

}  // namespace deblur::train
