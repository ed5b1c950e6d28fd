// PyTorch fixtures for the tests: the safetensors files under tests/fixtures/ written by
// data_tools/make_fixtures.py, read into deblur Tensors.
#pragma once

#include <string>

#include "engine/safetensors.h"
#include "engine/tensor.h"
#include "layers/deblur_unet.h"

namespace deblur::testing {

// Reads DEBLUR_FIXTURE_DIR "/" file (DEBLUR_FIXTURE_DIR: a compile definition set by CMake)
// and records that path in metadata[kFixtureSourceKey] so later errors can name the file.
// Throws deblur::Error naming the path when it is missing or malformed.
inline constexpr const char* kFixtureSourceKey = "deblur.fixture_path";
SafetensorsFile load_fixture(const std::string& file);

// The named tensor as a Tensor on the CPU: rank 4 keeps its shape, rank 1 [n] becomes
// [n, 1, 1, 1] (a bias or GroupNorm parameter), rank 0 becomes [1, 1, 1, 1]; other ranks throw.
// Throws deblur::Error naming the file and the tensor when the tensor is absent.
Tensor fixture_tensor(const SafetensorsFile& file, const std::string& name);

// Sets every parameter to the unet.safetensors scheme: parameter k of state_dict order from
// fixture_uniform stream 1000 + k; conv weights and biases U(+-1/sqrt(fan_in)); GroupNorm
// weight 1 +- 0.2 and bias +- 0.2 (data_tools/make_fixtures.py documents it).
void load_fixture_weights(DeblurUNet& model);

}  // namespace deblur::testing
