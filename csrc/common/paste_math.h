// Mask pasting (torchvision's paste_masks_in_image), written once for both backends.
//
// torchvision pads each M x M mask by `padding` zeros, grows its box by the same ratio
// (M + 2 * padding) / M around the box centre, truncates the grown box to integers, resizes the
// padded mask to the grown box's size with bilinear interpolation (F.interpolate,
// align_corners=False) and copies the part inside the image. Here the resize is evaluated only at
// the image pixels the mask lands on, reading the padding as zeros instead of materialising it.
#pragma once

#include <cstdint>

#include "exact_math.h"
#include "macros.h"

namespace roiops {
namespace paste_math {

// Where one mask lands: the grown, truncated box and the part of it inside the image.
struct PasteWindow {
  int64_t box_x1, box_y1;  // grown box corner; resized mask pixel (0, 0) lands here
  int64_t width, height;   // size the padded mask is resized to (at least 1)
  int64_t x0, y0, x1, y1;  // image pixels [y0, y1) x [x0, x1) that are written
};

// The truncation of a float to int64 as torch's .to(torch.int64) gives it, with NaN and values
// beyond +-2^60 (a broken box) clamped there -- far outside any image, and far enough from the
// int64 limits that the box's size cannot overflow.
template <typename B>
ROIOPS_HOST_DEVICE ROIOPS_INLINE int64_t truncate(B v) {
  constexpr int64_t kLimit = int64_t{1} << 60;
  if (!(v > -static_cast<B>(kLimit))) return -kLimit;  // also NaN
  if (v > static_cast<B>(kLimit)) return kLimit;
  return static_cast<int64_t>(v);
}

// torchvision's expand_boxes and paste_mask_in_image geometry, operation by operation in the boxes'
// dtype B (half precision ones, a model's detections under autocast, rounded at every step as
// torch's ops round them). `box` (x1, y1, x2, y2) is in image pixels; scale is (M + 2 * padding) /
// M, a Python float to torchvision: it enters in W, the type torch computes `tensor * scale` in.
template <typename B, typename W>
ROIOPS_HOST_DEVICE ROIOPS_INLINE PasteWindow paste_window(const B* box, W scale, int64_t image_h,
                                                          int64_t image_w) {
  const B half_w = static_cast<B>(mul_exact(W(mul_exact(box[2] - box[0], B(0.5))), scale));
  const B half_h = static_cast<B>(mul_exact(W(mul_exact(box[3] - box[1], B(0.5))), scale));
  const B centre_x = mul_exact(box[2] + box[0], B(0.5));
  const B centre_y = mul_exact(box[3] + box[1], B(0.5));
  PasteWindow w;
  w.box_x1 = truncate(W(centre_x - half_w));
  w.box_y1 = truncate(W(centre_y - half_h));
  const int64_t box_x2 = truncate(W(centre_x + half_w));
  const int64_t box_y2 = truncate(W(centre_y + half_h));
  const int64_t width = box_x2 - w.box_x1 + 1, height = box_y2 - w.box_y1 + 1;
  w.width = width > 1 ? width : 1;
  w.height = height > 1 ? height : 1;
  w.x0 = w.box_x1 > 0 ? w.box_x1 : 0;
  w.y0 = w.box_y1 > 0 ? w.box_y1 : 0;
  w.x1 = box_x2 + 1 < image_w ? box_x2 + 1 : image_w;
  w.y1 = box_y2 + 1 < image_h ? box_y2 + 1 : image_h;
  // torchvision slices the resized mask from (y0 - box_y1, x0 - box_x1); a window reaching past
  // the resized mask (an inverted box: height clamped to 1) is cut to it.
  if (w.x1 > w.box_x1 + w.width) w.x1 = w.box_x1 + w.width;
  if (w.y1 > w.box_y1 + w.height) w.y1 = w.box_y1 + w.height;
  return w;
}

// One axis of the bilinear resize of a padded mask of `padded` pixels to `size` pixels (ATen's
// upsample_bilinear2d, align_corners=False), in the accumulation type A: output pixel i reads
// padded pixels low and low + step with weights (1 - frac, frac).
template <typename A>
struct ResizeTap {
  int64_t low;
  int64_t step;  // 1, or 0 on the last pixel
  A frac;
};

template <typename A>
ROIOPS_HOST_DEVICE ROIOPS_INLINE ResizeTap<A> resize_tap(int64_t i, int64_t size, int64_t padded) {
  const A ratio = static_cast<A>(padded) / static_cast<A>(size);
  A source = mul_exact(ratio, static_cast<A>(i) + A(0.5)) - A(0.5);
  if (source < A(0)) source = A(0);
  ResizeTap<A> t;
  t.low = static_cast<int64_t>(source);
  t.step = t.low < padded - 1 ? 1 : 0;
  t.frac = source - static_cast<A>(t.low);
  return t;
}

// Pixel (y, x) of the padded mask: the mask itself inside, zero in the padding.
template <typename T, typename A>
ROIOPS_HOST_DEVICE ROIOPS_INLINE A padded_value(const T* mask, int64_t mask_h, int64_t mask_w,
                                                int64_t padding, int64_t y, int64_t x) {
  const int64_t my = y - padding, mx = x - padding;
  if (my < 0 || mx < 0 || my >= mask_h || mx >= mask_w) return A(0);
  return static_cast<A>(mask[my * mask_w + mx]);
}

// The resize is separable, in ATen's order: first along x within padded row y ...
template <typename T, typename A>
ROIOPS_HOST_DEVICE ROIOPS_INLINE A resized_row(const T* mask, int64_t mask_h, int64_t mask_w,
                                               int64_t padding, int64_t y, const ResizeTap<A>& tx) {
  const A left = padded_value<T, A>(mask, mask_h, mask_w, padding, y, tx.low);
  const A right = padded_value<T, A>(mask, mask_h, mask_w, padding, y, tx.low + tx.step);
  return mul_exact(A(1) - tx.frac, left) + mul_exact(tx.frac, right);
}

// ... then along y, between the rows ty.low (upper) and ty.low + ty.step (lower) of that pass.
template <typename A>
ROIOPS_HOST_DEVICE ROIOPS_INLINE A blend_rows(const ResizeTap<A>& ty, A upper, A lower) {
  return mul_exact(A(1) - ty.frac, upper) + mul_exact(ty.frac, lower);
}

// The resized padded mask at (ty, tx).
template <typename T, typename A>
ROIOPS_HOST_DEVICE ROIOPS_INLINE A resized_value(const T* mask, int64_t mask_h, int64_t mask_w,
                                                 int64_t padding, const ResizeTap<A>& ty,
                                                 const ResizeTap<A>& tx) {
  return blend_rows(ty, resized_row<T, A>(mask, mask_h, mask_w, padding, ty.low, tx),
                    resized_row<T, A>(mask, mask_h, mask_w, padding, ty.low + ty.step, tx));
}

}  // namespace paste_math
}  // namespace roiops
