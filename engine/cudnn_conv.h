// conv2d on CUDA tensors through the vendor libraries: cuDNN for any kernel, and a cuBLAS GEMM
// path for the 1x1 convolution. `--conv-backend cudnn` (engine/conv_backend.h) routes the conv2d
// op here; tests use it as the reference for kernels/cuda/conv2d.cu and benchmarks as the
// baseline. Built only with DEBLUR_WITH_CUDNN (CMake found cuDNN and cuBLAS); in every other
// build (CPU-only, the simulator, CUDA without cuDNN) these functions exist but throw
// deblur::Error saying this build has no cuDNN, so callers need no #if.
//
// Semantics and argument order are those of kernels/cuda/conv2d.cuh (PyTorch's F.conv2d: cross-
// correlation, stride 1, zero padding k/2, weight OIHW, k = 1 or 3): backward_input assigns (=)
// grad_x; backward_params accumulates (+=) into grad_weight and grad_bias (cuDNN/cuBLAS beta = 1),
// each of which may be null. Views may be channel slices (batch_stride > C*H*W; strided tensor
// descriptors, strided GEMM batches), and channels outside a slice are left as they were.
//
// A true float32 reference: cuDNN runs with CUDNN_FMA_MATH and only algorithms that use no
// tensor cores (no TF32); cuBLAS with CUBLAS_DEFAULT_MATH, under which cublasSgemm never uses
// TF32. Algorithms come from cuDNN's heuristics (cudnnGetConvolution*Algorithm_v7, its first
// usable choice, as PyTorch's default), once per shape; the descriptors are cached per shape,
// workspaces come from the engine's caching allocator, and everything runs on the engine stream
// (cuda_stream()).
// Library failures throw deblur::Error with the call's text, file:line and the library's message.
#pragma once

#include "kernels/cpu/nchw.h"

namespace deblur::cudnn {

// Whether this build has the cuDNN/cuBLAS path.
bool available();

// Throws deblur::Error ("<who>: this build has no cuDNN (...)") unless available().
void require(const char* who);

// Opens cuBLAS now, if it is not open yet; throws deblur::Error naming the library where it
// cannot. The functions below open it on their first cuBLAS call, so a process that never takes
// the 1x1 GEMM path does not map cuBLAS (nor the ~150 MB of libcublasLt it brings) through this
// file; cuDNN's own engines may still load libcublasLt when they run.
void load_cublas();

// Which library runs a convolution. Auto is what the conv2d op uses: cuBLAS for 1x1 (a GEMM per
// sample: y[n] = W[O, I] * x[n][I, H*W]), cuDNN for 3x3. Cublas takes kernel 1 only.
enum class Library { Auto, Cudnn, Cublas };

// y.c is the number of output channels; bias may be null.
void conv2d_forward(cpu::NchwView<const float> x, const float* weight, const float* bias,
                    int kernel, cpu::NchwView<float> y, Library library = Library::Auto);

void conv2d_backward_input(cpu::NchwView<const float> grad_y, const float* weight, int kernel,
                           cpu::NchwView<float> grad_x, Library library = Library::Auto);

void conv2d_backward_params(cpu::NchwView<const float> x, cpu::NchwView<const float> grad_y,
                            int kernel, float* grad_weight, float* grad_bias,
                            Library library = Library::Auto);

}  // namespace deblur::cudnn
