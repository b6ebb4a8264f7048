// FPN level assignment (Lin et al. 2017, eq. 1), written once for both backends:
//   level = floor(canonical_level + log2(sqrt(area) / canonical_scale) + eps), clamped to
//   [k_min, k_max], returned relative to k_min.
// Operation for operation torchvision's LevelMapper: area = (x2 - x1) * (y2 - y1) with no +1, eps
// added after the log, all in the boxes' dtype.
#pragma once

#include <math.h>

#include <cstdint>

#include "macros.h"

namespace roiops {
namespace level_math {

// Level of a box whose area is negative or NaN (inverted or NaN coordinates). torchvision converts
// NaN to int64 there (an unspecified value that matches no level, so the RoI's row stays zero);
// roiops returns this sentinel, and the multi-scale pooler gives such RoIs a zero row on purpose.
constexpr int64_t kNoLevel = -1;

// Float math in the box dtype on host and device alike (an unqualified sqrt(float) may resolve to
// the C double version on the host and change the rounding).
ROIOPS_HOST_DEVICE ROIOPS_INLINE float fp_sqrt(float v) { return sqrtf(v); }
ROIOPS_HOST_DEVICE ROIOPS_INLINE double fp_sqrt(double v) { return sqrt(v); }
ROIOPS_HOST_DEVICE ROIOPS_INLINE float fp_log2(float v) { return log2f(v); }
ROIOPS_HOST_DEVICE ROIOPS_INLINE double fp_log2(double v) { return log2(v); }
ROIOPS_HOST_DEVICE ROIOPS_INLINE float fp_floor(float v) { return floorf(v); }
ROIOPS_HOST_DEVICE ROIOPS_INLINE double fp_floor(double v) { return floor(v); }

template <typename T>
ROIOPS_HOST_DEVICE ROIOPS_INLINE int64_t fpn_level(T x1, T y1, T x2, T y2, T canonical_scale,
                                                   T canonical_level, T eps, int64_t k_min,
                                                   int64_t k_max) {
  const T area = (x2 - x1) * (y2 - y1);
  const T level = fp_floor(canonical_level + fp_log2(fp_sqrt(area) / canonical_scale) + eps);
  if (level != level) return kNoLevel;           // NaN
  if (level <= static_cast<T>(k_min)) return 0;  // also log2(0) = -inf for empty boxes
  if (level >= static_cast<T>(k_max)) return k_max - k_min;
  return static_cast<int64_t>(level) - k_min;
}

}  // namespace level_math
}  // namespace roiops
