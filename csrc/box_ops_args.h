// Argument checks of the box ops (box coding, box_iou, anchors), shared by their CPU and CUDA
// kernels.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/ArrayRef.h>

#include <cmath>

namespace roiops {

inline void check_box_dtype(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK_TYPE(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, op, ": ", name,
                   " must be float32 or float64 (roiops.* upcasts half precision), got ",
                   t.scalar_type());
}

inline void check_weights(const char* op, at::ArrayRef<double> weights) {
  TORCH_CHECK_VALUE(weights.size() == 4, op, ": weights must be 4 numbers (wx, wy, ww, wh), got ",
                    weights.size());
  for (double w : weights) {
    TORCH_CHECK_VALUE(std::isfinite(w) && w != 0, op, ": weights must be finite and non-zero, got ",
                      weights);
  }
}

// rel_codes [N, 4k] against reference boxes [N, 4].
inline void check_decode_args(const char* op, const at::Tensor& rel_codes, const at::Tensor& boxes,
                              at::ArrayRef<double> weights) {
  TORCH_CHECK_VALUE(
      rel_codes.dim() == 2 && rel_codes.size(1) % 4 == 0, op,
      ": rel_codes must be a 2-D tensor [N, 4 * k] of (dx, dy, dw, dh) per class, got "
      "shape ",
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
  check_weights(op, weights);
}

inline void check_encode_args(const char* op, const at::Tensor& reference_boxes,
                              const at::Tensor& proposals, at::ArrayRef<double> weights) {
  TORCH_CHECK_VALUE(reference_boxes.dim() == 2 && reference_boxes.size(1) == 4, op,
                    ": reference_boxes must be [N, 4], got shape ", reference_boxes.sizes());
  TORCH_CHECK_VALUE(proposals.sizes() == reference_boxes.sizes(), op,
                    ": proposals must have the shape of reference_boxes (", reference_boxes.sizes(),
                    "), got ", proposals.sizes());
  check_box_dtype(op, "reference_boxes", reference_boxes);
  TORCH_CHECK_TYPE(proposals.scalar_type() == reference_boxes.scalar_type(), op,
                   ": proposals must have the dtype of reference_boxes (",
                   reference_boxes.scalar_type(), "), got ", proposals.scalar_type());
  TORCH_CHECK(proposals.device() == reference_boxes.device(), op, ": proposals is on ",
              proposals.device(), " but reference_boxes is on ", reference_boxes.device());
  check_weights(op, weights);
}

inline void check_box_iou_args(const at::Tensor& boxes1, const at::Tensor& boxes2) {
  TORCH_CHECK_VALUE(boxes1.dim() == 2 && boxes1.size(1) == 4,
                    "box_iou: boxes1 must be [N, 4], got shape ", boxes1.sizes());
  TORCH_CHECK_VALUE(boxes2.dim() == 2 && boxes2.size(1) == 4,
                    "box_iou: boxes2 must be [M, 4], got shape ", boxes2.sizes());
  check_box_dtype("box_iou", "boxes1", boxes1);
  TORCH_CHECK_TYPE(boxes2.scalar_type() == boxes1.scalar_type(),
                   "box_iou: boxes2 must have the dtype of boxes1 (", boxes1.scalar_type(),
                   "), got ", boxes2.scalar_type());
  TORCH_CHECK(boxes2.device() == boxes1.device(), "box_iou: boxes2 is on ", boxes2.device(),
              " but boxes1 is on ", boxes1.device());
}

// cell_anchors [sum_l A_l, 4]; per level l: A_l anchors on a grid_h x grid_w grid with strides.
inline void check_grid_anchors_args(const at::Tensor& cell_anchors,
                                    at::IntArrayRef anchors_per_level, at::IntArrayRef grid_heights,
                                    at::IntArrayRef grid_widths, at::IntArrayRef stride_heights,
                                    at::IntArrayRef stride_widths, int64_t num_images) {
  const size_t levels = anchors_per_level.size();
  TORCH_CHECK_VALUE(levels > 0 && levels <= 8, "grid_anchors: expected 1 to 8 levels, got ",
                    levels);
  TORCH_CHECK_VALUE(grid_heights.size() == levels && grid_widths.size() == levels &&
                        stride_heights.size() == levels && stride_widths.size() == levels,
                    "grid_anchors: anchors_per_level, grid sizes and strides must all have one "
                    "entry per level (",
                    levels, ")");
  int64_t total_cells = 0;
  for (size_t l = 0; l < levels; ++l) {
    TORCH_CHECK_VALUE(anchors_per_level[l] >= 0 && grid_heights[l] >= 0 && grid_widths[l] >= 0,
                      "grid_anchors: anchor counts and grid sizes must be non-negative");
    total_cells += anchors_per_level[l];
  }
  TORCH_CHECK_VALUE(
      cell_anchors.dim() == 2 && cell_anchors.size(1) == 4 && cell_anchors.size(0) == total_cells,
      "grid_anchors: cell_anchors must be [", total_cells, ", 4], got shape ",
      cell_anchors.sizes());
  TORCH_CHECK_VALUE(num_images >= 0, "grid_anchors: num_images must be non-negative, got ",
                    num_images);
}

}  // namespace roiops
