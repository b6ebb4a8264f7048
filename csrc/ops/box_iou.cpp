#include "box_iou.h"

#include <ATen/ATen.h>

#include "bind_kernel.h"

namespace roiops {
namespace {

BoxIouArgs prepare_box_iou(const at::Tensor& boxes1, const at::Tensor& boxes2) {
  TORCH_CHECK_VALUE(boxes1.dim() == 2 && boxes1.size(1) == 4,
                    "box_iou: boxes1 must be [N, 4], got shape ", boxes1.sizes());
  TORCH_CHECK_VALUE(boxes2.dim() == 2 && boxes2.size(1) == 4,
                    "box_iou: boxes2 must be [M, 4], got shape ", boxes2.sizes());
  TORCH_CHECK_TYPE(boxes1.scalar_type() == at::kFloat || boxes1.scalar_type() == at::kDouble,
                   "box_iou: boxes1 must be float32 or float64 (roiops.* upcasts half precision), "
                   "got ",
                   boxes1.scalar_type());
  TORCH_CHECK_TYPE(boxes2.scalar_type() == boxes1.scalar_type(),
                   "box_iou: boxes2 must have the dtype of boxes1 (", boxes1.scalar_type(),
                   "), got ", boxes2.scalar_type());
  TORCH_CHECK(boxes2.device() == boxes1.device(), "box_iou: boxes2 is on ", boxes2.device(),
              " but boxes1 is on ", boxes1.device());
  return {boxes1.contiguous(), boxes2.contiguous()};
}

}  // namespace

at::Tensor box_iou(BoxIouKernel kernel, const at::Tensor& boxes1, const at::Tensor& boxes2) {
  const BoxIouArgs args = prepare_box_iou(boxes1, boxes2);
  at::Tensor iou = at::empty({args.boxes1.size(0), args.boxes2.size(0)}, args.boxes1.options());
  run_kernel(kernel, args, iou);
  return iou;
}

}  // namespace roiops
