#include "assign_levels.h"

#include <ATen/ATen.h>

#include <cmath>

#include "bind_kernel.h"

namespace roiops {

at::Tensor assign_levels(AssignLevelsKernel kernel, const at::Tensor& boxes, int64_t k_min,
                         int64_t k_max, double canonical_scale, double canonical_level,
                         double eps) {
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
  const AssignLevelsArgs args{boxes.contiguous(), k_min,           k_max,
                              canonical_scale,    canonical_level, eps};
  at::Tensor levels = at::empty({boxes.size(0)}, boxes.options().dtype(at::kLong));
  run_kernel(kernel, args, levels);
  return levels;
}

}  // namespace roiops
