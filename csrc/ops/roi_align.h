// RoIAlign and multi-scale RoIAlign, forward and backward: the ops both backends plug into
// (bind_kernel.h).
//
// roi_align is the one-level case of multi_scale_roi_align, so one pair of backend kernels serves
// all four ops. Every op checks and normalises its arguments here (prepare_forward/backward: user
// errors become Python exceptions naming the argument -- ValueError for shapes and values,
// TypeError for dtypes, RuntimeError for devices), allocates its outputs and runs the backend's
// kernel on them.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/ArrayRef.h>
#include <torch/library.h>

#include <optional>
#include <vector>

#include "../common/feature_pyramid.h"
#include "bind_kernel.h"

namespace roiops {

// Dtype the math runs in: float for float16/bfloat16, else the input's own.
at::ScalarType accumulate_type(at::ScalarType input_type);

// Argument checks shared by the RoIAlign ops (ValueError / TypeError naming the argument).
bool is_supported_dtype(at::ScalarType t);  // float32, float64, float16, bfloat16
void check_levels_and_scales(const char* op, size_t num_levels,
                             at::ArrayRef<double> spatial_scales);
void check_pooling(const char* op, int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio);

// The checks of roi_align's arguments that do not depend on the input's dtype, for backends whose
// dtypes the op layer does not know (QuantizedCPU): input [N, C, H, W], non-empty and below
// kMaxMapSide per side; spatial_scale finite and positive; rois [K, 5]; output size in
// [0, kMaxPooledSide] per side; sampling_ratio in [-1, kMaxSamplingRatio] (common/limits.h).
void check_roi_align_geometry(const char* op, const at::Tensor& input, const at::Tensor& rois,
                              double spatial_scale, int64_t pooled_h, int64_t pooled_w,
                              int64_t sampling_ratio);

// What a validated forward and backward call share: the RoIs and how they are pooled.
struct RoIAlignParams {
  const char* op;     // the op's name, for error messages
  at::Tensor rois;    // [K, 5], contiguous, accumulation dtype
  at::Tensor levels;  // [K] int64 contiguous, or undefined: every RoI on level 0
  std::vector<double> spatial_scales;
  int64_t pooled_h, pooled_w, sampling_ratio;
  bool aligned;
};

struct RoIAlignForwardArgs : RoIAlignParams {
  std::vector<at::Tensor> features;  // level l: [N, C, H_l, W_l], any strides
};

// The gradient of level l is [N, C, heights[l], widths[l]].
struct RoIAlignBackwardArgs : RoIAlignParams {
  at::Tensor grad;  // [K, C, PH, PW], contiguous
  int64_t batch_size, channels;
  std::vector<int64_t> heights, widths;
};

// A backend's forward fills `output` [K, C, PH, PW] (contiguous, the input's dtype; every row,
// zero rows included). Its backward adds into `grads`: one zeroed accumulator per level,
// [N, C, H_l, W_l], in the accumulation dtype; it is called only when there is something to add.
using RoIAlignForwardKernel = void (*)(const RoIAlignForwardArgs&, at::Tensor& output);
using RoIAlignBackwardKernel = void (*)(const RoIAlignBackwardArgs&,
                                        std::vector<at::Tensor>& grads);

at::Tensor roi_align(RoIAlignForwardKernel kernel, const at::Tensor& input, const at::Tensor& rois,
                     double spatial_scale, int64_t pooled_h, int64_t pooled_w,
                     int64_t sampling_ratio, bool aligned);
at::Tensor roi_align_backward(RoIAlignBackwardKernel kernel, const at::Tensor& grad,
                              const at::Tensor& rois, double spatial_scale, int64_t pooled_h,
                              int64_t pooled_w, int64_t batch_size, int64_t channels,
                              int64_t height, int64_t width, int64_t sampling_ratio, bool aligned);
at::Tensor multi_scale_roi_align(RoIAlignForwardKernel kernel, at::TensorList features,
                                 const at::Tensor& rois, const at::Tensor& levels,
                                 at::ArrayRef<double> spatial_scales, int64_t pooled_h,
                                 int64_t pooled_w, int64_t sampling_ratio, bool aligned);
std::vector<at::Tensor> multi_scale_roi_align_backward(
    RoIAlignBackwardKernel kernel, const at::Tensor& grad, const at::Tensor& rois,
    const at::Tensor& levels, at::ArrayRef<double> spatial_scales, int64_t pooled_h,
    int64_t pooled_w, int64_t batch_size, int64_t channels, at::IntArrayRef heights,
    at::IntArrayRef widths, int64_t sampling_ratio, bool aligned);

template <RoIAlignForwardKernel forward, RoIAlignBackwardKernel backward>
void register_roi_align_kernels(torch::Library& m) {
  m.impl("roi_align", bind_kernel<&roi_align, forward>);
  m.impl("_roi_align_backward", bind_kernel<&roi_align_backward, backward>);
  m.impl("multi_scale_roi_align", bind_kernel<&multi_scale_roi_align, forward>);
  m.impl("_multi_scale_roi_align_backward", bind_kernel<&multi_scale_roi_align_backward, backward>);
}

// The maps of a validated call as the kernels see them (feature_pyramid.h).
template <typename scalar_t, typename acc_t>
FeaturePyramid<scalar_t, acc_t> make_pyramid(at::TensorList features,
                                             at::ArrayRef<double> spatial_scales) {
  FeaturePyramid<scalar_t, acc_t> p{};
  p.num_levels = static_cast<int>(features.size());
  p.batch = features[0].size(0);
  p.channels = features[0].size(1);
  for (int l = 0; l < p.num_levels; ++l) {
    const at::Tensor& f = features[l];
    p.data[l] = static_cast<scalar_t*>(f.data_ptr());
    p.stride_n[l] = f.stride(0);
    p.stride_c[l] = f.stride(1);
    p.stride_h[l] = f.stride(2);
    p.stride_w[l] = f.stride(3);
    p.height[l] = static_cast<int>(f.size(2));
    p.width[l] = static_cast<int>(f.size(3));
    p.scale[l] = static_cast<acc_t>(spatial_scales[l]);
  }
  return p;
}

}  // namespace roiops
