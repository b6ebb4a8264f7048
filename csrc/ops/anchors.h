// grid_anchors: the anchors of every FPN level and image in one op (torchvision AnchorGenerator's
// grid_anchors), the op both backends plug into (bind_kernel.h). The formula is anchor_math.h's.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/ArrayRef.h>

#include "../common/anchor_math.h"

namespace roiops {

struct GridAnchorsArgs {
  at::Tensor cell_anchors;  // [sum_l A_l, 4] contiguous
  anchor_math::AnchorLevels levels;
  int64_t rows;  // anchors per image: sum_l H_l * W_l * A_l
  int64_t num_images;
};

// Fills anchors [num_images, rows, 4]; every image gets its own copy, as in torchvision.
using GridAnchorsKernel = void (*)(const GridAnchorsArgs&, at::Tensor& anchors);

at::Tensor grid_anchors(GridAnchorsKernel kernel, const at::Tensor& cell_anchors,
                        at::IntArrayRef anchors_per_level, at::IntArrayRef grid_heights,
                        at::IntArrayRef grid_widths, at::IntArrayRef stride_heights,
                        at::IntArrayRef stride_widths, int64_t num_images);

}  // namespace roiops
