// Anchor grid (torchvision AnchorGenerator.grid_anchors), shared by both backends: anchor a of grid
// cell (y, x) on level l is cell_anchor[a] shifted by (x * stride_w, y * stride_h); rows ordered
// (level, y, x, a).
#pragma once

#include <cstdint>

#include "limits.h"
#include "macros.h"

namespace roiops {
namespace anchor_math {

struct AnchorLevels {
  int64_t row_begin[kMaxLevels + 1];  // first output row of each level; [num_levels] = total
  int64_t cell_begin[kMaxLevels];     // first cell anchor of each level
  int64_t anchors[kMaxLevels];        // A_l
  int64_t grid_w[kMaxLevels];
  int64_t stride_h[kMaxLevels];
  int64_t stride_w[kMaxLevels];
  int num_levels;
};

// Writes anchor `row` (of all levels) to out[0..3]. torchvision adds int64 shifts to the cell
// anchors in the anchors' dtype; `acc_t` is the arithmetic type of that addition.
template <typename scalar_t, typename acc_t>
ROIOPS_HOST_DEVICE ROIOPS_INLINE void grid_anchor(const AnchorLevels& lv, const scalar_t* cells,
                                                  int64_t row, scalar_t* out) {
  int l = 0;
  while (l + 1 < lv.num_levels && row >= lv.row_begin[l + 1]) ++l;
  const int64_t r = row - lv.row_begin[l];
  const int64_t a = r % lv.anchors[l];
  const int64_t cell = r / lv.anchors[l];
  const int64_t x = cell % lv.grid_w[l];
  const int64_t y = cell / lv.grid_w[l];
  const acc_t sx = static_cast<acc_t>(static_cast<scalar_t>(x * lv.stride_w[l]));
  const acc_t sy = static_cast<acc_t>(static_cast<scalar_t>(y * lv.stride_h[l]));
  const scalar_t* base = cells + 4 * (lv.cell_begin[l] + a);
  out[0] = static_cast<scalar_t>(sx + static_cast<acc_t>(base[0]));
  out[1] = static_cast<scalar_t>(sy + static_cast<acc_t>(base[1]));
  out[2] = static_cast<scalar_t>(sx + static_cast<acc_t>(base[2]));
  out[3] = static_cast<scalar_t>(sy + static_cast<acc_t>(base[3]));
}

}  // namespace anchor_math
}  // namespace roiops
