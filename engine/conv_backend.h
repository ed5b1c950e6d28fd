// Which implementation runs conv2d on CUDA tensors: our kernels (kernels/cuda/conv2d.cu, the
// default) or cuDNN, the reference our kernels are tested and benchmarked against. A process-wide
// setting, chosen once at start-up (`--conv-backend native|cudnn`); CPU tensors ignore it.
#pragma once

#include <string>

namespace deblur {

enum class ConvBackend { Native, Cudnn };

void set_conv_backend(ConvBackend backend);
ConvBackend conv_backend();

// "native" or "cudnn"; parse_conv_backend throws deblur::Error naming the bad value.
const char* conv_backend_name(ConvBackend backend);
ConvBackend parse_conv_backend(const std::string& name);

}  // namespace deblur
