// conv2d through cuDNN (any kernel) and cuBLAS (1x1 as a GEMM): engine/cudnn_conv.h. Only a
// DEBLUR_WITH_CUDNN build has the bodies; every other build gets the stubs at the end, which
// throw.
#include "engine/cudnn_conv.h"

#include "engine/check.h"

#if defined(DEBLUR_WITH_CUDNN)

#include <cublas_v2.h>
#include <cudnn.h>
#include <dlfcn.h>

#include <climits>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "engine/cuda_allocator.h"

// Throw deblur::Error with the call's text, file:line and the library's message.
#define DEBLUR_CUDNN_CHECK(call)                                                             \
  do {                                                                                       \
    const cudnnStatus_t status_ = (call);                                                    \
    if (status_ != CUDNN_STATUS_SUCCESS)                                                     \
      throw ::deblur::Error(std::string(#call) + " failed at " __FILE__ ":" +                \
                            std::to_string(__LINE__) + ": " + cudnnGetErrorString(status_)); \
  } while (0)

#define DEBLUR_CUBLAS_CHECK(call)                                                             \
  do {                                                                                        \
    const cublasStatus_t status_ = (call);                                                    \
    if (status_ != CUBLAS_STATUS_SUCCESS)                                                     \
      throw ::deblur::Error(std::string(#call) + " failed at " __FILE__ ":" +                 \
                            std::to_string(__LINE__) + ": " + cublas().status_string(status_)); \
  } while (0)

// The name a cuBLAS entry point has in the library: cublas_v2.h maps some names to "_v2" ones
// with macros, which this expands.
#define DEBLUR_CUBLAS_SYMBOL_(name) #name
#define DEBLUR_CUBLAS_SYMBOL(name) DEBLUR_CUBLAS_SYMBOL_(name)

namespace deblur::cudnn {

namespace {

// cuBLAS, opened on first use (dlopen) rather than linked: the libcublasLt it needs is about
// 150 MB resident once mapped, and only the 1x1 path of this file calls cuBLAS. Found as a link
// would find it: by soname (the major version the headers are, through LD_LIBRARY_PATH, the
// binary's run path and the loader's cache, reusing a copy already loaded, so libcublas and
// libcublasLt come from one place), else the same version in the folder CMake found cuBLAS in
// (DEBLUR_CUBLAS_LIBRARY).
struct CublasApi {
  decltype(&cublasCreate) create;
  decltype(&cublasSetMathMode) set_math_mode;
  decltype(&cublasSetStream) set_stream;
  decltype(&cublasGetStatusString) status_string;
  decltype(&cublasSgemm) sgemm;
  decltype(&cublasSgemmStridedBatched) sgemm_strided_batched;
};

CublasApi open_cublas() {
  const std::string soname = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);
  const std::string found = DEBLUR_CUBLAS_LIBRARY;
  const std::string fallback = found.substr(0, found.rfind('/') + 1) + soname;
  std::string opened = soname;
  void* library = dlopen(soname.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!library) {
    const std::string soname_error = dlerror();
    opened = fallback;
    library = dlopen(fallback.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!library)
      throw Error(detail::concat("conv2d (cublas): cannot load cuBLAS: ", soname_error, "; ",
                                 dlerror()));
  }
  CublasApi api{};
  const auto bind = [&](auto& entry, const char* name) {
    entry = reinterpret_cast<std::remove_reference_t<decltype(entry)>>(dlsym(library, name));
    if (!entry) {
      dlclose(library);
      throw Error(detail::concat("conv2d (cublas): ", opened, " has no ", name));
    }
  };
  bind(api.create, DEBLUR_CUBLAS_SYMBOL(cublasCreate));
  bind(api.set_math_mode, DEBLUR_CUBLAS_SYMBOL(cublasSetMathMode));
  bind(api.set_stream, DEBLUR_CUBLAS_SYMBOL(cublasSetStream));
  bind(api.status_string, DEBLUR_CUBLAS_SYMBOL(cublasGetStatusString));
  bind(api.sgemm, DEBLUR_CUBLAS_SYMBOL(cublasSgemm));
  bind(api.sgemm_strided_batched, DEBLUR_CUBLAS_SYMBOL(cublasSgemmStridedBatched));
  return api;
}

// Opened once; a failure throws and the next call tries again.
const CublasApi& cublas() {
  static const CublasApi api = open_cublas();
  return api;
}

using ConstView = cpu::NchwView<const float>;
using View = cpu::NchwView<float>;

// An algorithm whose workspace exceeds this is passed over for the next one cuDNN ranks (some
// FFT algorithms ask for gigabytes on large images).
constexpr size_t kMaxWorkspaceBytes = size_t(1) << 30;

int to_int(int64_t value, const char* what) {
  DEBLUR_CHECK(value >= 0 && value <= INT_MAX, "conv2d (cudnn): ", what, " ", value,
               " does not fit the library's int");
  return static_cast<int>(value);
}

// One convolution shape: the input side (x, or grad_x), its batch stride, the output side's
// channels (y or grad_y, same N, H, W) and batch stride, and the kernel.
struct Key {
  int64_t n, c, h, w, x_stride, out_c, y_stride;
  int kernel;
  bool operator<(const Key& other) const {
    return std::tie(n, c, h, w, x_stride, out_c, y_stride, kernel) <
           std::tie(other.n, other.c, other.h, other.w, other.x_stride, other.out_c, other.y_stride,
                    other.kernel);
  }
};

// Descriptors of one shape, and the algorithm of each direction once it has been chosen.
struct Plan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr, bias = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  bool have_forward = false, have_data = false, have_filter = false;
  cudnnConvolutionFwdAlgo_t forward_algo{};
  cudnnConvolutionBwdDataAlgo_t data_algo{};
  cudnnConvolutionBwdFilterAlgo_t filter_algo{};
  size_t forward_bytes = 0, data_bytes = 0, filter_bytes = 0;

  explicit Plan(const Key& k) {
    DEBLUR_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x));
    DEBLUR_CUDNN_CHECK(cudnnCreateTensorDescriptor(&y));
    DEBLUR_CUDNN_CHECK(cudnnCreateTensorDescriptor(&bias));
    DEBLUR_CUDNN_CHECK(cudnnCreateFilterDescriptor(&w));
    DEBLUR_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv));
    const int n = to_int(k.n, "batch"), c = to_int(k.c, "channels"), h = to_int(k.h, "height"),
              wd = to_int(k.w, "width"), o = to_int(k.out_c, "output channels");
    const int plane = to_int(k.h * k.w, "plane");
    // Strided: a sample's C*H*W values are contiguous, samples lie batch_stride apart.
    DEBLUR_CUDNN_CHECK(cudnnSetTensor4dDescriptorEx(
        x, CUDNN_DATA_FLOAT, n, c, h, wd, to_int(k.x_stride, "batch stride"), plane, wd, 1));
    DEBLUR_CUDNN_CHECK(cudnnSetTensor4dDescriptorEx(
        y, CUDNN_DATA_FLOAT, n, o, h, wd, to_int(k.y_stride, "batch stride"), plane, wd, 1));
    DEBLUR_CUDNN_CHECK(
        cudnnSetTensor4dDescriptor(bias, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, o, 1, 1));
    DEBLUR_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, o, c,
                                                  k.kernel, k.kernel));
    const int pad = k.kernel / 2;
    DEBLUR_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(conv, pad, pad, 1, 1, 1, 1,
                                                       CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    // FMA only: no TF32 tensor cores (which CUDNN_DEFAULT_MATH allows for float on Ampere+).
    DEBLUR_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, CUDNN_FMA_MATH));
  }
  ~Plan() {
    cudnnDestroyConvolutionDescriptor(conv);
    cudnnDestroyFilterDescriptor(w);
    cudnnDestroyTensorDescriptor(bias);
    cudnnDestroyTensorDescriptor(y);
    cudnnDestroyTensorDescriptor(x);
  }
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
};

// The handles (made on first use) and the plans, behind one lock: a handle is not to be used
// from two threads at once.
struct State {
  std::mutex mutex;
  cudnnHandle_t cudnn = nullptr;
  cublasHandle_t cublas = nullptr;
  std::map<Key, std::unique_ptr<Plan>> plans;
};

// Never destroyed: destroying the handles at exit could run after the CUDA runtime has shut down.
State& state() {
  static State* const s = new State;
  return *s;
}

// The handles, bound to the engine stream. Called with the lock held.
cudnnHandle_t cudnn_handle(State& s) {
  if (!s.cudnn) DEBLUR_CUDNN_CHECK(cudnnCreate(&s.cudnn));
  DEBLUR_CUDNN_CHECK(cudnnSetStream(s.cudnn, cuda_stream()));
  return s.cudnn;
}

cublasHandle_t cublas_handle(State& s) {
  if (!s.cublas) {
    DEBLUR_CUBLAS_CHECK(cublas().create(&s.cublas));
    // Under the default math mode cublasSgemm computes in float32 (TF32 needs
    // CUBLAS_TF32_TENSOR_OP_MATH), and it is the fast mode: the fair GEMM baseline.
    DEBLUR_CUBLAS_CHECK(cublas().set_math_mode(s.cublas, CUBLAS_DEFAULT_MATH));
  }
  DEBLUR_CUBLAS_CHECK(cublas().set_stream(s.cublas, cuda_stream()));
  return s.cublas;
}

// Checks the shapes (x: the input side, y: the output side) and returns the cached plan.
Plan& plan_for(State& s, ConstView x, ConstView y, int kernel, const char* op) {
  DEBLUR_CHECK(kernel == 1 || kernel == 3, op, " (cudnn): kernel must be 1 or 3, got ", kernel);
  DEBLUR_CHECK(x.n == y.n && x.h == y.h && x.w == y.w, op, " (cudnn): input [", x.n, ", ", x.c,
               ", ", x.h, ", ", x.w, "] and output [", y.n, ", ", y.c, ", ", y.h, ", ", y.w,
               "] differ in batch or plane");
  DEBLUR_CHECK(x.batch_stride >= x.sample_size() && y.batch_stride >= y.sample_size(), op,
               " (cudnn): a batch stride is smaller than a sample");
  const Key key{x.n, x.c, x.h, x.w, x.batch_stride, y.c, y.batch_stride, kernel};
  auto found = s.plans.find(key);
  if (found == s.plans.end()) found = s.plans.emplace(key, std::make_unique<Plan>(key)).first;
  return *found->second;
}

bool tensor_core_math(cudnnMathType_t math) {
  return math == CUDNN_TENSOR_OP_MATH || math == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
}

// cuDNN's first-ranked usable algorithm (no tensor-core math, a workspace we accept): what
// PyTorch runs by default (cudnn.benchmark off), so the baseline is the one users see. It may
// be non-deterministic (atomics in some backward algorithms); the tests allow for that.
template <class Perf>
const Perf& pick(const std::vector<Perf>& ranked, int count, const char* op) {
  for (int i = 0; i < count; ++i) {
    const Perf& p = ranked[i];
    if (p.status == CUDNN_STATUS_SUCCESS && !tensor_core_math(p.mathType) &&
        p.memory <= kMaxWorkspaceBytes)
      return p;
  }
  throw Error(detail::concat(op, " (cudnn): cuDNN offers no float32 FMA algorithm for this shape"));
}

void choose_forward(cudnnHandle_t handle, Plan& p) {
  if (p.have_forward) return;
  int max_count = 0, count = 0;
  DEBLUR_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(handle, &max_count));
  std::vector<cudnnConvolutionFwdAlgoPerf_t> ranked(static_cast<size_t>(max_count));
  DEBLUR_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(handle, p.x, p.w, p.conv, p.y,
                                                            max_count, &count, ranked.data()));
  const auto& best = pick(ranked, count, "conv2d_forward");
  DEBLUR_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(handle, p.x, p.w, p.conv, p.y,
                                                             best.algo, &p.forward_bytes));
  p.forward_algo = best.algo;
  p.have_forward = true;
}

void choose_data(cudnnHandle_t handle, Plan& p) {
  if (p.have_data) return;
  int max_count = 0, count = 0;
  DEBLUR_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(handle, &max_count));
  std::vector<cudnnConvolutionBwdDataAlgoPerf_t> ranked(static_cast<size_t>(max_count));
  DEBLUR_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(handle, p.w, p.y, p.conv, p.x,
                                                                 max_count, &count, ranked.data()));
  const auto& best = pick(ranked, count, "conv2d_backward_input");
  DEBLUR_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(handle, p.w, p.y, p.conv, p.x,
                                                                  best.algo, &p.data_bytes));
  p.data_algo = best.algo;
  p.have_data = true;
}

void choose_filter(cudnnHandle_t handle, Plan& p) {
  if (p.have_filter) return;
  int max_count = 0, count = 0;
  DEBLUR_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(handle, &max_count));
  std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> ranked(static_cast<size_t>(max_count));
  DEBLUR_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
      handle, p.x, p.y, p.conv, p.w, max_count, &count, ranked.data()));
  const auto& best = pick(ranked, count, "conv2d_backward_params");
  DEBLUR_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(handle, p.x, p.y, p.conv, p.w,
                                                                    best.algo, &p.filter_bytes));
  p.filter_algo = best.algo;
  p.have_filter = true;
}

bool use_cublas(Library library, int kernel, const char* op) {
  DEBLUR_CHECK(library != Library::Cublas || kernel == 1, op,
               " (cublas): the GEMM path is for 1x1 convolutions, got kernel ", kernel);
  return library == Library::Cublas || (library == Library::Auto && kernel == 1);
}

bool empty(ConstView v) {
  return v.n == 0 || v.h == 0 || v.w == 0;
}

const float kOne = 1.0f, kZero = 0.0f;

}  // namespace

bool available() {
  return true;
}

void require(const char*) {}

void load_cublas() {
  cublas();
}

void conv2d_forward(ConstView x, const float* weight, const float* bias, int kernel, View y,
                    Library library) {
  State& s = state();
  const std::lock_guard<std::mutex> lock(s.mutex);
  Plan& p = plan_for(s, x, y, kernel, "conv2d_forward");
  if (empty(x)) return;
  cudnnHandle_t handle = cudnn_handle(s);
  if (use_cublas(library, kernel, "conv2d_forward")) {
    // Column-major, per sample: y[n] (HW x O) = x[n] (HW x I) * W^T (I x O); W is shared
    // (stride 0) and the samples lie batch_stride apart.
    const int plane = to_int(x.h * x.w, "plane");
    DEBLUR_CUBLAS_CHECK(cublas().sgemm_strided_batched(
        cublas_handle(s), CUBLAS_OP_N, CUBLAS_OP_N, plane, to_int(y.c, "channels"),
        to_int(x.c, "channels"), &kOne, x.data, plane, x.batch_stride, weight,
        to_int(x.c, "channels"), 0, &kZero, y.data, plane, y.batch_stride, to_int(x.n, "batch")));
  } else {
    choose_forward(handle, p);
    CudaWorkspace workspace(p.forward_bytes);
    DEBLUR_CUDNN_CHECK(cudnnConvolutionForward(handle, &kOne, p.x, x.data, p.w, weight, p.conv,
                                               p.forward_algo, workspace.data(), p.forward_bytes,
                                               &kZero, p.y, y.data));
  }
  // The bias broadcast over N, H and W, added in place.
  if (bias) DEBLUR_CUDNN_CHECK(cudnnAddTensor(handle, &kOne, p.bias, bias, &kOne, p.y, y.data));
}

void conv2d_backward_input(ConstView grad_y, const float* weight, int kernel, View grad_x,
                           Library library) {
  State& s = state();
  const std::lock_guard<std::mutex> lock(s.mutex);
  Plan& p = plan_for(s, grad_x, grad_y, kernel, "conv2d_backward_input");
  if (empty(grad_y)) return;
  if (use_cublas(library, kernel, "conv2d_backward_input")) {
    // Column-major, per sample: dx[n] (HW x I) = dy[n] (HW x O) * W (O x I); W's row-major
    // [O, I] reads as column-major I x O, hence op T.
    const int plane = to_int(grad_y.h * grad_y.w, "plane");
    DEBLUR_CUBLAS_CHECK(cublas().sgemm_strided_batched(
        cublas_handle(s), CUBLAS_OP_N, CUBLAS_OP_T, plane, to_int(grad_x.c, "channels"),
        to_int(grad_y.c, "channels"), &kOne, grad_y.data, plane, grad_y.batch_stride, weight,
        to_int(grad_x.c, "channels"), 0, &kZero, grad_x.data, plane, grad_x.batch_stride,
        to_int(grad_y.n, "batch")));
  } else {
    cudnnHandle_t handle = cudnn_handle(s);
    choose_data(handle, p);
    CudaWorkspace workspace(p.data_bytes);
    DEBLUR_CUDNN_CHECK(cudnnConvolutionBackwardData(handle, &kOne, p.w, weight, p.y, grad_y.data,
                                                    p.conv, p.data_algo, workspace.data(),
                                                    p.data_bytes, &kZero, p.x, grad_x.data));
  }
}

void conv2d_backward_params(ConstView x, ConstView grad_y, int kernel, float* grad_weight,
                            float* grad_bias, Library library) {
  State& s = state();
  const std::lock_guard<std::mutex> lock(s.mutex);
  Plan& p = plan_for(s, x, grad_y, kernel, "conv2d_backward_params");
  const bool gemm = use_cublas(library, kernel, "conv2d_backward_params");
  if (empty(x)) return;
  cudnnHandle_t handle = cudnn_handle(s);
  if (grad_weight && gemm) {
    // Column-major: dW^T (I x O, i.e. row-major dW [O, I]) += sum_n x[n]^T (I x HW) * dy[n]
    // (HW x O); the sum over samples is one GEMM per sample with beta = 1.
    cublasHandle_t blas = cublas_handle(s);
    const int plane = to_int(x.h * x.w, "plane"), in_c = to_int(x.c, "channels"),
              out_c = to_int(grad_y.c, "channels");
    for (int64_t n = 0; n < x.n; ++n)
      DEBLUR_CUBLAS_CHECK(cublas().sgemm(blas, CUBLAS_OP_T, CUBLAS_OP_N, in_c, out_c, plane, &kOne,
                                      x.sample(n), plane, grad_y.sample(n), plane, &kOne,
                                      grad_weight, in_c));
  } else if (grad_weight) {
    choose_filter(handle, p);
    CudaWorkspace workspace(p.filter_bytes);
    DEBLUR_CUDNN_CHECK(cudnnConvolutionBackwardFilter(handle, &kOne, p.x, x.data, p.y, grad_y.data,
                                                      p.conv, p.filter_algo, workspace.data(),
                                                      p.filter_bytes, &kOne, p.w, grad_weight));
  }
  // The bias gradient, a sum over N, H and W, added (beta = 1).
  if (grad_bias)
    DEBLUR_CUDNN_CHECK(
        cudnnConvolutionBackwardBias(handle, &kOne, p.y, grad_y.data, &kOne, p.bias, grad_bias));
}

}  // namespace deblur::cudnn

#else  // no cuDNN in this build: the entry points exist and say so.

namespace deblur::cudnn {

bool available() {
  return false;
}

void load_cublas() {
  require("load_cublas");
}

void require(const char* who) {
  throw Error(detail::concat(
      who,
      ": this build has no cuDNN (the cudnn conv backend needs a CUDA build that found cuDNN and "
      "cuBLAS: -DDEBLUR_CUDA=ON -DDEBLUR_CUDNN=ON, with -DCUDNN_ROOT=DIR if cuDNN is elsewhere); "
      "use --conv-backend native"));
}

void conv2d_forward(cpu::NchwView<const float>, const float*, const float*, int,
                    cpu::NchwView<float>, Library) {
  require("conv2d");
}

void conv2d_backward_input(cpu::NchwView<const float>, const float*, int, cpu::NchwView<float>,
                           Library) {
  require("conv2d backward");
}

void conv2d_backward_params(cpu::NchwView<const float>, cpu::NchwView<const float>, int, float*,
                            float*, Library) {
  require("conv2d backward");
}

}  // namespace deblur::cudnn

#endif
