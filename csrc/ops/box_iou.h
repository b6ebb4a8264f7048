// box_iou: pairwise IoU (torchvision.ops.box_iou), the op both backends plug into (bind_kernel.h).
#pragma once

#include <ATen/core/Tensor.h>

namespace roiops {

struct BoxIouArgs {
  at::Tensor boxes1;  // [N, 4] float/double contiguous
  at::Tensor boxes2;  // [M, 4], boxes1's dtype, contiguous
};

// Fills iou [N, M].
using BoxIouKernel = void (*)(const BoxIouArgs&, at::Tensor& iou);

at::Tensor box_iou(BoxIouKernel kernel, const at::Tensor& boxes1, const at::Tensor& boxes2);

}  // namespace roiops
