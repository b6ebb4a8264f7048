// Device-side RoI sampling shared by the RoIAlign kernels (roi_align_kernel.cu) and the
// deterministic backward (roi_align_deterministic_backward.cu): reading a RoI, its bilinear taps in
// shared memory, and the walk over a bin's samples in torchvision's order.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "../common/feature_pyramid.h"
#include "../common/roi_align_math.h"
#include "../ops/roi_align.h"
#include "cuda_helpers.cuh"

namespace roiops {

// The backward under torch.use_deterministic_algorithms(True): adds the same sums as torchvision's
// CPU backward, in the same order, into `grads` (roi_align_deterministic_backward.cu).
void backward_deterministic_cuda(const RoIAlignBackwardArgs& args, std::vector<at::Tensor>& grads);

namespace roi_align_sampling {

using namespace roi_align_math;

// Taps per axis kept in shared memory: PH * grid_h <= 512 covers 7x7 and 14x14 outputs up to
// adaptive grids of 36 (boxes ~250 pixels on the level they are pooled from).
constexpr int kMaxSharedTaps = 512;

template <typename acc_t>
struct RoI {
  int level;
  int64_t batch_index;
  RoIGeometry<acc_t> geometry;
  bool taps_in_shared;
};

// Reads RoI k; false if its batch or level index names no map (the RoI is not pooled).
template <typename scalar_t, typename acc_t>
__device__ __forceinline__ bool read_roi(const FeaturePyramid<scalar_t, acc_t>& pyr,
                                         const acc_t* __restrict__ rois,
                                         const int64_t* __restrict__ levels, int64_t k,
                                         int pooled_h, int pooled_w, int sampling_ratio,
                                         bool aligned, RoI<acc_t>* r) {
  const acc_t* roi = rois + 5 * k;
  const int64_t level = levels != nullptr ? levels[k] : 0;
  if (!is_batch_index(roi[0], pyr.batch) || !is_level_index(level, pyr.num_levels)) return false;
  r->level = static_cast<int>(level);
  r->batch_index = static_cast<int64_t>(roi[0]);
  r->geometry = roi_geometry(roi[1], roi[2], roi[3], roi[4], pyr.scale[r->level], pooled_h,
                             pooled_w, sampling_ratio, aligned);
  r->taps_in_shared = false;
  return true;
}

// Fills the block's shared taps if they fit. The decision depends on the RoI only, so it is the
// same for every thread and the barrier is reached by all of them.
template <typename acc_t>
__device__ __forceinline__ bool fill_shared_taps(const RoIGeometry<acc_t>& g, int height, int width,
                                                 int pooled_h, int pooled_w, AxisTap<acc_t>* y_taps,
                                                 AxisTap<acc_t>* x_taps) {
  const int64_t ny = static_cast<int64_t>(pooled_h) * g.grid_h;
  const int64_t nx = static_cast<int64_t>(pooled_w) * g.grid_w;
  if (ny > kMaxSharedTaps || nx > kMaxSharedTaps) return false;
  for (int i = threadIdx.x; i < ny; i += blockDim.x) {
    y_taps[i] =
        axis_tap(sample_coord(g.start_h, g.bin_h, g.grid_h, i / g.grid_h, i % g.grid_h), height);
  }
  for (int i = threadIdx.x; i < nx; i += blockDim.x) {
    x_taps[i] =
        axis_tap(sample_coord(g.start_w, g.bin_w, g.grid_w, i / g.grid_w, i % g.grid_w), width);
  }
  __syncthreads();
  return true;
}

// Calls visit(ty, tx) for every sample of bin (ph, pw) that lies inside the map, in torchvision's
// order (iy outer, ix inner). Without shared taps, only the samples inside the map are visited
// (bisection, roi_align_math.h), so a huge box with an adaptive grid costs O(map size).
template <typename acc_t, typename Visit>
__device__ __forceinline__ void for_each_sample(const RoI<acc_t>& r, int height, int width, int ph,
                                                int pw, const AxisTap<acc_t>* y_taps,
                                                const AxisTap<acc_t>* x_taps, Visit&& visit) {
  const RoIGeometry<acc_t>& g = r.geometry;
  if (r.taps_in_shared) {
    for (int iy = 0; iy < g.grid_h; ++iy) {
      const AxisTap<acc_t> ty = y_taps[ph * g.grid_h + iy];
      if (ty.low < 0) continue;
      for (int ix = 0; ix < g.grid_w; ++ix) {
        const AxisTap<acc_t> tx = x_taps[pw * g.grid_w + ix];
        if (tx.low < 0) continue;
        visit(ty, tx);
      }
    }
    return;
  }
  int y_first, y_last, x_first, x_last;
  valid_sample_range(g.start_h, g.bin_h, g.grid_h, ph, height, &y_first, &y_last);
  valid_sample_range(g.start_w, g.bin_w, g.grid_w, pw, width, &x_first, &x_last);
  for (int iy = y_first; iy < y_last; ++iy) {
    const AxisTap<acc_t> ty = axis_tap(sample_coord(g.start_h, g.bin_h, g.grid_h, ph, iy), height);
    if (ty.low < 0) continue;
    for (int ix = x_first; ix < x_last; ++ix) {
      const AxisTap<acc_t> tx = axis_tap(sample_coord(g.start_w, g.bin_w, g.grid_w, pw, ix), width);
      if (tx.low < 0) continue;
      visit(ty, tx);
    }
  }
}

}  // namespace roi_align_sampling
}  // namespace roiops
