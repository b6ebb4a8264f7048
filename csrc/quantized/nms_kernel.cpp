// NMS of quantized boxes and scores (QuantizedCPU), as torchvision's: on the raw integers, as
// float32. Per-tensor quantization maps every coordinate by the same affine function, which IoU
// does not see (the zero point cancels in every difference, the scale in the ratio), and which
// keeps the order of the scores.

#include <ATen/ATen.h>
#include <torch/library.h>

#include "../ops/library.h"

namespace roiops {
namespace {

at::Tensor as_float_values(const at::Tensor& t) {
  return t.is_quantized() ? t.int_repr().to(at::kFloat) : t;
}

at::Tensor nms_quantized(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  static const auto nms = find_op<at::Tensor(const at::Tensor&, const at::Tensor&, double)>("nms");
  return nms.call(as_float_values(boxes), as_float_values(scores), iou_threshold);
}

}  // namespace

TORCH_LIBRARY_IMPL(roiops, QuantizedCPU, m) { m.impl("nms", &nms_quantized); }

}  // namespace roiops
