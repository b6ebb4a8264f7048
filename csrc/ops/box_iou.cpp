#include "box_iou.h"

#include <ATen/ATen.h>
#include <ATen/ExpandUtils.h>
#include <c10/core/DefaultDtype.h>
#include <c10/util/accumulate.h>

#include <string>
#include <vector>

#include "bind_kernel.h"

namespace roiops {
namespace {

box_math::BoxFormat parse_format(c10::string_view fmt) {
  if (fmt == "xyxy") return box_math::BoxFormat::kXYXY;
  if (fmt == "xywh") return box_math::BoxFormat::kXYWH;
  if (fmt == "cxcywh") return box_math::BoxFormat::kCXCYWH;
  TORCH_CHECK_NOT_IMPLEMENTED(fmt != "xywhr" && fmt != "cxcywhr" && fmt != "xyxyxyxy",
                              "box_iou: rotated boxes (fmt='", fmt,
                              "') are not implemented in roiops; use torchvision.ops.box_iou");
  TORCH_CHECK_VALUE(false, "box_iou: fmt must be 'xyxy', 'xywh' or 'cxcywh', got '", fmt, "'");
}

void check_boxes(const char* name, const char* rows, const at::Tensor& boxes) {
  TORCH_CHECK_VALUE(boxes.dim() >= 2 && boxes.size(-1) == 4, "box_iou: ", name, " must be [..., ",
                    rows, ", 4], got shape ", boxes.sizes());
  TORCH_CHECK_TYPE(!boxes.is_complex() && boxes.scalar_type() != at::kBool, "box_iou: ", name,
                   " must be a real (floating or integer) tensor, got ", boxes.scalar_type());
}

}  // namespace

at::Tensor box_iou(BoxIouKernel kernel, const at::Tensor& boxes1, const at::Tensor& boxes2,
                   c10::string_view fmt) {
  // The format first: rotated boxes ([..., 5] or [..., 8]) are refused for what they are.
  const box_math::BoxFormat format = parse_format(fmt);
  check_boxes("boxes1", "N", boxes1);
  check_boxes("boxes2", "M", boxes2);
  TORCH_CHECK(boxes2.device() == boxes1.device(), "box_iou: boxes2 is on ", boxes2.device(),
              " but boxes1 is on ", boxes1.device());
  // Leading dimensions broadcast, as torchvision's [..., N, None] against [..., None, M].
  const at::IntArrayRef batch1 = boxes1.sizes().slice(0, boxes1.dim() - 2);
  const at::IntArrayRef batch2 = boxes2.sizes().slice(0, boxes2.dim() - 2);
  const std::vector<int64_t> batch = at::infer_size(batch1, batch2);
  const int64_t n = boxes1.size(-2), m = boxes2.size(-2);
  // Mixed dtypes promote as torch promotes them. torchvision divides integer areas (and, in
  // cxcywh, halves integer sizes) by true division, into the default float dtype: under a float64
  // default, integer boxes are computed as float64 boxes -- the same numbers while the products
  // stay exact (below 2^53); under float32, cxcywh integer boxes are halved into float32 up front
  // (equal to torchvision's while the areas are exact in float32, below 2^24) and the others keep
  // integer areas and divide in float32.
  at::ScalarType type = at::result_type(boxes1, boxes2);
  if (at::isIntegralType(type, /*includeBool=*/false)) {
    if (c10::get_default_dtype_as_scalartype() == at::kDouble) {
      type = at::kDouble;
    } else if (format == box_math::BoxFormat::kCXCYWH) {
      type = at::kFloat;
    }
  }
  const int64_t batch_size = c10::multiply_integers(batch);
  auto flat = [&](const at::Tensor& b, int64_t rows) {
    std::vector<int64_t> shape(batch);
    shape.push_back(rows);
    shape.push_back(4);
    return b.to(type).expand(shape).reshape({batch_size, rows, 4}).contiguous();
  };
  const BoxIouArgs args{flat(boxes1, n), flat(boxes2, m), format};
  // float32 or float64 boxes give IoU in their dtype; half-precision and integer boxes float32 (as
  // torchvision under the default dtype): IouTypes<T>::R.
  const at::ScalarType result = type == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor iou = at::empty({batch_size, n, m}, boxes1.options().dtype(result));
  run_kernel(kernel, args, iou);
  std::vector<int64_t> shape(batch);
  shape.push_back(n);
  shape.push_back(m);
  return iou.view(shape);
}

}  // namespace roiops
