#include "schemas.h"

namespace roiops {

void define_schemas(torch::Library& m) {
  // RoIAlign (Mask R-CNN), torchvision's schema. rois: [K, 5] (batch_index, x1, y1, x2, y2).
  m.def(
      "roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
      "SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor");
  m.def(
      "_roi_align_backward(Tensor grad, Tensor rois, float spatial_scale, SymInt pooled_height, "
      "SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width, "
      "int sampling_ratio, bool aligned) -> Tensor");

  // RoIAlign over several feature maps at once: RoI k is pooled from features[levels[k]] with
  // spatial_scales[levels[k]]. One launch for all levels and images; rows stay in input order.
  m.def(
      "multi_scale_roi_align(Tensor[] features, Tensor rois, Tensor levels, "
      "float[] spatial_scales, SymInt pooled_height, SymInt pooled_width, int sampling_ratio, "
      "bool aligned) -> Tensor");
  m.def(
      "_multi_scale_roi_align_backward(Tensor grad, Tensor rois, Tensor levels, "
      "float[] spatial_scales, SymInt pooled_height, SymInt pooled_width, SymInt batch_size, "
      "SymInt channels, SymInt[] heights, SymInt[] widths, int sampling_ratio, bool aligned) "
      "-> Tensor[]");

  // FPN level of each box (Lin et al. 2017, eq. 1), relative to k_min; -1 for a NaN/negative area.
  m.def(
      "assign_levels(Tensor boxes, int k_min, int k_max, float canonical_scale, "
      "float canonical_level, float eps) -> Tensor");

  // Non-maximum suppression, torchvision's signatures and results. Kept indices by decreasing
  // score.
  m.def("nms(Tensor boxes, Tensor scores, float iou_threshold) -> Tensor");
  m.def("batched_nms(Tensor boxes, Tensor scores, Tensor idxs, float iou_threshold) -> Tensor");
  // Fixed-size, sync-free: per image the first max_output kept indices (padded with -1) and their
  // count; boxes with a negative idxs are padding.
  m.def(
      "batched_nms_padded(Tensor boxes, Tensor scores, Tensor? idxs, float iou_threshold, "
      "int max_output) -> (Tensor, Tensor)");
  // Backend step of the three above: keep flags of boxes [B, N, 4] grouped by class and sorted by
  // score, each (row, class) segment suppressed on its own, at most max_keep kept per segment.
  m.def("_nms_greedy(Tensor boxes, Tensor? classes, float iou_threshold, int max_keep) -> Tensor");

  // Box coding (torchvision BoxCoder). rel_codes [N, 4k] decode against boxes [N, 4].
  m.def(
      "decode_boxes(Tensor rel_codes, Tensor boxes, float[] weights, float bbox_xform_clip) "
      "-> Tensor");
  // Decode fused with clipping to the image and the RPN's small-box test: (boxes, keep [N, k]).
  m.def(
      "decode_clip_boxes(Tensor rel_codes, Tensor boxes, float[] weights, float bbox_xform_clip, "
      "SymInt image_height, SymInt image_width, float min_size) -> (Tensor, Tensor)");
  m.def("encode_boxes(Tensor reference_boxes, Tensor proposals, float[] weights) -> Tensor");
  m.def("box_iou(Tensor boxes1, Tensor boxes2) -> Tensor");
  // Anchors of every level, rows ordered (level, y, x, anchor), one copy per image:
  // [num_images, sum_l H_l * W_l * A_l, 4]. cell_anchors: the A_l cell anchors of each level,
  // stacked.
  m.def(
      "grid_anchors(Tensor cell_anchors, int[] anchors_per_level, SymInt[] grid_heights, "
      "SymInt[] grid_widths, SymInt[] stride_heights, SymInt[] stride_widths, SymInt num_images) "
      "-> Tensor");
}

}  // namespace roiops
