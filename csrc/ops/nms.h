// NMS: the backend step _nms_greedy, the one op of the family that backends implement
// (bind_kernel.h). nms, batched_nms and batched_nms_padded are composite ops written once over ATen
// (nms.cpp).
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

namespace roiops {

struct NmsGreedyArgs {
  at::Tensor boxes;    // [B, N, 4] float/double contiguous; per row grouped by class, then by score
  at::Tensor classes;  // [B, N] int64 contiguous, ascending per row; undefined: one class per row
  double iou_threshold;
  int64_t max_keep;  // kept boxes per (row, class) segment; -1: no limit
};

// Sets keep[b, p] (bool, zeroed) for the boxes that survive; boxes with a negative class are
// padding: never kept, never suppressing.
using NmsGreedyKernel = void (*)(const NmsGreedyArgs&, at::Tensor& keep);

at::Tensor nms_greedy(NmsGreedyKernel kernel, const at::Tensor& boxes,
                      const std::optional<at::Tensor>& classes, double iou_threshold,
                      int64_t max_keep);

}  // namespace roiops
