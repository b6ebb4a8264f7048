// roi_align_sample_points: where RoIAlign samples.
// The bin edges and sample coordinates of every RoI on its feature map, computed by the very
// functions the kernels sample with (roi_align_math.h), so they are exactly where the op looks.
// A diagnostic op: computed on the CPU and returned on the RoIs' device.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <utility>

#include "../common/roi_align_math.h"
#include "library.h"
#include "roi_align.h"

namespace roiops {
namespace {

constexpr int64_t kMaxInspectedGrid = 4096;

template <typename T>
void fill_sample_points(const at::Tensor& rois, double spatial_scale, int pooled_h, int pooled_w,
                        int sampling_ratio, bool aligned, at::Tensor& edges_y, at::Tensor& edges_x,
                        at::Tensor& samples_y, at::Tensor& samples_x, at::Tensor& grid_h,
                        at::Tensor& grid_w) {
  const int64_t num = rois.size(0);
  const T* r = rois.data_ptr<T>();
  const int64_t gy = samples_y.size(2), gx = samples_x.size(2);
  T* ey = edges_y.data_ptr<T>();
  T* ex = edges_x.data_ptr<T>();
  T* sy = samples_y.data_ptr<T>();
  T* sx = samples_x.data_ptr<T>();
  for (int64_t k = 0; k < num; ++k) {
    const T* roi = r + 5 * k;
    const roi_align_math::RoIGeometry<T> g =
        roi_align_math::roi_geometry(roi[1], roi[2], roi[3], roi[4], static_cast<T>(spatial_scale),
                                     pooled_h, pooled_w, sampling_ratio, aligned);
    grid_h.data_ptr<int64_t>()[k] = g.grid_h;
    grid_w.data_ptr<int64_t>()[k] = g.grid_w;
    for (int p = 0; p <= pooled_h; ++p)
      ey[k * (pooled_h + 1) + p] = roi_align_math::bin_edge(g.start_h, g.bin_h, p);
    for (int p = 0; p <= pooled_w; ++p)
      ex[k * (pooled_w + 1) + p] = roi_align_math::bin_edge(g.start_w, g.bin_w, p);
    for (int p = 0; p < pooled_h; ++p) {
      for (int i = 0; i < g.grid_h; ++i) {
        sy[(k * pooled_h + p) * gy + i] =
            roi_align_math::sample_coord(g.start_h, g.bin_h, g.grid_h, p, i);
      }
    }
    for (int p = 0; p < pooled_w; ++p) {
      for (int i = 0; i < g.grid_w; ++i) {
        sx[(k * pooled_w + p) * gx + i] =
            roi_align_math::sample_coord(g.start_w, g.bin_w, g.grid_w, p, i);
      }
    }
  }
}

// The largest adaptive sampling grid of any RoI, per axis (y, x).
template <typename T>
std::pair<int64_t, int64_t> largest_grids(const at::Tensor& rois, double spatial_scale,
                                          int pooled_h, int pooled_w, bool aligned) {
  std::pair<int64_t, int64_t> largest{0, 0};
  const T* r = rois.data_ptr<T>();
  for (int64_t k = 0; k < rois.size(0); ++k) {
    const T* roi = r + 5 * k;
    const auto g = roi_align_math::roi_geometry(roi[1], roi[2], roi[3], roi[4],
                                                static_cast<T>(spatial_scale), pooled_h, pooled_w,
                                                /*sampling_ratio=*/0, aligned);
    largest.first = std::max<int64_t>(largest.first, g.grid_h);
    largest.second = std::max<int64_t>(largest.second, g.grid_w);
  }
  return largest;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>
roi_align_sample_points(const at::Tensor& rois, double spatial_scale, int64_t pooled_h,
                        int64_t pooled_w, int64_t sampling_ratio, bool aligned) {
  constexpr const char* op = "roi_align_sample_points";
  TORCH_CHECK_VALUE(
      rois.dim() == 2 && rois.size(1) == 5, op,
      ": rois must be a 2-D tensor [K, 5] of (batch_index, x1, y1, x2, y2), got shape ",
      rois.sizes());
  TORCH_CHECK_TYPE(is_supported_dtype(rois.scalar_type()), op,
                   ": rois must be float32, float64, float16 or bfloat16, got ",
                   rois.scalar_type());
  check_levels_and_scales(op, 1, {spatial_scale});
  check_pooling(op, pooled_h, pooled_w, sampling_ratio);
  TORCH_CHECK_VALUE(pooled_h > 0 && pooled_w > 0, op,
                    ": output_size must be positive (an empty output samples nowhere), got (",
                    pooled_h, ", ", pooled_w, ")");
  const at::ScalarType type = accumulate_type(rois.scalar_type());
  const at::Tensor r = rois.to(at::kCPU, type).contiguous();
  const int64_t num = r.size(0);
  int64_t gy = sampling_ratio, gx = sampling_ratio;
  if (sampling_ratio <= 0) {
    AT_DISPATCH_FLOATING_TYPES(type, op, [&] {
      std::tie(gy, gx) = largest_grids<scalar_t>(r, spatial_scale, static_cast<int>(pooled_h),
                                                 static_cast<int>(pooled_w), aligned);
    });
  }
  TORCH_CHECK_VALUE(gy <= kMaxInspectedGrid && gx <= kMaxInspectedGrid, op, ": a box needs ",
                    std::max(gy, gx),
                    " samples per bin axis (adaptive sampling_ratio); pass a "
                    "sampling_ratio to inspect it");
  const auto options = r.options();
  at::Tensor edges_y = at::empty({num, pooled_h + 1}, options);
  at::Tensor edges_x = at::empty({num, pooled_w + 1}, options);
  at::Tensor samples_y = at::full({num, pooled_h, gy}, NAN, options);
  at::Tensor samples_x = at::full({num, pooled_w, gx}, NAN, options);
  at::Tensor grid_h = at::empty({num}, options.dtype(at::kLong));
  at::Tensor grid_w = at::empty({num}, options.dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(type, op, [&] {
    fill_sample_points<scalar_t>(r, spatial_scale, static_cast<int>(pooled_h),
                                 static_cast<int>(pooled_w), static_cast<int>(sampling_ratio),
                                 aligned, edges_y, edges_x, samples_y, samples_x, grid_h, grid_w);
  });
  const c10::Device device = rois.device();
  return {edges_y.to(device),   edges_x.to(device), samples_y.to(device),
          samples_x.to(device), grid_h.to(device),  grid_w.to(device)};
}

}  // namespace

TORCH_LIBRARY_IMPL(ROIOPS_LIBRARY, CompositeExplicitAutograd, m) {
  m.impl("roi_align_sample_points", &roi_align_sample_points);
}

}  // namespace roiops
