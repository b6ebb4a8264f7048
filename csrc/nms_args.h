// Argument checks of the backend op _nms_greedy, shared by its CPU and CUDA kernels.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

namespace roiops {

// boxes [B, N, 4] float/double contiguous, grouped by class within each row and sorted by
// decreasing score within each class; classes [B, N] int64 (sorted ascending per row) or none.
// Returns classes contiguous, or an undefined tensor for "one class".
inline at::Tensor check_nms_greedy_args(const at::Tensor& boxes,
                                        const std::optional<at::Tensor>& classes) {
  TORCH_CHECK_VALUE(boxes.dim() == 3 && boxes.size(2) == 4 && boxes.is_contiguous(),
                    "_nms_greedy: boxes must be a contiguous [B, N, 4] tensor, got shape ",
                    boxes.sizes());
  TORCH_CHECK_TYPE(boxes.scalar_type() == at::kFloat || boxes.scalar_type() == at::kDouble,
                   "_nms_greedy: boxes must be float32 or float64, got ", boxes.scalar_type());
  if (!classes.has_value() || !classes->defined()) return at::Tensor();
  TORCH_CHECK_VALUE(
      classes->dim() == 2 && classes->size(0) == boxes.size(0) && classes->size(1) == boxes.size(1),
      "_nms_greedy: classes must be [B, N] like boxes, got shape ", classes->sizes());
  TORCH_CHECK_TYPE(classes->scalar_type() == at::kLong, "_nms_greedy: classes must be int64, got ",
                   classes->scalar_type());
  TORCH_CHECK(classes->device() == boxes.device(), "_nms_greedy: classes is on ", classes->device(),
              " but boxes is on ", boxes.device());
  return classes->contiguous();
}

}  // namespace roiops
