// Small helpers shared by the CUDA kernels.
#pragma once

#include <cstdint>

namespace roiops {
namespace cuda {

template <typename T>
__host__ __device__ __forceinline__ T ceil_div(T a, T b) {
  return (a + b - 1) / b;
}

}  // namespace cuda
}  // namespace roiops
