// FPN level of every box, on CUDA: one thread per box, no host sync.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include "../assign_levels_args.h"
#include "../common/level_math.h"
#include "cuda_helpers.cuh"

namespace roiops {
namespace {

template <typename scalar_t>
__global__ void assign_levels_kernel(const scalar_t* __restrict__ boxes, int64_t num, int cols,
                                     scalar_t canonical_scale, scalar_t canonical_level,
                                     scalar_t eps, int64_t k_min, int64_t k_max,
                                     int64_t* __restrict__ levels) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= num) return;
  const scalar_t* box = boxes + i * cols + (cols - 4);
  levels[i] = level_math::fpn_level<scalar_t>(box[0], box[1], box[2], box[3], canonical_scale,
                                              canonical_level, eps, k_min, k_max);
}

at::Tensor assign_levels_cuda(const at::Tensor& boxes, int64_t k_min, int64_t k_max,
                              double canonical_scale, double canonical_level, double eps) {
  const at::Tensor b = check_assign_levels_args(boxes, k_min, k_max, canonical_scale);
  cuda::DeviceGuard device_guard(b.device());
  const int64_t num = b.size(0);
  at::Tensor levels = at::empty({num}, b.options().dtype(at::kLong));
  if (num == 0) return levels;
  constexpr int kThreads = 256;
  const unsigned blocks = static_cast<unsigned>(cuda::ceil_div<int64_t>(num, kThreads));
  AT_DISPATCH_FLOATING_TYPES(b.scalar_type(), "assign_levels_cuda", [&] {
    cuda::launch(assign_levels_kernel<scalar_t>, blocks, kThreads, b.data_ptr<scalar_t>(), num,
                 static_cast<int>(b.size(1)), static_cast<scalar_t>(canonical_scale),
                 static_cast<scalar_t>(canonical_level), static_cast<scalar_t>(eps), k_min, k_max,
                 levels.data_ptr<int64_t>());
  });
  return levels;
}

}  // namespace

ROIOPS_REGISTER_CUDA_KERNELS(m) { m.impl("assign_levels", &assign_levels_cuda); }

}  // namespace roiops
