// Argument checking and packing shared by the CPU and CUDA RoIAlign launchers (host code only).
// Every user error becomes a Python exception whose message names the argument and what was
// expected: ValueError for bad shapes/values, TypeError for dtypes, RuntimeError for devices.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/ArrayRef.h>
#include <torch/library.h>

#include <optional>
#include <vector>

#include "common/feature_pyramid.h"

namespace roiops {

// Dtype the math runs in: float for float16/bfloat16, else the input's own.
at::ScalarType accumulate_type(at::ScalarType input_type);

// A validated forward call: roi_align is the one-level case of multi_scale_roi_align.
struct RoIAlignForwardArgs {
  std::vector<at::Tensor> features;  // level l: [N, C, H_l, W_l], any strides
  at::Tensor rois;                   // [K, 5], contiguous, accumulation dtype
  at::Tensor levels;                 // [K] int64 contiguous, or undefined: every RoI on level 0
  std::vector<double> spatial_scales;
  int64_t pooled_h, pooled_w, sampling_ratio;
  bool aligned;
};

RoIAlignForwardArgs prepare_forward(const char* op, at::TensorList features, const at::Tensor& rois,
                                    const std::optional<at::Tensor>& levels,
                                    at::ArrayRef<double> spatial_scales, int64_t pooled_h,
                                    int64_t pooled_w, int64_t sampling_ratio, bool aligned);

// A validated backward call; the gradient of level l is [N, C, heights[l], widths[l]].
struct RoIAlignBackwardArgs {
  at::Tensor grad;    // [K, C, PH, PW], contiguous
  at::Tensor rois;    // as in the forward
  at::Tensor levels;  // as in the forward
  std::vector<double> spatial_scales;
  int64_t pooled_h, pooled_w, sampling_ratio;
  bool aligned;
  int64_t batch_size, channels;
  std::vector<int64_t> heights, widths;
};

RoIAlignBackwardArgs prepare_backward(const char* op, const at::Tensor& grad,
                                      const at::Tensor& rois,
                                      const std::optional<at::Tensor>& levels,
                                      at::ArrayRef<double> spatial_scales, int64_t pooled_h,
                                      int64_t pooled_w, int64_t batch_size, int64_t channels,
                                      at::IntArrayRef heights, at::IntArrayRef widths,
                                      int64_t sampling_ratio, bool aligned);

// The four RoIAlign ops of one backend, from its forward and backward launchers: every op checks
// and normalises its arguments the same way, then runs the backend's multi-level kernel.
using RoIAlignForwardFn = at::Tensor (*)(const char* op, const RoIAlignForwardArgs&);
// A backend's backward adds into `grads`: one zeroed accumulator per level, [N, C, H_l, W_l], in
// the accumulation dtype.
using RoIAlignBackwardFn = void (*)(const char* op, const RoIAlignBackwardArgs&,
                                    std::vector<at::Tensor>& grads);

// Allocates the accumulators, runs `backend` and rounds reduced-precision gradients once at the
// end.
std::vector<at::Tensor> run_backward(const char* op, const RoIAlignBackwardArgs& args,
                                     RoIAlignBackwardFn backend);

template <RoIAlignForwardFn forward, RoIAlignBackwardFn backward>
struct RoIAlignOps {
  static at::Tensor roi_align(const at::Tensor& input, const at::Tensor& rois, double spatial_scale,
                              int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio,
                              bool aligned) {
    constexpr const char* op = "roi_align";
    return forward(op, prepare_forward(op, {input}, rois, std::nullopt, {spatial_scale}, pooled_h,
                                       pooled_w, sampling_ratio, aligned));
  }

  static at::Tensor roi_align_backward(const at::Tensor& grad, const at::Tensor& rois,
                                       double spatial_scale, int64_t pooled_h, int64_t pooled_w,
                                       int64_t batch_size, int64_t channels, int64_t height,
                                       int64_t width, int64_t sampling_ratio, bool aligned) {
    constexpr const char* op = "_roi_align_backward";
    return run_backward(
        op,
        prepare_backward(op, grad, rois, std::nullopt, {spatial_scale}, pooled_h, pooled_w,
                         batch_size, channels, {height}, {width}, sampling_ratio, aligned),
        backward)[0];
  }

  static at::Tensor multi_scale(at::TensorList features, const at::Tensor& rois,
                                const at::Tensor& levels, at::ArrayRef<double> scales,
                                int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio,
                                bool aligned) {
    constexpr const char* op = "multi_scale_roi_align";
    return forward(op, prepare_forward(op, features, rois, levels, scales, pooled_h, pooled_w,
                                       sampling_ratio, aligned));
  }

  static std::vector<at::Tensor> multi_scale_backward(
      const at::Tensor& grad, const at::Tensor& rois, const at::Tensor& levels,
      at::ArrayRef<double> scales, int64_t pooled_h, int64_t pooled_w, int64_t batch_size,
      int64_t channels, at::IntArrayRef heights, at::IntArrayRef widths, int64_t sampling_ratio,
      bool aligned) {
    constexpr const char* op = "_multi_scale_roi_align_backward";
    return run_backward(
        op,
        prepare_backward(op, grad, rois, levels, scales, pooled_h, pooled_w, batch_size, channels,
                         heights, widths, sampling_ratio, aligned),
        backward);
  }
};

template <RoIAlignForwardFn forward, RoIAlignBackwardFn backward>
void register_roi_align_kernels(torch::Library& m) {
  using Ops = RoIAlignOps<forward, backward>;
  m.impl("roi_align", &Ops::roi_align);
  m.impl("_roi_align_backward", &Ops::roi_align_backward);
  m.impl("multi_scale_roi_align", &Ops::multi_scale);
  m.impl("_multi_scale_roi_align_backward", &Ops::multi_scale_backward);
}

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
