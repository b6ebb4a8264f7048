// Packing of grid_anchors' per-level arguments, shared by the CPU and CUDA kernels (host code).
#pragma once

#include <c10/util/ArrayRef.h>

#include "common/anchor_math.h"

namespace roiops {

inline anchor_math::AnchorLevels make_anchor_levels(at::IntArrayRef anchors_per_level,
                                                    at::IntArrayRef grid_heights,
                                                    at::IntArrayRef grid_widths,
                                                    at::IntArrayRef stride_heights,
                                                    at::IntArrayRef stride_widths) {
  anchor_math::AnchorLevels lv{};
  lv.num_levels = static_cast<int>(anchors_per_level.size());
  int64_t rows = 0, cells = 0;
  for (int l = 0; l < lv.num_levels; ++l) {
    lv.row_begin[l] = rows;
    lv.cell_begin[l] = cells;
    lv.anchors[l] = anchors_per_level[l];
    lv.grid_w[l] = grid_widths[l];
    lv.stride_h[l] = stride_heights[l];
    lv.stride_w[l] = stride_widths[l];
    rows += grid_heights[l] * grid_widths[l] * anchors_per_level[l];
    cells += anchors_per_level[l];
  }
  lv.row_begin[lv.num_levels] = rows;
  return lv;
}

}  // namespace roiops
