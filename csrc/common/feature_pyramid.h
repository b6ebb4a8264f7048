// The feature maps a (multi-level) RoIAlign samples from, packed into one small struct that is
// passed by value to the CUDA kernels and used as is by the CPU loops. roi_align is the one-level
// case; the multi-scale op gives each RoI a level index into this table, so one launch serves every
// FPN level.
#pragma once

#include <cstdint>

#include "limits.h"
#include "macros.h"

namespace roiops {

template <typename scalar_t, typename acc_t>
struct FeaturePyramid {
  scalar_t* data[kMaxLevels];
  // Element strides of each [N, C, H, W] map: any layout (contiguous, channels_last, sliced) works.
  int64_t stride_n[kMaxLevels];
  int64_t stride_c[kMaxLevels];
  int64_t stride_h[kMaxLevels];
  int64_t stride_w[kMaxLevels];
  int height[kMaxLevels];
  int width[kMaxLevels];
  acc_t scale[kMaxLevels];  // spatial_scale, converted to the accumulation type as torchvision does
  int num_levels;
  int64_t batch;     // N, shared by all levels
  int64_t channels;  // C, shared by all levels

  // Offset of pixel (0, 0) of channel c of image b on `level`.
  ROIOPS_HOST_DEVICE ROIOPS_INLINE int64_t plane_offset(int level, int64_t b, int64_t c) const {
    return b * stride_n[level] + c * stride_c[level];
  }
};

}  // namespace roiops
