#include "schemas.h"

namespace roiops {
namespace {

constexpr Implementation kBackend = Implementation::kBackend;
constexpr Implementation kComposite = Implementation::kComposite;

const OpDefinition kOps[] = {
    // RoIAlign (Mask R-CNN), torchvision's schema. rois: [K, 5] (batch_index, x1, y1, x2, y2).
    {"roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
     "SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor",
     kBackend},
    {"_roi_align_backward(Tensor grad, Tensor rois, float spatial_scale, SymInt pooled_height, "
     "SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width, "
     "int sampling_ratio, bool aligned) -> Tensor",
     kBackend},
    // RoIAlign over several feature maps at once: RoI k is pooled from features[levels[k]] with
    // spatial_scales[levels[k]]. One launch for all levels and images; rows stay in input order.
    {"multi_scale_roi_align(Tensor[] features, Tensor rois, Tensor levels, "
     "float[] spatial_scales, SymInt pooled_height, SymInt pooled_width, int sampling_ratio, "
     "bool aligned) -> Tensor",
     kBackend},
    {"_multi_scale_roi_align_backward(Tensor grad, Tensor rois, Tensor levels, "
     "float[] spatial_scales, SymInt pooled_height, SymInt pooled_width, SymInt batch_size, "
     "SymInt channels, SymInt[] heights, SymInt[] widths, int sampling_ratio, bool aligned) "
     "-> Tensor[]",
     kBackend},
    // Where RoIAlign samples, in feature-map pixels: bin edges [K, P + 1] and sample coordinates
    // [K, P, G] per axis (NaN past a RoI's own grid), and each RoI's grid.
    {"roi_align_sample_points(Tensor rois, float spatial_scale, SymInt pooled_height, "
     "SymInt pooled_width, int sampling_ratio, bool aligned) -> (Tensor edges_y, Tensor edges_x, "
     "Tensor samples_y, Tensor samples_x, Tensor grid_h, Tensor grid_w)",
     kComposite},

    // FPN level of each box (Lin et al. 2017, eq. 1), relative to k_min; -1 for a NaN/negative
    // area.
    {"assign_levels(Tensor boxes, int k_min, int k_max, float canonical_scale, "
     "float canonical_level, float eps) -> Tensor",
     kBackend},

    // Non-maximum suppression, torchvision's signatures and results. Kept indices by decreasing
    // score.
    {"nms(Tensor boxes, Tensor scores, float iou_threshold) -> Tensor", kComposite},
    {"batched_nms(Tensor boxes, Tensor scores, Tensor idxs, float iou_threshold) -> Tensor",
     kComposite},
    // Fixed-size, sync-free: per image the first max_output kept indices (padded with -1) and
    // their count; boxes with a negative idxs are padding.
    {"batched_nms_padded(Tensor boxes, Tensor scores, Tensor? idxs, float iou_threshold, "
     "int max_output) -> (Tensor, Tensor)",
     kComposite},
    // Backend step of the three above: keep flags of boxes [B, N, 4] grouped by class and sorted
    // by score, each (row, class) segment suppressed on its own, at most max_keep kept per segment.
    {"_nms_greedy(Tensor boxes, Tensor? classes, float iou_threshold, int max_keep) -> Tensor",
     kBackend},

    // Box coding (torchvision BoxCoder). rel_codes [N, 4k] decode against boxes [N, 4].
    {"decode_boxes(Tensor rel_codes, Tensor boxes, float[] weights, float bbox_xform_clip) "
     "-> Tensor",
     kBackend},
    // Decode fused with clipping to the image and the RPN's small-box test: (boxes, keep [N, k]).
    {"decode_clip_boxes(Tensor rel_codes, Tensor boxes, float[] weights, float bbox_xform_clip, "
     "SymInt image_height, SymInt image_width, float min_size) -> (Tensor, Tensor)",
     kBackend},
    {"encode_boxes(Tensor reference_boxes, Tensor proposals, float[] weights) -> Tensor", kBackend},
    // torchvision.ops.box_iou: boxes [..., N, 4] and [..., M, 4] (leading dims broadcast) in fmt
    // "xyxy", "xywh" or "cxcywh" -> [..., N, M]; float32 for half-precision and integer boxes.
    {"box_iou(Tensor boxes1, Tensor boxes2, str fmt=\"xyxy\") -> Tensor", kBackend},
    // torchvision's paste_masks_in_image: masks [N, 1, M, M] pasted into their boxes [N, 4] of an
    // image_height x image_width image, padded by `padding` -> [N, 1, image_height, image_width].
    {"paste_masks_in_image(Tensor masks, Tensor boxes, SymInt image_height, SymInt image_width, "
     "int padding=1) -> Tensor",
     kBackend},
    // The detection transform's bilinear resize (F.interpolate, scale_factor, recomputed): an op
    // so that compilers keep ATen's arithmetic.
    {"_resize_images(Tensor images, float scale) -> Tensor", kComposite},
    // Anchors of every level, rows ordered (level, y, x, anchor), one copy per image:
    // [num_images, sum_l H_l * W_l * A_l, 4]. cell_anchors: the A_l cell anchors of each level,
    // stacked.
    {"grid_anchors(Tensor cell_anchors, int[] anchors_per_level, SymInt[] grid_heights, "
     "SymInt[] grid_widths, SymInt[] stride_heights, SymInt[] stride_widths, SymInt num_images) "
     "-> Tensor",
     kBackend},
};

}  // namespace

std::string OpDefinition::name() const {
  const std::string s(schema);
  return s.substr(0, s.find('('));
}

c10::ArrayRef<OpDefinition> op_definitions() { return kOps; }

void define_schemas(torch::Library& m) {
  for (const OpDefinition& op : kOps) m.def(op.schema);
}

}  // namespace roiops
