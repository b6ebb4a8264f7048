// Box coding (torchvision BoxCoder): decode_boxes, decode_clip_boxes and encode_boxes, the ops both
// backends plug into (bind_kernel.h). The formulas are box_math.h's.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/ArrayRef.h>

#include <optional>
#include <tuple>

#include "half_dispatch.h"

namespace roiops {

struct DecodeArgs {
  at::Tensor rel_codes;  // [N, 4k] floating point, contiguous
  at::Tensor boxes;      // [N, 4] reference boxes, rel_codes' dtype, contiguous
  double weights[4];
  double bbox_xform_clip;
  // decode_clip_boxes only: clip to (height, width) and flag boxes with both sides >= min_size.
  std::optional<std::pair<int64_t, int64_t>> image_size;
  double min_size;
};

struct EncodeArgs {
  at::Tensor reference_boxes;  // [N, 4] floating point, contiguous
  // [N, 4] contiguous, reference_boxes' dtype -- or float16 / bfloat16 with float32 reference boxes
  // (a model's anchors under autocast): read it through with_half_or<T> (half_dispatch.h).
  at::Tensor proposals;
  double weights[4];
};

// Fills boxes [N, 4k] and, for decode_clip_boxes (args.image_size set), keep [N, k] bool.
using DecodeKernel = void (*)(const DecodeArgs&, at::Tensor& boxes, at::Tensor* keep);
// Fills deltas [N, 4].
using EncodeKernel = void (*)(const EncodeArgs&, at::Tensor& deltas);

at::Tensor decode_boxes(DecodeKernel kernel, const at::Tensor& rel_codes, const at::Tensor& boxes,
                        at::ArrayRef<double> weights, double bbox_xform_clip);
std::tuple<at::Tensor, at::Tensor> decode_clip_boxes(DecodeKernel kernel,
                                                     const at::Tensor& rel_codes,
                                                     const at::Tensor& boxes,
                                                     at::ArrayRef<double> weights,
                                                     double bbox_xform_clip, int64_t image_height,
                                                     int64_t image_width, double min_size);
at::Tensor encode_boxes(EncodeKernel kernel, const at::Tensor& reference_boxes,
                        const at::Tensor& proposals, at::ArrayRef<double> weights);

}  // namespace roiops
