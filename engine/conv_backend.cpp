// The process-wide conv backend setting (engine/conv_backend.h).
#include "engine/conv_backend.h"

#include <atomic>

#include "engine/check.h"

namespace deblur {

namespace {
std::atomic<ConvBackend> g_conv_backend{ConvBackend::Native};
}  // namespace

void set_conv_backend(ConvBackend backend) {
  g_conv_backend.store(backend);
}

ConvBackend conv_backend() {
  return g_conv_backend.load();
}

const char* conv_backend_name(ConvBackend backend) {
  return backend == ConvBackend::Cudnn ? "cudnn" : "native";
}

ConvBackend parse_conv_backend(const std::string& name) {
  if (name == "native") return ConvBackend::Native;
  if (name == "cudnn") return ConvBackend::Cudnn;
  throw Error(detail::concat("conv backend must be native or cudnn, got '", name, "'"));
}

}  // namespace deblur
