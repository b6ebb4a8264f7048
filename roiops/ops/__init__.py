from .poolers import MultiScaleRoIAlign, assign_levels, infer_scale, multi_scale_roi_align
from .roi_align import RoIAlign, RoIAlignSamplePoints, roi_align, roi_align_sample_points

__all__ = [
    "MultiScaleRoIAlign",
    "RoIAlign",
    "RoIAlignSamplePoints",
    "assign_levels",
    "infer_scale",
    "multi_scale_roi_align",
    "roi_align",
    "roi_align_sample_points",
]
