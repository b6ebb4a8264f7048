// assign_levels: the FPN level of every box (level_math.h), the op both backends plug into
// (bind_kernel.h).
#pragma once

#include <ATen/core/Tensor.h>

namespace roiops {

struct AssignLevelsArgs {
  at::Tensor boxes;  // [K, 4] (x1, y1, x2, y2) or [K, 5] (batch_index first), contiguous
  int64_t k_min, k_max;
  double canonical_scale, canonical_level, eps;
};

// Fills levels [K] int64.
using AssignLevelsKernel = void (*)(const AssignLevelsArgs&, at::Tensor& levels);

at::Tensor assign_levels(AssignLevelsKernel kernel, const at::Tensor& boxes, int64_t k_min,
                         int64_t k_max, double canonical_scale, double canonical_level, double eps);

}  // namespace roiops
