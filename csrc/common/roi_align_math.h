// RoIAlign scalar math (Mask R-CNN, He et al. 2017, sec. 3), written once for both backends.
//
// Every expression reproduces torchvision's `roi_align` arithmetic operation by operation (same
// operand order, multiply before divide, no fused multiply-add: exact_math.h), so both backends are
// bit-identical to torchvision's CPU kernel in float32/float64. `T` is the accumulation type: float
// for float16/bfloat16 inputs.
//
// Two deliberate differences, both for inputs on which torchvision misbehaves:
//  * the "sample outside the map" test is written as NOT(inside), so NaN coordinates give a zero
//    sample instead of an out-of-bounds read (torchvision #9272/#9273);
//  * samples outside [-1, size] are skipped by bisection rather than visited one by one, so an
//    absurdly large box with an adaptive sampling grid costs O(map size), not a hang. Skipped
//    samples contribute exactly 0 in torchvision too, so results are unchanged.
#pragma once

#include <math.h>

#include <cstdint>

#include "exact_math.h"
#include "macros.h"

namespace roiops {
namespace roi_align_math {

// Upper bound of the adaptive sampling grid per bin axis. ceil(roi / pooled) of any sane box is far
// below; the clamp only keeps the float -> int conversion defined for boxes near FLT_MAX.
constexpr int kMaxAdaptiveGrid = 1 << 30;

template <typename T>
ROIOPS_HOST_DEVICE ROIOPS_INLINE bool is_finite(T v) {
  return v - v == T(0);  // false for +-inf and NaN, without relying on std:: in device code
}

// Where one RoI lies on its feature map and how its bins are sampled.
template <typename T>
struct RoIGeometry {
  T start_h, start_w;  // top-left corner, in feature-map pixels
  T bin_h, bin_w;      // extent of one output bin
  int grid_h, grid_w;  // sampling points per bin along each axis
};

// Sampling points per bin along one axis: `sampling_ratio` if positive, else ceil(extent / pooled).
// A non-positive or NaN extent gives 0 samples, which is what torchvision's loops do with the
// (zero or negative) grid they compute.
template <typename T>
ROIOPS_HOST_DEVICE ROIOPS_INLINE int sampling_grid(int sampling_ratio, T roi_extent, int pooled) {
  if (sampling_ratio > 0) return sampling_ratio;
  // ceil of a float is exact in float or double alike, so the C ceil(double) is fine here.
  const T grid = ceil(roi_extent / static_cast<T>(pooled));
  if (!(grid > T(0))) return 0;
  return grid < static_cast<T>(kMaxAdaptiveGrid) ? static_cast<int>(grid) : kMaxAdaptiveGrid;
}

// Box (x1, y1, x2, y2) in image coordinates -> geometry on a map `spatial_scale` times smaller.
// `aligned` shifts by half a pixel so that pixel centres line up (Detectron2's fix); without it,
// RoIs are at least one pixel wide, as in the original Mask R-CNN implementation.
template <typename T>
ROIOPS_HOST_DEVICE ROIOPS_INLINE RoIGeometry<T> roi_geometry(T x1, T y1, T x2, T y2,
                                                             T spatial_scale, int pooled_h,
                                                             int pooled_w, int sampling_ratio,
                                                             bool aligned) {
  const T offset = aligned ? T(0.5) : T(0);
  RoIGeometry<T> g;
  g.start_w = mul_exact(x1, spatial_scale) - offset;
  g.start_h = mul_exact(y1, spatial_scale) - offset;
  const T end_w = mul_exact(x2, spatial_scale) - offset;
  const T end_h = mul_exact(y2, spatial_scale) - offset;
  T roi_w = end_w - g.start_w;
  T roi_h = end_h - g.start_h;
  if (!aligned) {  // std::max(v, 1) semantics: NaN stays NaN
    roi_w = roi_w < T(1) ? T(1) : roi_w;
    roi_h = roi_h < T(1) ? T(1) : roi_h;
  }
  g.bin_h = roi_h / static_cast<T>(pooled_h);
  g.bin_w = roi_w / static_cast<T>(pooled_w);
  g.grid_h = sampling_grid(sampling_ratio, roi_h, pooled_h);
  g.grid_w = sampling_grid(sampling_ratio, roi_w, pooled_w);
  return g;
}

// Forward divisor: the number of samples of one bin, at least 1 so that empty grids give 0.
template <typename T>
ROIOPS_HOST_DEVICE ROIOPS_INLINE T forward_count(const RoIGeometry<T>& g) {
  const int64_t n = static_cast<int64_t>(g.grid_h) * g.grid_w;
  return static_cast<T>(n > 1 ? n : 1);
}

// Backward divisor: torchvision divides by grid_h * grid_w without the max (never used when 0).
template <typename T>
ROIOPS_HOST_DEVICE ROIOPS_INLINE T backward_count(const RoIGeometry<T>& g) {
  return static_cast<T>(static_cast<int64_t>(g.grid_h) * g.grid_w);
}

// Leading edge of bin `p` along one axis (p = pooled gives the RoI's far edge).
template <typename T>
ROIOPS_HOST_DEVICE ROIOPS_INLINE T bin_edge(T start, T bin, int p) {
  return start + mul_exact(static_cast<T>(p), bin);
}

// Coordinate of sample `i` of bin `p` along one axis: the centre of the i-th of `grid` equal parts.
template <typename T>
ROIOPS_HOST_DEVICE ROIOPS_INLINE T sample_coord(T start, T bin, int grid, int p, int i) {
  return bin_edge(start, bin, p) + mul_exact(static_cast<T>(i + .5f), bin) / static_cast<T>(grid);
}

// One axis of a bilinear sample: the two neighbouring pixel indices and the distance from the
// lower. low < 0 marks a sample outside [-1, size], which contributes zero.
template <typename T>
struct AxisTap {
  int low;
  int high;
  T frac;
};

template <typename T>
ROIOPS_HOST_DEVICE ROIOPS_INLINE AxisTap<T> axis_tap(T coord, int size) {
  AxisTap<T> tap;
  // NOT(inside) rather than (outside): a NaN coordinate must land here.
  if (!(coord >= T(-1) && coord <= static_cast<T>(size))) {
    tap.low = -1;
    tap.high = -1;
    tap.frac = T(0);
    return tap;
  }
  if (coord <= T(0)) coord = T(0);
  tap.low = static_cast<int>(coord);
  if (tap.low >= size - 1) {  // on or past the last pixel: both neighbours are the last pixel
    tap.low = tap.high = size - 1;
    coord = static_cast<T>(tap.low);
  } else {
    tap.high = tap.low + 1;
  }
  tap.frac = coord - static_cast<T>(tap.low);
  return tap;
}

// The four bilinear weights of a sample, for corners (low,low), (low,high), (high,low), (high,high)
// as (y, x). Products formed exactly as torchvision forms them.
template <typename T>
struct BilinearWeights {
  T w1, w2, w3, w4;
};

template <typename T>
ROIOPS_HOST_DEVICE ROIOPS_INLINE BilinearWeights<T> bilinear_weights(const AxisTap<T>& ty,
                                                                     const AxisTap<T>& tx) {
  const T ly = ty.frac, lx = tx.frac;
  const T hy = T(1) - ly, hx = T(1) - lx;
  return {mul_exact(hy, hx), mul_exact(hy, lx), mul_exact(ly, hx), mul_exact(ly, lx)};
}

// The interpolated value of one sample from its four corner values, summed left to right as
// torchvision sums them.
template <typename T>
ROIOPS_HOST_DEVICE ROIOPS_INLINE T interpolate(const BilinearWeights<T>& w, T v1, T v2, T v3,
                                               T v4) {
  return mul_exact(w.w1, v1) + mul_exact(w.w2, v2) + mul_exact(w.w3, v3) + mul_exact(w.w4, v4);
}

// Which RoIs are pooled. The batch index is truncated toward zero as torchvision truncates it, so
// any value in (-1, N) names an image; NaN fails. A level outside [0, L) -- assign_levels' -1 for
// a box with no defined level, or a level whose map the caller does not have -- is not pooled:
// its row is zero on both backends, as in torchvision's MultiScaleRoIAlign. For a bad batch index
// the backends differ: the CPU raises (checking is free there), CUDA writes a zero row (checking
// would cost a host sync).
template <typename T>
ROIOPS_HOST_DEVICE ROIOPS_INLINE bool is_batch_index(T b, int64_t batch_size) {
  return b > T(-1) && b < static_cast<T>(batch_size);
}

ROIOPS_HOST_DEVICE ROIOPS_INLINE bool is_level_index(int64_t level, int num_levels) {
  return level >= 0 && level < num_levels;
}

// Smallest i in [0, grid] whose sample has passed `bound` (c >= bound, or c > bound if `strict`;
// the mirror image when the samples decrease). Sample coordinates are monotone in i for finite
// start and bin -- every operation in sample_coord is monotone and rounding preserves order -- so
// bisection with the very same expression equals a linear scan.
template <typename T>
ROIOPS_HOST_DEVICE ROIOPS_INLINE int first_sample_past(T start, T bin, int grid, int p, T bound,
                                                       bool strict) {
  const bool increasing = bin >= T(0);
  int lo = 0, hi = grid;
  while (lo < hi) {
    const int mid = lo + (hi - lo) / 2;
    const T c = sample_coord(start, bin, grid, p, mid);
    const bool past =
        increasing ? (strict ? c > bound : c >= bound) : (strict ? c < bound : c <= bound);
    if (past) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return lo;
}

// The samples i of bin p whose coordinate lies in [-1, size] form one interval [first, last): only
// those can be non-zero. A non-finite start or bin puts every sample outside (inf or NaN).
template <typename T>
ROIOPS_HOST_DEVICE ROIOPS_INLINE void valid_sample_range(T start, T bin, int grid, int p, int size,
                                                         int* first, int* last) {
  *first = 0;
  *last = 0;
  if (grid <= 0 || !is_finite(start) || !is_finite(bin)) return;
  const T lower = T(-1), upper = static_cast<T>(size);
  const bool increasing = bin >= T(0);
  *first = first_sample_past(start, bin, grid, p, increasing ? lower : upper, false);
  *last = first_sample_past(start, bin, grid, p, increasing ? upper : lower, true);
  if (*last < *first) *last = *first;
}

}  // namespace roi_align_math
}  // namespace roiops
