// DEBLUR_HD marks per-element math shared by the CPU and CUDA kernels: __host__ __device__
// under nvcc, plain inline functions under the host compiler.
#pragma once

#if defined(__CUDACC__)
#define DEBLUR_HD __host__ __device__ inline
#else
#define DEBLUR_HD inline
#endif
