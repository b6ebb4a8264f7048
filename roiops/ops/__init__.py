from .anchors import AnchorGenerator
from .box_coder import BoxCoder, decode_boxes, decode_clip_boxes, encode_boxes
from .boxes import box_iou
from .nms import batched_nms, batched_nms_padded, nms
from .poolers import MultiScaleRoIAlign, assign_levels, infer_scale, multi_scale_roi_align
from .roi_align import RoIAlign, RoIAlignSamplePoints, roi_align, roi_align_sample_points

__all__ = [
    "AnchorGenerator",
    "BoxCoder",
    "MultiScaleRoIAlign",
    "RoIAlign",
    "RoIAlignSamplePoints",
    "assign_levels",
    "batched_nms",
    "batched_nms_padded",
    "box_iou",
    "decode_boxes",
    "decode_clip_boxes",
    "encode_boxes",
    "infer_scale",
    "multi_scale_roi_align",
    "nms",
    "roi_align",
    "roi_align_sample_points",
]
