// Argument checks of assign_levels, shared by its CPU and CUDA kernels.
#pragma once

#include <ATen/core/Tensor.h>

#include <cmath>

namespace roiops {

// Returns boxes [K, 4] or [K, 5] (leading batch index) contiguous, after checking the arguments.
inline at::Tensor check_assign_levels_args(const at::Tensor& boxes, int64_t k_min, int64_t k_max,
                                           double canonical_scale) {
  TORCH_CHECK_VALUE(boxes.dim() == 2 && (boxes.size(1) == 4 || boxes.size(1) == 5),
                    "assign_levels: boxes must be [K, 4] (x1, y1, x2, y2) or [K, 5] (batch_index, "
                    "x1, y1, x2, y2), got shape ",
                    boxes.sizes());
  TORCH_CHECK_TYPE(boxes.scalar_type() == at::kFloat || boxes.scalar_type() == at::kDouble,
                   "assign_levels: boxes must be float32 or float64, got ", boxes.scalar_type());
  TORCH_CHECK_VALUE(k_min <= k_max, "assign_levels: k_min must be <= k_max, got k_min=", k_min,
                    " and k_max=", k_max);
  TORCH_CHECK_VALUE(std::isfinite(canonical_scale) && canonical_scale > 0,
                    "assign_levels: canonical_scale must be a positive finite number, got ",
                    canonical_scale);
  return boxes.contiguous();
}

}  // namespace roiops
