// What the CUDA launchers need from the runtime, in one place: the block size, grid sizes, the
// launch on the current stream with its error check, and the multiprocessor count. (The device
// guard is taken once per op, in the op layer: csrc/ops/.)
//
// The tests' emulated-CUDA build (tests/emulated_cuda/) defines ROIOPS_EMULATE_CUDA and puts the
// emulator's header on the include path: the same names then run the kernels on host threads. The
// package never sees that header.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>

#ifdef ROIOPS_EMULATE_CUDA
#include "emulation.h"
#else
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#endif

namespace roiops {
namespace cuda {

// Threads per block of every roiops kernel: 8 warps, enough to hide a block's barrier waits, small
// enough for several resident blocks per multiprocessor at the kernels' register counts.
constexpr int kThreadsPerBlock = 256;

template <typename T>
__host__ __device__ __forceinline__ T ceil_div(T a, T b) {
  return (a + b - 1) / b;
}

// Grid size for element-wise kernels: one thread per element, capped at kMaxBlocks blocks (the
// hardware allows 2^31 - 1, but past a few waves more blocks only add scheduling). Every kernel
// launched with it must visit its elements through grid_stride() below, so that any n is covered.
// The emulated build caps the grid at a few blocks, so that the tests run the striding path.
#ifdef ROIOPS_EMULATE_CUDA
constexpr int64_t kMaxBlocks = emulation::kMaxGridBlocks;
#else
constexpr int64_t kMaxBlocks = int64_t{1} << 20;
#endif
inline unsigned elementwise_blocks(int64_t n) {
  return static_cast<unsigned>(
      std::max<int64_t>(1, std::min(ceil_div<int64_t>(n, kThreadsPerBlock), kMaxBlocks)));
}

// The indices of [0, n) that the calling thread owns in a grid-stride loop: its global index, then
// every grid size further on.   for (const int64_t i : cuda::grid_stride(n)) { ... }
struct GridStrideRange {
  struct Iterator {
    int64_t index, step;
    __device__ __forceinline__ int64_t operator*() const { return index; }
    __device__ __forceinline__ Iterator& operator++() {
      index += step;
      return *this;
    }
    __device__ __forceinline__ bool operator!=(const Iterator& end) const {
      return index < end.index;
    }
  };
  int64_t first, step, n;
  __device__ __forceinline__ Iterator begin() const { return {first, step}; }
  __device__ __forceinline__ Iterator end() const { return {n, step}; }
};

__device__ __forceinline__ GridStrideRange grid_stride(int64_t n) {
  return {static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x,
          static_cast<int64_t>(gridDim.x) * blockDim.x, n};
}

#ifdef ROIOPS_EMULATE_CUDA
inline int multiprocessor_count() { return emulation::kMultiprocessors; }
#else
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
// when emulated, the CPU key of the test-only library with the same schemas.
#ifdef ROIOPS_EMULATE_CUDA
#define ROIOPS_REGISTER_CUDA_KERNELS(m) TORCH_LIBRARY_IMPL(roiops_emulated_cuda, CPU, m)
#else
#define ROIOPS_REGISTER_CUDA_KERNELS(m) TORCH_LIBRARY_IMPL(roiops, CUDA, m)
#endif
