// Anchor grids of all FPN levels (and all images) in one launch: a thread per output anchor.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "../ops/anchors.h"
#include "../ops/bind_kernel.h"
#include "cuda_helpers.cuh"

namespace roiops {
namespace {

template <typename scalar_t>
__global__ void grid_anchors_kernel(const anchor_math::AnchorLevels levels,
                                    const scalar_t* __restrict__ cells, int64_t rows,
                                    int64_t num_images, scalar_t* __restrict__ out) {
  for (const int64_t at : cuda::grid_stride(rows * num_images)) {
    anchor_math::grid_anchor<scalar_t, at::opmath_type<scalar_t>>(levels, cells, at % rows,
                                                                  out + 4 * at);
  }
}

void grid_anchors_cuda(const GridAnchorsArgs& a, at::Tensor& out) {
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, a.cell_anchors.scalar_type(), "grid_anchors_cuda", [&] {
        cuda::launch(grid_anchors_kernel<scalar_t>, cuda::elementwise_blocks(a.rows * a.num_images),
                     cuda::kThreadsPerBlock, a.levels, a.cell_anchors.data_ptr<scalar_t>(), a.rows,
                     a.num_images, out.data_ptr<scalar_t>());
      });
}

}  // namespace

ROIOPS_REGISTER_CUDA_KERNELS(m) {
  m.impl("grid_anchors", bind_kernel<&grid_anchors, &grid_anchors_cuda>);
}

}  // namespace roiops
