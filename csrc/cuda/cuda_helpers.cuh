// What the CUDA launchers need from the runtime, in one place: the device guard, the launch on the
// current stream with its error check, and the multiprocessor count. With ROIOPS_EMULATE_CUDA the
// same names run the kernels on host threads (emulation.h), which is how the tests run these
// kernels on machines without a GPU.
#pragma once

#include <cstdint>
#include <utility>

#ifdef ROIOPS_EMULATE_CUDA
#include "emulation.h"
#else
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#endif

namespace roiops {
namespace cuda {

template <typename T>
__host__ __device__ __forceinline__ T ceil_div(T a, T b) {
  return (a + b - 1) / b;
}

#ifdef ROIOPS_EMULATE_CUDA
using DeviceGuard = emulation::DeviceGuard;
inline int multiprocessor_count() { return emulation::kMultiprocessors; }
#else
using DeviceGuard = c10::cuda::CUDAGuard;
inline int multiprocessor_count() {
  return at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
}
#endif

// kernel<<<grid, block, 0, current stream>>>(args...), then the launch error check.
template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, Args&&... args) {
#ifdef ROIOPS_EMULATE_CUDA
  emulation::launch(grid, block, [&] { kernel(args...); });
#else
  // clang-format off
  kernel<<<grid, block, 0, at::cuda::getCurrentCUDAStream()>>>(std::forward<Args>(args)...);
  // clang-format on
  C10_CUDA_KERNEL_LAUNCH_CHECK();
#endif
}

}  // namespace cuda
}  // namespace roiops

// Where a kernel file registers its launchers: the CUDA dispatch key of the roiops library, or,
// when emulated, the CPU key of a test-only library with the same schemas (tests/emulated_cuda/).
#ifdef ROIOPS_EMULATE_CUDA
#define ROIOPS_REGISTER_CUDA_KERNELS(m) TORCH_LIBRARY_IMPL(roiops_emulated_cuda, CPU, m)
#else
#define ROIOPS_REGISTER_CUDA_KERNELS(m) TORCH_LIBRARY_IMPL(roiops, CUDA, m)
#endif
