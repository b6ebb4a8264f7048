#include "anchors.h"

#include <ATen/ATen.h>

#include "../common/limits.h"
#include "bind_kernel.h"

namespace roiops {

at::Tensor grid_anchors(GridAnchorsKernel kernel, const at::Tensor& cell_anchors,
                        at::IntArrayRef anchors_per_level, at::IntArrayRef grid_heights,
                        at::IntArrayRef grid_widths, at::IntArrayRef stride_heights,
                        at::IntArrayRef stride_widths, int64_t num_images) {
  const size_t num_levels = anchors_per_level.size();
  TORCH_CHECK_VALUE(num_levels > 0 && num_levels <= static_cast<size_t>(kMaxLevels),
                    "grid_anchors: expected 1 to ", kMaxLevels, " levels, got ", num_levels);
  TORCH_CHECK_VALUE(grid_heights.size() == num_levels && grid_widths.size() == num_levels &&
                        stride_heights.size() == num_levels && stride_widths.size() == num_levels,
                    "grid_anchors: anchors_per_level, grid sizes and strides must all have one "
                    "entry per level (",
                    num_levels, ")");
  TORCH_CHECK_VALUE(num_images >= 0, "grid_anchors: num_images must be non-negative, got ",
                    num_images);
  GridAnchorsArgs args{};
  anchor_math::AnchorLevels& lv = args.levels;
  lv.num_levels = static_cast<int>(num_levels);
  int64_t rows = 0, cells = 0;
  for (size_t l = 0; l < num_levels; ++l) {
    TORCH_CHECK_VALUE(anchors_per_level[l] >= 0 && grid_heights[l] >= 0 && grid_widths[l] >= 0,
                      "grid_anchors: anchor counts and grid sizes must be non-negative");
    lv.row_begin[l] = rows;
    lv.cell_begin[l] = cells;
    lv.anchors[l] = anchors_per_level[l];
    lv.grid_w[l] = grid_widths[l];
    lv.stride_h[l] = stride_heights[l];
    lv.stride_w[l] = stride_widths[l];
    rows += grid_heights[l] * grid_widths[l] * anchors_per_level[l];
    cells += anchors_per_level[l];
  }
  lv.row_begin[num_levels] = rows;
  TORCH_CHECK_VALUE(
      cell_anchors.dim() == 2 && cell_anchors.size(1) == 4 && cell_anchors.size(0) == cells,
      "grid_anchors: cell_anchors must be [", cells, ", 4], got shape ", cell_anchors.sizes());
  args.cell_anchors = cell_anchors.contiguous();
  args.rows = rows;
  args.num_images = num_images;
  at::Tensor anchors = at::empty({num_images, rows, 4}, args.cell_anchors.options());
  run_kernel(kernel, args, anchors);
  return anchors;
}

}  // namespace roiops
