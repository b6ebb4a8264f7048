// Box arithmetic shared by the CPU and CUDA kernels: IoU (NMS and box_iou), box coding, anchors.
//
// Each formula reproduces torchvision's operation order, with products that are never fused into
// FMAs (exact_math.h): torchvision's elementwise ops never fuse, so neither may the CUDA kernels.
#pragma once

#include <math.h>

#include <cstdint>

#include "exact_math.h"
#include "macros.h"

namespace roiops {
namespace box_math {

// std::max / std::min semantics: (a < b) ? b : a. With NaN the FIRST argument wins, as in
// torchvision's CPU NMS, where `a` is the box already kept.
template <typename T>
ROIOPS_HOST_DEVICE ROIOPS_INLINE T first_max(T a, T b) {
  return a < b ? b : a;
}
template <typename T>
ROIOPS_HOST_DEVICE ROIOPS_INLINE T first_min(T a, T b) {
  return b < a ? b : a;
}

// torch.maximum / torch.minimum / clamp semantics: NaN propagates.
template <typename T>
ROIOPS_HOST_DEVICE ROIOPS_INLINE T nan_max(T a, T b) {
  return (a != a || a > b) ? a : b;
}
template <typename T>
ROIOPS_HOST_DEVICE ROIOPS_INLINE T nan_min(T a, T b) {
  return (a != a || a < b) ? a : b;
}

// (x2 - x1) * (y2 - y1), no +1 (torchvision's box_area). Negative for inverted boxes.
template <typename T>
ROIOPS_HOST_DEVICE ROIOPS_INLINE T box_area(const T* b) {
  return mul_exact(b[2] - b[0], b[3] - b[1]);
}

// NMS suppression test, torchvision's CPU kernel operation for operation: `kept` suppresses
// `other` when IoU > threshold (strict), compared in double as torchvision compares. Boxes with
// x2 < x1 get a zero-width intersection; NaN coordinates never suppress (NaN > t is false).
template <typename T>
ROIOPS_HOST_DEVICE ROIOPS_INLINE bool iou_above(const T* kept, T kept_area, const T* other,
                                                T other_area, double threshold) {
  const T xx1 = first_max(kept[0], other[0]);
  const T yy1 = first_max(kept[1], other[1]);
  const T xx2 = first_min(kept[2], other[2]);
  const T yy2 = first_min(kept[3], other[3]);
  const T w = first_max(T(0), xx2 - xx1);
  const T h = first_max(T(0), yy2 - yy1);
  const T inter = mul_exact(w, h);
  const T iou = inter / (kept_area + other_area - inter);
  return static_cast<double>(iou) > threshold;
}

// torchvision.ops.box_iou for one pair: inter / (area1 + area2 - inter), NaN propagating.
template <typename T>
ROIOPS_HOST_DEVICE ROIOPS_INLINE T pair_iou(const T* a, T area_a, const T* b, T area_b) {
  const T w = nan_max(nan_min(a[2], b[2]) - nan_max(a[0], b[0]), T(0));
  const T h = nan_max(nan_min(a[3], b[3]) - nan_max(a[1], b[1]), T(0));
  const T inter = mul_exact(w, h);
  return inter / (area_a + area_b - inter);
}

// --- Box coding (Faster R-CNN parametrisation; torchvision BoxCoder) ---
// Decoding is split around the exponential: the CPU takes exp from ATen (so that its results are
// the very bits torch.exp gives torchvision), the GPU calls expf/exp in between.

template <typename T>
struct DecodeDeltas {
  T dx, dy, dw, dh;  // dw, dh clamped to bbox_xform_clip, before exp
};

template <typename T>
ROIOPS_HOST_DEVICE ROIOPS_INLINE DecodeDeltas<T> decode_deltas(const T* code, const T* weights,
                                                               T clip) {
  DecodeDeltas<T> d;
  d.dx = code[0] / weights[0];
  d.dy = code[1] / weights[1];
  d.dw = code[2] / weights[2];
  d.dh = code[3] / weights[3];
  d.dw = nan_min(d.dw, clip);  // torch.clamp(max=clip): NaN stays NaN
  d.dh = nan_min(d.dh, clip);
  return d;
}

// Decoded box from the reference box, the deltas and exp(dw), exp(dh).
template <typename T>
ROIOPS_HOST_DEVICE ROIOPS_INLINE void decode_box(const T* ref, T dx, T dy, T exp_dw, T exp_dh,
                                                 T* out) {
  const T width = ref[2] - ref[0];
  const T height = ref[3] - ref[1];
  const T ctr_x = ref[0] + mul_exact(T(0.5), width);
  const T ctr_y = ref[1] + mul_exact(T(0.5), height);
  const T pred_ctr_x = mul_exact(dx, width) + ctr_x;
  const T pred_ctr_y = mul_exact(dy, height) + ctr_y;
  const T half_w = mul_exact(T(0.5), mul_exact(exp_dw, width));
  const T half_h = mul_exact(T(0.5), mul_exact(exp_dh, height));
  out[0] = pred_ctr_x - half_w;
  out[1] = pred_ctr_y - half_h;
  out[2] = pred_ctr_x + half_w;
  out[3] = pred_ctr_y + half_h;
}

// torchvision's clip_boxes_to_image: x to [0, width], y to [0, height] (clamp: NaN stays NaN).
template <typename T>
ROIOPS_HOST_DEVICE ROIOPS_INLINE void clip_box(T* b, T height, T width) {
  b[0] = nan_min(nan_max(b[0], T(0)), width);
  b[1] = nan_min(nan_max(b[1], T(0)), height);
  b[2] = nan_min(nan_max(b[2], T(0)), width);
  b[3] = nan_min(nan_max(b[3], T(0)), height);
}

// torchvision's remove_small_boxes test: both sides at least min_size (NaN sides fail).
template <typename T>
ROIOPS_HOST_DEVICE ROIOPS_INLINE bool sides_at_least(const T* b, T min_size) {
  return (b[2] - b[0] >= min_size) && (b[3] - b[1] >= min_size);
}

// Encoding, up to the logarithms: dx, dy and the ratios whose log (times ww, wh) are dw, dh.
template <typename T>
struct EncodeParts {
  T dx, dy, width_ratio, height_ratio;
};

template <typename T>
ROIOPS_HOST_DEVICE ROIOPS_INLINE EncodeParts<T> encode_parts(const T* gt, const T* proposal,
                                                             const T* weights) {
  const T ex_w = proposal[2] - proposal[0];
  const T ex_h = proposal[3] - proposal[1];
  const T ex_ctr_x = proposal[0] + mul_exact(T(0.5), ex_w);
  const T ex_ctr_y = proposal[1] + mul_exact(T(0.5), ex_h);
  const T gt_w = gt[2] - gt[0];
  const T gt_h = gt[3] - gt[1];
  const T gt_ctr_x = gt[0] + mul_exact(T(0.5), gt_w);
  const T gt_ctr_y = gt[1] + mul_exact(T(0.5), gt_h);
  EncodeParts<T> e;
  e.dx = mul_exact(weights[0], gt_ctr_x - ex_ctr_x) / ex_w;
  e.dy = mul_exact(weights[1], gt_ctr_y - ex_ctr_y) / ex_h;
  e.width_ratio = gt_w / ex_w;
  e.height_ratio = gt_h / ex_h;
  return e;
}

}  // namespace box_math
}  // namespace roiops
