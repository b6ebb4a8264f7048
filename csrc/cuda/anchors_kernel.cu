// Anchor grids of all FPN levels (and all images) in one launch: one thread per output anchor.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "../anchor_levels.h"
#include "../box_ops_args.h"
#include "cuda_helpers.cuh"

namespace roiops {
namespace {

template <typename scalar_t>
__global__ void grid_anchors_kernel(const anchor_math::AnchorLevels levels,
                                    const scalar_t* __restrict__ cells, int64_t rows,
                                    int64_t num_images, scalar_t* __restrict__ out) {
  const int64_t at = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (at >= rows * num_images) return;
  anchor_math::grid_anchor<scalar_t, at::opmath_type<scalar_t>>(levels, cells, at % rows,
                                                                out + 4 * at);
}

at::Tensor grid_anchors_cuda(const at::Tensor& cell_anchors, at::IntArrayRef anchors_per_level,
                             at::IntArrayRef grid_heights, at::IntArrayRef grid_widths,
                             at::IntArrayRef stride_heights, at::IntArrayRef stride_widths,
                             int64_t num_images) {
  check_grid_anchors_args(cell_anchors, anchors_per_level, grid_heights, grid_widths,
                          stride_heights, stride_widths, num_images);
  cuda::DeviceGuard device_guard(cell_anchors.device());
  const anchor_math::AnchorLevels lv = make_anchor_levels(
      anchors_per_level, grid_heights, grid_widths, stride_heights, stride_widths);
  const int64_t rows = lv.row_begin[lv.num_levels];
  const at::Tensor cells = cell_anchors.contiguous();
  at::Tensor out = at::empty({num_images, rows, 4}, cells.options());
  if (out.numel() == 0) return out;
  const unsigned blocks = static_cast<unsigned>(cuda::ceil_div<int64_t>(rows * num_images, 256));
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, cells.scalar_type(), "grid_anchors_cuda", [&] {
        cuda::launch(grid_anchors_kernel<scalar_t>, blocks, 256, lv, cells.data_ptr<scalar_t>(),
                     rows, num_images, out.data_ptr<scalar_t>());
      });
  return out;
}

}  // namespace

ROIOPS_REGISTER_CUDA_KERNELS(m) { m.impl("grid_anchors", &grid_anchors_cuda); }

}  // namespace roiops
