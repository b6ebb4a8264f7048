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
  const at::ScalarType dtype = boxes.scalar_type();
  TORCH_CHECK_TYPE(
      dtype == at::kFloat || dtype == at::kDouble || dtype == at::kHalf || dtype == at::kBFloat16,
      "assign_levels: boxes must be float32, float64, float16 or bfloat16, got ", dtype);
  TORCH_CHECK_VALUE(k_min <= k_max, "assign_levels: k_min must be <= k_max, got k_min=", k_min,
                    " and k_max=", k_max);
  TORCH_CHECK_VALUE(std::isfinite(canonical_scale) && canonical_scale > 0,
                    "assign_levels: canonical_scale must be a positive finite number, got ",
                    canonical_scale);
  // Half precision boxes (a model's proposals under autocast) are computed in float32, as
  // torchvision's LevelMapper computes them: its box_area upcasts them first (_upcast).
  const bool half = dtype == at::kHalf || dtype == at::kBFloat16;
  const AssignLevelsArgs args{half ? boxes.to(at::kFloat).contiguous() : boxes.contiguous(),
                              k_min,
                              k_max,
                              canonical_scale,
                              canonical_level,
                              eps};
  at::Tensor levels = at::empty({boxes.size(0)}, boxes.options().dtype(at::kLong));
  run_kernel(kernel, args, levels);
  return levels;
}

}  // namespace roiops
