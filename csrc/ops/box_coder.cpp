#include "box_coder.h"

#include <ATen/ATen.h>

#include <cmath>

#include "bind_kernel.h"

namespace roiops {
namespace {

void check_box_dtype(const char* op, const char* name, const at::Tensor& t) {
  const at::ScalarType dtype = t.scalar_type();
  TORCH_CHECK_TYPE(
      dtype == at::kFloat || dtype == at::kDouble || dtype == at::kHalf || dtype == at::kBFloat16,
      op, ": ", name, " must be float32, float64, float16 or bfloat16, got ", dtype);
}

void copy_weights(const char* op, at::ArrayRef<double> weights, double* out) {
  TORCH_CHECK_VALUE(weights.size() == 4, op, ": weights must be 4 numbers (wx, wy, ww, wh), got ",
                    weights.size());
  for (size_t i = 0; i < 4; ++i) {
    TORCH_CHECK_VALUE(std::isfinite(weights[i]) && weights[i] != 0, op,
                      ": weights must be finite and non-zero, got ", weights);
    out[i] = weights[i];
  }
}

DecodeArgs prepare_decode(const char* op, const at::Tensor& rel_codes, const at::Tensor& boxes,
                          at::ArrayRef<double> weights, double bbox_xform_clip) {
  TORCH_CHECK_VALUE(
      rel_codes.dim() == 2 && rel_codes.size(1) % 4 == 0, op,
      ": rel_codes must be a 2-D tensor [N, 4 * k] of (dx, dy, dw, dh) per class, got shape ",
      rel_codes.sizes());
  TORCH_CHECK_VALUE(boxes.dim() == 2 && boxes.size(1) == 4 && boxes.size(0) == rel_codes.size(0),
                    op, ": boxes must be [N, 4] with N = ", rel_codes.size(0),
                    " (one reference box per row of rel_codes), got shape ", boxes.sizes());
  check_box_dtype(op, "rel_codes", rel_codes);
  TORCH_CHECK_TYPE(boxes.scalar_type() == rel_codes.scalar_type(), op,
                   ": boxes must have the dtype of rel_codes (", rel_codes.scalar_type(), "), got ",
                   boxes.scalar_type());
  TORCH_CHECK(boxes.device() == rel_codes.device(), op, ": boxes is on ", boxes.device(),
              " but rel_codes is on ", rel_codes.device());
  DecodeArgs args{rel_codes.contiguous(), boxes.contiguous(), {}, bbox_xform_clip, std::nullopt, 0};
  copy_weights(op, weights, args.weights);
  return args;
}

EncodeArgs prepare_encode(const at::Tensor& reference_boxes, const at::Tensor& proposals,
                          at::ArrayRef<double> weights) {
  constexpr const char* op = "encode_boxes";
  TORCH_CHECK_VALUE(reference_boxes.dim() == 2 && reference_boxes.size(1) == 4, op,
                    ": reference_boxes must be [N, 4], got shape ", reference_boxes.sizes());
  TORCH_CHECK_VALUE(proposals.sizes() == reference_boxes.sizes(), op,
                    ": proposals must have the shape of reference_boxes (", reference_boxes.sizes(),
                    "), got ", proposals.sizes());
  check_box_dtype(op, "reference_boxes", reference_boxes);
  const bool half_proposals =
      proposals.scalar_type() == at::kHalf || proposals.scalar_type() == at::kBFloat16;
  TORCH_CHECK_TYPE(
      proposals.scalar_type() == reference_boxes.scalar_type() ||
          (half_proposals && reference_boxes.scalar_type() == at::kFloat),
      op, ": proposals must have the dtype of reference_boxes (", reference_boxes.scalar_type(),
      "), or be float16 / bfloat16 beside float32 reference_boxes, got ", proposals.scalar_type());
  TORCH_CHECK(proposals.device() == reference_boxes.device(), op, ": proposals is on ",
              proposals.device(), " but reference_boxes is on ", reference_boxes.device());
  EncodeArgs args{reference_boxes.contiguous(), proposals.contiguous(), {}};
  copy_weights(op, weights, args.weights);
  return args;
}

}  // namespace

at::Tensor decode_boxes(DecodeKernel kernel, const at::Tensor& rel_codes, const at::Tensor& boxes,
                        at::ArrayRef<double> weights, double bbox_xform_clip) {
  const DecodeArgs args =
      prepare_decode("decode_boxes", rel_codes, boxes, weights, bbox_xform_clip);
  at::Tensor out = at::empty_like(args.rel_codes);
  run_kernel(kernel, args, out, static_cast<at::Tensor*>(nullptr));
  return out;
}

std::tuple<at::Tensor, at::Tensor> decode_clip_boxes(DecodeKernel kernel,
                                                     const at::Tensor& rel_codes,
                                                     const at::Tensor& boxes,
                                                     at::ArrayRef<double> weights,
                                                     double bbox_xform_clip, int64_t image_height,
                                                     int64_t image_width, double min_size) {
  DecodeArgs args = prepare_decode("decode_clip_boxes", rel_codes, boxes, weights, bbox_xform_clip);
  args.image_size = std::make_pair(image_height, image_width);
  args.min_size = min_size;
  at::Tensor out = at::empty_like(args.rel_codes);
  at::Tensor keep = at::empty({out.size(0), out.size(1) / 4}, out.options().dtype(at::kBool));
  run_kernel(kernel, args, out, &keep);
  return {out, keep};
}

at::Tensor encode_boxes(EncodeKernel kernel, const at::Tensor& reference_boxes,
                        const at::Tensor& proposals, at::ArrayRef<double> weights) {
  const EncodeArgs args = prepare_encode(reference_boxes, proposals, weights);
  at::Tensor out = at::empty({args.reference_boxes.size(0), 4}, args.reference_boxes.options());
  run_kernel(kernel, args, out);
  return out;
}

}  // namespace roiops
