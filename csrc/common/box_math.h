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

// --- box_iou (torchvision.ops.box_iou, with its fmt argument and its type promotion) ---
// torchvision computes box corners and the intersection's sides (rb - lt) in the boxes' own type T,
// then "upcasts" (float for half precision, int32/int64 for integers) to W for the areas, the
// intersection and the union, and divides in R (float32 for integer boxes: true division).
// Rounding to T is spelled T(W(a) op W(b)): what torch's half arithmetic does, and the wrap-around
// of small integer types.

enum class BoxFormat : int { kXYXY = 0, kXYWH = 1, kCXCYWH = 2 };

template <typename T, typename W>
struct IouBox {
  T x1, y1, x2, y2;  // corners, in the boxes' type
  W area;
};

template <typename T, typename W>
ROIOPS_HOST_DEVICE ROIOPS_INLINE IouBox<T, W> iou_box(const T* b, BoxFormat fmt) {
  IouBox<T, W> r;
  if (fmt == BoxFormat::kXYXY) {
    r.x1 = b[0], r.y1 = b[1], r.x2 = b[2], r.y2 = b[3];
    r.area = mul_exact(W(b[2]) - W(b[0]), W(b[3]) - W(b[1]));
    return r;
  }
  if (fmt == BoxFormat::kXYWH) {
    r.x1 = b[0], r.y1 = b[1];
    r.x2 = static_cast<T>(W(b[0]) + W(b[2]));
    r.y2 = static_cast<T>(W(b[1]) + W(b[3]));
  } else {  // kCXCYWH: centre -/+ half the size, the half rounded to T first
    const W half_w = W(static_cast<T>(W(b[2]) / W(2)));
    const W half_h = W(static_cast<T>(W(b[3]) / W(2)));
    r.x1 = static_cast<T>(W(b[0]) - half_w), r.y1 = static_cast<T>(W(b[1]) - half_h);
    r.x2 = static_cast<T>(W(b[0]) + half_w), r.y2 = static_cast<T>(W(b[1]) + half_h);
  }
  r.area = mul_exact(W(b[2]), W(b[3]));
  return r;
}

// inter / (area_a + area_b - inter); NaN propagates (torch.max/min and clamp semantics).
template <typename T, typename W, typename R>
ROIOPS_HOST_DEVICE ROIOPS_INLINE R pair_iou(const IouBox<T, W>& a, const IouBox<T, W>& b) {
  const T side_x = static_cast<T>(nan_min(W(a.x2), W(b.x2)) - nan_max(W(a.x1), W(b.x1)));
  const T side_y = static_cast<T>(nan_min(W(a.y2), W(b.y2)) - nan_max(W(a.y1), W(b.y1)));
  const W inter = mul_exact(nan_max(W(side_x), W(0)), nan_max(W(side_y), W(0)));
  return static_cast<R>(inter) / static_cast<R>(a.area + b.area - inter);
}

// --- Box coding (Faster R-CNN parametrisation; torchvision BoxCoder) ---
// Decoding is split around the exponential: the CPU takes exp from ATen (so that its results are
// the very bits torch.exp gives torchvision), the GPU calls expf/exp in between.
// T is the boxes' dtype. For float16 / bfloat16 (a model under autocast) every operation rounds to
// T, as torchvision's tensor ops on such boxes do: c10::Half's operators compute in float and
// round, mul_exact rounds the exact product, and the Python numbers (the weights) enter in float.

template <typename T>
struct DecodeDeltas {
  T dx, dy, dw, dh;  // dw, dh clamped to bbox_xform_clip, before exp
};

// How torchvision's `rel_codes / w` rounds, w being a Python float: ATen's CPU kernel divides, its
// CUDA kernel multiplies by the reciprocal 1 / w (computed on the host in the opmath type W:
// BinaryDivTrueKernel.cu). The two differ by up to an ulp of dw, which exp(dw) * width stretches to
// several ulps of the box; each backend keeps the bits of torchvision on the same device.
enum class WeightDivision { kDivide, kMultiplyByReciprocal };

// `weights` holds (wx, wy, ww, wh) for kDivide, their reciprocals for kMultiplyByReciprocal, in
// W: T, or float for half precision T (ATen's opmath type, in which torch computes `tensor / w`).
template <WeightDivision kDivision, typename T, typename W>
ROIOPS_HOST_DEVICE ROIOPS_INLINE DecodeDeltas<T> decode_deltas(const T* code, const W* weights,
                                                               T clip) {
  T v[4];
  for (int c = 0; c < 4; ++c) {
    const W scaled = kDivision == WeightDivision::kDivide ? W(code[c]) / weights[c]
                                                          : mul_exact(W(code[c]), weights[c]);
    v[c] = static_cast<T>(scaled);
  }
  DecodeDeltas<T> d{v[0], v[1], v[2], v[3]};
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

// Proposals of dtype P may be half precision with float32 gt (T): an RPN's anchors under autocast.
// torchvision then computes the proposals' widths and centres in P, and the rest in T.
template <typename T, typename P = T>
ROIOPS_HOST_DEVICE ROIOPS_INLINE EncodeParts<T> encode_parts(const T* gt, const P* proposal,
                                                             const T* weights) {
  const P ex_w_p = proposal[2] - proposal[0];
  const P ex_h_p = proposal[3] - proposal[1];
  const T ex_w = static_cast<T>(ex_w_p);
  const T ex_h = static_cast<T>(ex_h_p);
  const T ex_ctr_x = static_cast<T>(proposal[0] + mul_exact(P(0.5), ex_w_p));
  const T ex_ctr_y = static_cast<T>(proposal[1] + mul_exact(P(0.5), ex_h_p));
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
