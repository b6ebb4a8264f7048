// The samples of one RoI as the CPU RoIAlign kernels visit them (roi_align_kernel.cpp, and the
// quantized kernel in csrc/quantized/): per bin, the four pixel offsets and bilinear weights of
// every sample inside the map, computed once per RoI and reused for all channels, as torchvision's
// CPU kernel does.
#pragma once

#include <cstdint>
#include <vector>

#include "../common/feature_pyramid.h"
#include "../common/roi_align_math.h"

namespace roiops {
namespace cpu {

using namespace roi_align_math;

template <typename acc_t>
struct SamplePoint {
  int64_t offset[4];  // element offsets of the 4 corners within one (image, channel) plane
  BilinearWeights<acc_t> weights;
};

// The valid samples of every bin of one RoI, in torchvision's visiting order (bin-major, then iy,
// then ix). Buffers are reused from RoI to RoI.
template <typename acc_t>
struct RoISamples {
  std::vector<SamplePoint<acc_t>> points;
  std::vector<int64_t> bin_begin;  // points of bin i: [bin_begin[i], bin_begin[i + 1])
  std::vector<AxisTap<acc_t>> y_taps, x_taps;
  std::vector<int> y_begin, x_begin;

  static void axis_taps(acc_t start, acc_t bin, int grid, int pooled, int size,
                        std::vector<AxisTap<acc_t>>& taps, std::vector<int>& begin) {
    taps.clear();
    begin.resize(pooled + 1);
    for (int p = 0; p < pooled; ++p) {
      begin[p] = static_cast<int>(taps.size());
      int first, last;
      valid_sample_range(start, bin, grid, p, size, &first, &last);
      for (int i = first; i < last; ++i) {
        taps.push_back(axis_tap(sample_coord(start, bin, grid, p, i), size));
      }
    }
    begin[pooled] = static_cast<int>(taps.size());
  }

  // RoI k as seen by both passes (its batch index vetted by the caller); false for a RoI whose
  // level names no map (-1 for no level, or a level the caller has no map for): its row is zero.
  int level = 0;
  int64_t batch_index = 0;
  RoIGeometry<acc_t> geometry;

  template <typename scalar_t>
  bool load(const FeaturePyramid<scalar_t, acc_t>& pyramid, const acc_t* rois,
            const int64_t* levels, int64_t k, int64_t pooled_h, int64_t pooled_w,
            int64_t sampling_ratio, bool aligned) {
    const acc_t* roi = rois + 5 * k;
    const int64_t l = levels != nullptr ? levels[k] : 0;
    if (!is_level_index(l, pyramid.num_levels)) return false;
    level = static_cast<int>(l);
    batch_index = static_cast<int64_t>(roi[0]);
    geometry = roi_geometry(roi[1], roi[2], roi[3], roi[4], pyramid.scale[level],
                            static_cast<int>(pooled_h), static_cast<int>(pooled_w),
                            static_cast<int>(sampling_ratio), aligned);
    build(geometry, pyramid.height[level], pyramid.width[level], pyramid.stride_h[level],
          pyramid.stride_w[level], static_cast<int>(pooled_h), static_cast<int>(pooled_w));
    return true;
  }

  void build(const RoIGeometry<acc_t>& g, int height, int width, int64_t stride_h, int64_t stride_w,
             int pooled_h, int pooled_w) {
    axis_taps(g.start_h, g.bin_h, g.grid_h, pooled_h, height, y_taps, y_begin);
    axis_taps(g.start_w, g.bin_w, g.grid_w, pooled_w, width, x_taps, x_begin);
    points.clear();
    bin_begin.clear();
    for (int ph = 0; ph < pooled_h; ++ph) {
      for (int pw = 0; pw < pooled_w; ++pw) {
        bin_begin.push_back(static_cast<int64_t>(points.size()));
        for (int iy = y_begin[ph]; iy < y_begin[ph + 1]; ++iy) {
          const AxisTap<acc_t>& ty = y_taps[iy];
          for (int ix = x_begin[pw]; ix < x_begin[pw + 1]; ++ix) {
            const AxisTap<acc_t>& tx = x_taps[ix];
            if (ty.low < 0 || tx.low < 0) continue;
            points.push_back(
                {{ty.low * stride_h + tx.low * stride_w, ty.low * stride_h + tx.high * stride_w,
                  ty.high * stride_h + tx.low * stride_w, ty.high * stride_h + tx.high * stride_w},
                 bilinear_weights(ty, tx)});
          }
        }
      }
    }
    bin_begin.push_back(static_cast<int64_t>(points.size()));
  }
};

}  // namespace cpu
}  // namespace roiops
