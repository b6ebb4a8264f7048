// Anchor grids of all FPN levels in one call, on the CPU.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>

#include "../ops/anchors.h"
#include "../ops/bind_kernel.h"

namespace roiops {
namespace {

void grid_anchors_cpu(const GridAnchorsArgs& a, at::Tensor& out) {
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, a.cell_anchors.scalar_type(), "grid_anchors_cpu", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        const scalar_t* cells = a.cell_anchors.data_ptr<scalar_t>();
        scalar_t* o = out.data_ptr<scalar_t>();
        at::parallel_for(0, a.rows, 4096, [&](int64_t lo, int64_t hi) {
          for (int64_t r = lo; r < hi; ++r) {
            anchor_math::grid_anchor<scalar_t, acc_t>(a.levels, cells, r, o + 4 * r);
          }
        });
        for (int64_t b = 1; b < a.num_images; ++b) {
          std::copy(o, o + 4 * a.rows, o + 4 * a.rows * b);
        }
      });
}

}  // namespace

TORCH_LIBRARY_IMPL(roiops, CPU, m) {
  m.impl("grid_anchors", bind_kernel<&grid_anchors, &grid_anchors_cpu>);
}

}  // namespace roiops
