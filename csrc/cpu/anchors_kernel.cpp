// Anchor grids of all FPN levels in one call, on the CPU.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../anchor_levels.h"
#include "../box_ops_args.h"

namespace roiops {
namespace {

at::Tensor grid_anchors_cpu(const at::Tensor& cell_anchors, at::IntArrayRef anchors_per_level,
                            at::IntArrayRef grid_heights, at::IntArrayRef grid_widths,
                            at::IntArrayRef stride_heights, at::IntArrayRef stride_widths,
                            int64_t num_images) {
  check_grid_anchors_args(cell_anchors, anchors_per_level, grid_heights, grid_widths,
                          stride_heights, stride_widths, num_images);
  const anchor_math::AnchorLevels lv = make_anchor_levels(
      anchors_per_level, grid_heights, grid_widths, stride_heights, stride_widths);
  const int64_t rows = lv.row_begin[lv.num_levels];
  const at::Tensor cells = cell_anchors.contiguous();
  at::Tensor out = at::empty({num_images, rows, 4}, cells.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, cells.scalar_type(), "grid_anchors_cpu", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        const scalar_t* c = cells.data_ptr<scalar_t>();
        scalar_t* o = out.data_ptr<scalar_t>();
        at::parallel_for(0, rows, 4096, [&](int64_t lo, int64_t hi) {
          for (int64_t r = lo; r < hi; ++r)
            anchor_math::grid_anchor<scalar_t, acc_t>(lv, c, r, o + 4 * r);
        });
        for (int64_t b = 1; b < num_images;
             ++b) {  // every image gets its own copy, as in torchvision
          std::copy(o, o + 4 * rows, o + 4 * rows * b);
        }
      });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(roiops, CPU, m) { m.impl("grid_anchors", &grid_anchors_cpu); }

}  // namespace roiops
