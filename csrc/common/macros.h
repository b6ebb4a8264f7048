// Portability macros for math shared by the CPU (.cpp, compiled by the host compiler) and the CUDA
// (.cu, compiled by nvcc) backends. One header of scalar math, compiled twice, means the CPU tests
// exercise exactly the arithmetic the GPU kernels run.
#pragma once

#if defined(__CUDACC__)
#define ROIOPS_HOST_DEVICE __host__ __device__
#define ROIOPS_INLINE __forceinline__
#else
#define ROIOPS_HOST_DEVICE
#define ROIOPS_INLINE inline
#endif
