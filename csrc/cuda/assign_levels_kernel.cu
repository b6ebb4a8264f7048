// FPN level of every box, on CUDA: a thread per box, no host sync.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include "../common/level_math.h"
#include "../ops/assign_levels.h"
#include "../ops/bind_kernel.h"
#include "cuda_helpers.cuh"

namespace roiops {
namespace {

template <typename scalar_t>
__global__ void assign_levels_kernel(const scalar_t* __restrict__ boxes, int64_t num, int cols,
                                     scalar_t canonical_scale, scalar_t canonical_level,
                                     scalar_t eps, int64_t k_min, int64_t k_max,
                                     int64_t* __restrict__ levels) {
  for (const int64_t i : cuda::grid_stride(num)) {
    const scalar_t* box = boxes + i * cols + (cols - 4);
    levels[i] = level_math::fpn_level<scalar_t>(box[0], box[1], box[2], box[3], canonical_scale,
                                                canonical_level, eps, k_min, k_max);
  }
}

void assign_levels_cuda(const AssignLevelsArgs& a, at::Tensor& levels) {
  const int64_t num = a.boxes.size(0);
  AT_DISPATCH_FLOATING_TYPES(a.boxes.scalar_type(), "assign_levels_cuda", [&] {
    cuda::launch(assign_levels_kernel<scalar_t>, cuda::elementwise_blocks(num),
                 cuda::kThreadsPerBlock, a.boxes.data_ptr<scalar_t>(), num,
                 static_cast<int>(a.boxes.size(1)), static_cast<scalar_t>(a.canonical_scale),
                 static_cast<scalar_t>(a.canonical_level), static_cast<scalar_t>(a.eps), a.k_min,
                 a.k_max, levels.data_ptr<int64_t>());
  });
}

}  // namespace

ROIOPS_REGISTER_CUDA_KERNELS(m) {
  m.impl("assign_levels", bind_kernel<&assign_levels, &assign_levels_cuda>);
}

}  // namespace roiops
