// The C API (infer/deblur.h) on top of DeblurUNet::load_state and Predictor: argument checks,
// strided RGB8 rows to and from Image, per-call thread count, and every exception turned into a
// return code and a thread-local message.
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>

#include "engine/check.h"
#include "infer/deblur.h"
#include "infer/image_io.h"
#include "infer/predictor.h"
#include "kernels/cpu/parallel.h"
#include "layers/deblur_unet.h"

// Read-only after load: runs share it without locks, which relies on DeblurUNet::forward keeping
// no mutable state of its own (tests/test_c_api.cpp runs one model from several threads).
struct deblur_model {
  std::unique_ptr<deblur::DeblurUNet> net;
};

namespace {

thread_local std::string g_message;
thread_local const char* g_error = "";

void set_error(const char* message) noexcept {
  try {
    g_message = message;
    g_error = g_message.c_str();
  } catch (...) {
    g_error = "out of memory (while recording an error message)";
  }
}

// Runs fn, turning any exception into set_error("<function>: <what>") and `failed`.
template <class Result, class Fn>
Result guarded(const char* function, Result failed, Fn&& fn) noexcept {
  set_error("");
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    set_error((std::string(function) + ": out of memory").c_str());
  } catch (const std::exception& e) {
    try {
      set_error((std::string(function) + ": " + e.what()).c_str());
    } catch (...) {
      set_error(e.what());
    }
  } catch (...) {
    set_error("unknown error");
  }
  return failed;
}

// Sets the calling thread's CPU thread count for one call (OpenMP keeps it per thread, so
// concurrent calls do not see each other's) and restores it afterwards.
class ThreadCountScope {
 public:
  explicit ThreadCountScope(int threads)
      : previous_(deblur::cpu::num_threads()), changed_(threads > 0) {
    if (changed_) deblur::cpu::set_num_threads(threads);
  }
  ~ThreadCountScope() {
    if (changed_) deblur::cpu::set_num_threads(previous_);
  }
  ThreadCountScope(const ThreadCountScope&) = delete;
  ThreadCountScope& operator=(const ThreadCountScope&) = delete;

 private:
  int previous_;
  bool changed_;
};

// The row pitch a stride argument means: 0 packs rows; otherwise at least one row of pixels.
int64_t row_pitch(int stride_bytes, int64_t row_bytes, const char* name) {
  DEBLUR_CHECK(stride_bytes == 0 || stride_bytes >= row_bytes, name, " is ", stride_bytes,
               ", below the ", row_bytes, " bytes of a row (3 * width), and not 0 (packed)");
  return stride_bytes == 0 ? row_bytes : stride_bytes;
}

}  // namespace

extern "C" {

deblur_options deblur_default_options(void) {
  const deblur::TileOptions tiles;
  deblur_options options;
  options.tile = static_cast<int>(tiles.tile);
  options.overlap = static_cast<int>(tiles.overlap);
  options.threads = 0;
  return options;
}

deblur_model* deblur_model_load(const char* path) {
  return guarded("deblur_model_load", static_cast<deblur_model*>(nullptr), [&] {
    DEBLUR_CHECK(path, "the path is NULL");
    auto model = std::make_unique<deblur_model>();
    model->net = deblur::load_deblur_unet(std::string(path));
    return model.release();
  });
}

int deblur_run_rgb8(deblur_model* model, const unsigned char* rgb, int width, int height,
                    int stride_bytes, unsigned char* out_rgb, int out_stride_bytes,
                    const deblur_options* options) {
  return guarded("deblur_run_rgb8", 1, [&] {
    DEBLUR_CHECK(model, "the model is NULL");
    DEBLUR_CHECK(rgb, "the input image is NULL");
    DEBLUR_CHECK(out_rgb, "the output image is NULL");
    DEBLUR_CHECK(width > 0 && height > 0, "the image is ", width, "x", height,
                 " (both sides must be positive)");
    DEBLUR_CHECK(int64_t{width} * height <= deblur::kDefaultMaxPixels, "the image is ", width,
                 "x", height, ", over the limit of ", deblur::kDefaultMaxPixels, " pixels");
    const deblur_options opts = options ? *options : deblur_default_options();
    DEBLUR_CHECK(opts.threads >= 0, "options.threads is ", opts.threads,
                 " (0 for the default, or a positive count)");
    const int64_t row_bytes = int64_t{3} * width;
    const int64_t in_pitch = row_pitch(stride_bytes, row_bytes, "stride_bytes");
    const int64_t out_pitch = row_pitch(out_stride_bytes, row_bytes, "out_stride_bytes");

    ThreadCountScope threads(opts.threads);
    // Checks tile and overlap before any pixel is copied.
    const deblur::Predictor predictor(*model->net, {opts.tile, opts.overlap});

    // The whole input is copied out before any output is written, which makes in-place safe.
    deblur::Image in = deblur::make_image(width, height, 3, 8);
    for (int64_t y = 0; y < height; ++y)
      std::memcpy(in.data8.data() + y * row_bytes, rgb + y * in_pitch, size_t(row_bytes));
    const deblur::Image out = predictor.run(in);
    for (int64_t y = 0; y < height; ++y)
      std::memcpy(out_rgb + y * out_pitch, out.data8.data() + y * row_bytes, size_t(row_bytes));
    return 0;
  });
}

void deblur_model_free(deblur_model* model) {
  delete model;
}

const char* deblur_last_error(void) {
  return g_error;
}

const char* deblur_version(void) {
  return DEBLUR_VERSION_STRING;
}

}  // extern "C"
