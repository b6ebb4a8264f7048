#include "roi_align.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>

#include "../common/limits.h"
#include "../common/roi_align_math.h"
#include "library.h"
#include "output_memory.h"

namespace roiops {

at::ScalarType accumulate_type(at::ScalarType input_type) {
  return input_type == at::kDouble ? at::kDouble : at::kFloat;
}

bool is_supported_dtype(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16;
}

void check_levels_and_scales(const char* op, size_t num_levels,
                             at::ArrayRef<double> spatial_scales) {
  TORCH_CHECK_VALUE(num_levels > 0, op, ": expected at least one feature map");
  TORCH_CHECK_VALUE(num_levels <= static_cast<size_t>(kMaxLevels), op, ": at most ", kMaxLevels,
                    " feature levels are supported, got ", num_levels);
  TORCH_CHECK_VALUE(spatial_scales.size() == num_levels, op, ": got ", num_levels,
                    " feature maps but ", spatial_scales.size(), " spatial scales");
  for (double scale : spatial_scales) {
    TORCH_CHECK_VALUE(std::isfinite(scale) && scale > 0, op,
                      ": spatial_scale must be a positive finite number, got ", scale);
  }
}

// An output size of 0 gives an empty output, as in torchvision.
void check_pooling(const char* op, int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio) {
  TORCH_CHECK_VALUE(pooled_h >= 0 && pooled_w >= 0, op,
                    ": output_size must be non-negative, got (", pooled_h, ", ", pooled_w, ")");
  TORCH_CHECK_VALUE(pooled_h <= kMaxPooledSide && pooled_w <= kMaxPooledSide, op,
                    ": output_size must be at most ", kMaxPooledSide, " per side, got (", pooled_h,
                    ", ", pooled_w, ")");
  TORCH_CHECK_VALUE(sampling_ratio >= -1 && sampling_ratio <= kMaxSamplingRatio, op,
                    ": sampling_ratio must be -1 or 0 (adaptive) or in [1, ", kMaxSamplingRatio,
                    "], got ", sampling_ratio);
}

namespace {

// A map [N, C, H, W] to sample from, whatever its dtype.
void check_map_shape(const char* op, const char* name, const at::Tensor& f) {
  TORCH_CHECK_VALUE(f.dim() == 4, op, ": ", name, " must be a 4-D tensor [N, C, H, W], got shape ",
                    f.sizes());
  TORCH_CHECK_VALUE(f.size(2) > 0 && f.size(3) > 0, op, ": ", name,
                    " must have a non-empty height and width to sample from, got shape ",
                    f.sizes());
  // Pixel indices are int32 in the kernels; element offsets are int64.
  TORCH_CHECK_VALUE(f.size(2) < kMaxMapSide && f.size(3) < kMaxMapSide, op, ": ", name,
                    " height and width must be below 2^30, got shape ", f.sizes());
}

void check_features(const char* op, at::TensorList features, at::ArrayRef<double> spatial_scales) {
  check_levels_and_scales(op, features.size(), spatial_scales);
  const at::Tensor& first = features[0];
  for (size_t l = 0; l < features.size(); ++l) {
    const at::Tensor& f = features[l];
    const char* name = features.size() == 1 ? "input" : "features";
    TORCH_CHECK_VALUE(f.dim() == 4, op, ": ", name,
                      " must be a 4-D tensor [N, C, H, W], got shape ", f.sizes());
    TORCH_CHECK_TYPE(is_supported_dtype(f.scalar_type()), op, ": ", name,
                     " must be float32, float64, float16 or bfloat16, got ", f.scalar_type());
    check_map_shape(op, name, f);
    if (l == 0) continue;
    TORCH_CHECK_VALUE(f.size(0) == first.size(0) && f.size(1) == first.size(1), op,
                      ": all feature maps must share batch size and channels; level 0 is ",
                      first.sizes(), " but level ", l, " is ", f.sizes());
    TORCH_CHECK_TYPE(f.scalar_type() == first.scalar_type(), op,
                     ": all feature maps must have one dtype; level 0 is ", first.scalar_type(),
                     " but level ", l, " is ", f.scalar_type());
    TORCH_CHECK(f.device() == first.device(), op,
                ": all feature maps must be on one device; level 0 is on ", first.device(),
                " but level ", l, " is on ", f.device());
  }
}

at::Tensor check_rois(const char* op, const at::Tensor& rois, const at::Tensor& reference) {
  TORCH_CHECK_VALUE(
      rois.dim() == 2 && rois.size(1) == 5, op,
      ": rois must be a 2-D tensor [K, 5] of (batch_index, x1, y1, x2, y2), got shape ",
      rois.sizes());
  TORCH_CHECK(rois.device() == reference.device(), op, ": rois is on ", rois.device(),
              " but the input is on ", reference.device(), "; move both to one device");
  const at::ScalarType input_type = reference.scalar_type();
  const at::ScalarType acc_type = accumulate_type(input_type);
  // float32 boxes with reduced-precision features are accepted (and kept in float32): rounding
  // 800-pixel coordinates to float16 would move boxes by up to a quarter pixel.
  TORCH_CHECK_TYPE(rois.scalar_type() == input_type || rois.scalar_type() == acc_type, op,
                   ": rois must have the input's dtype (", input_type,
                   acc_type != input_type ? " or float32" : "", "), got ", rois.scalar_type());
  return rois.to(acc_type).contiguous();
}

at::Tensor check_levels(const char* op, const std::optional<at::Tensor>& levels,
                        const at::Tensor& rois) {
  if (!levels.has_value() || !levels->defined()) return at::Tensor();
  const at::Tensor& lv = *levels;
  TORCH_CHECK_VALUE(lv.dim() == 1 && lv.size(0) == rois.size(0), op,
                    ": levels must be a 1-D tensor with one entry per RoI ([", rois.size(0),
                    "]), got shape ", lv.sizes());
  TORCH_CHECK_TYPE(lv.scalar_type() == at::kLong, op, ": levels must be int64, got ",
                   lv.scalar_type());
  TORCH_CHECK(lv.device() == rois.device(), op, ": levels is on ", lv.device(), " but rois is on ",
              rois.device());
  return lv.contiguous();
}

at::Tensor check_grad(const char* op, const at::Tensor& grad, const at::Tensor& rois,
                      int64_t channels, int64_t pooled_h, int64_t pooled_w) {
  TORCH_CHECK_VALUE(grad.dim() == 4 && grad.size(0) == rois.size(0) && grad.size(1) == channels &&
                        grad.size(2) == pooled_h && grad.size(3) == pooled_w,
                    op, ": grad must have shape [", rois.size(0), ", ", channels, ", ", pooled_h,
                    ", ", pooled_w, "], got ", grad.sizes());
  TORCH_CHECK_TYPE(is_supported_dtype(grad.scalar_type()), op,
                   ": grad must be float32, float64, float16 or bfloat16, got ",
                   grad.scalar_type());
  TORCH_CHECK(grad.device() == rois.device(), op, ": grad is on ", grad.device(),
              " but rois is on ", rois.device());
  return grad.contiguous();
}

RoIAlignParams check_params(const char* op, const at::Tensor& rois, const at::Tensor& reference,
                            const std::optional<at::Tensor>& levels,
                            at::ArrayRef<double> spatial_scales, int64_t pooled_h, int64_t pooled_w,
                            int64_t sampling_ratio, bool aligned) {
  check_pooling(op, pooled_h, pooled_w, sampling_ratio);
  return {op,
          check_rois(op, rois, reference),
          check_levels(op, levels, rois),
          spatial_scales.vec(),
          pooled_h,
          pooled_w,
          sampling_ratio,
          aligned};
}

RoIAlignForwardArgs prepare_forward(const char* op, at::TensorList features, const at::Tensor& rois,
                                    const std::optional<at::Tensor>& levels,
                                    at::ArrayRef<double> spatial_scales, int64_t pooled_h,
                                    int64_t pooled_w, int64_t sampling_ratio, bool aligned) {
  check_features(op, features, spatial_scales);
  return {check_params(op, rois, features[0], levels, spatial_scales, pooled_h, pooled_w,
                       sampling_ratio, aligned),
          features.vec()};
}

RoIAlignBackwardArgs prepare_backward(const char* op, const at::Tensor& grad,
                                      const at::Tensor& rois,
                                      const std::optional<at::Tensor>& levels,
                                      at::ArrayRef<double> spatial_scales, int64_t pooled_h,
                                      int64_t pooled_w, int64_t batch_size, int64_t channels,
                                      at::IntArrayRef heights, at::IntArrayRef widths,
                                      int64_t sampling_ratio, bool aligned) {
  check_levels_and_scales(op, heights.size(), spatial_scales);
  TORCH_CHECK_VALUE(widths.size() == heights.size(), op, ": got ", heights.size(), " heights but ",
                    widths.size(), " widths");
  TORCH_CHECK_VALUE(batch_size >= 0 && channels >= 0, op,
                    ": batch_size and channels must be non-negative, got ", batch_size, " and ",
                    channels);
  for (size_t l = 0; l < heights.size(); ++l) {
    TORCH_CHECK_VALUE(heights[l] > 0 && widths[l] > 0 && heights[l] < kMaxMapSide &&
                          widths[l] < kMaxMapSide,
                      op, ": feature map height and width must be in [1, 2^30), got ", heights[l],
                      " x ", widths[l]);
  }
  RoIAlignParams params = check_params(op, rois, grad, levels, spatial_scales, pooled_h, pooled_w,
                                       sampling_ratio, aligned);
  at::Tensor checked_grad = check_grad(op, grad, rois, channels, pooled_h, pooled_w);
  return {std::move(params), std::move(checked_grad), batch_size,
          channels,          heights.vec(),           widths.vec()};
}

at::Tensor run_forward(RoIAlignForwardKernel kernel, const RoIAlignForwardArgs& args) {
  const at::Tensor& first = args.features[0];
  at::Tensor output =
      empty_output({args.rois.size(0), first.size(1), args.pooled_h, args.pooled_w},
                   first.options().memory_format(at::MemoryFormat::Contiguous));
  run_kernel(kernel, args, output);
  return output;
}

// Gradients of reduced-precision inputs are accumulated in float32 and rounded once, at the end.
std::vector<at::Tensor> run_backward(RoIAlignBackwardKernel kernel,
                                     const RoIAlignBackwardArgs& args) {
  const auto options = args.grad.options().dtype(accumulate_type(args.grad.scalar_type()));
  std::vector<at::Tensor> grads;
  for (size_t l = 0; l < args.heights.size(); ++l) {
    grads.push_back(
        empty_output({args.batch_size, args.channels, args.heights[l], args.widths[l]}, options)
            .zero_());
  }
  if (args.grad.numel() > 0 && args.batch_size > 0) {  // an empty output has no gradient to add
    const at::OptionalDeviceGuard device_guard(at::device_of(args.grad));
    kernel(args, grads);
  }
  for (at::Tensor& g : grads) {
    if (g.scalar_type() == args.grad.scalar_type()) continue;
    at::Tensor rounded = empty_output(g.sizes(), g.options().dtype(args.grad.scalar_type()));
    rounded.copy_(g);
    g = std::move(rounded);
  }
  return grads;
}

}  // namespace

void check_roi_align_geometry(const char* op, const at::Tensor& input, const at::Tensor& rois,
                              double spatial_scale, int64_t pooled_h, int64_t pooled_w,
                              int64_t sampling_ratio) {
  check_levels_and_scales(op, 1, {spatial_scale});
  check_map_shape(op, "input", input);
  TORCH_CHECK_VALUE(
      rois.dim() == 2 && rois.size(1) == 5, op,
      ": rois must be a 2-D tensor [K, 5] of (batch_index, x1, y1, x2, y2), got shape ",
      rois.sizes());
  check_pooling(op, pooled_h, pooled_w, sampling_ratio);
}

at::Tensor roi_align(RoIAlignForwardKernel kernel, const at::Tensor& input, const at::Tensor& rois,
                     double spatial_scale, int64_t pooled_h, int64_t pooled_w,
                     int64_t sampling_ratio, bool aligned) {
  return run_forward(
      kernel, prepare_forward("roi_align", {input}, rois, std::nullopt, {spatial_scale}, pooled_h,
                              pooled_w, sampling_ratio, aligned));
}

at::Tensor roi_align_backward(RoIAlignBackwardKernel kernel, const at::Tensor& grad,
                              const at::Tensor& rois, double spatial_scale, int64_t pooled_h,
                              int64_t pooled_w, int64_t batch_size, int64_t channels,
                              int64_t height, int64_t width, int64_t sampling_ratio, bool aligned) {
  return run_backward(
      kernel, prepare_backward("_roi_align_backward", grad, rois, std::nullopt, {spatial_scale},
                               pooled_h, pooled_w, batch_size, channels, {height}, {width},
                               sampling_ratio, aligned))[0];
}

at::Tensor multi_scale_roi_align(RoIAlignForwardKernel kernel, at::TensorList features,
                                 const at::Tensor& rois, const at::Tensor& levels,
                                 at::ArrayRef<double> spatial_scales, int64_t pooled_h,
                                 int64_t pooled_w, int64_t sampling_ratio, bool aligned) {
  return run_forward(
      kernel, prepare_forward("multi_scale_roi_align", features, rois, levels, spatial_scales,
                              pooled_h, pooled_w, sampling_ratio, aligned));
}

std::vector<at::Tensor> multi_scale_roi_align_backward(
    RoIAlignBackwardKernel kernel, const at::Tensor& grad, const at::Tensor& rois,
    const at::Tensor& levels, at::ArrayRef<double> spatial_scales, int64_t pooled_h,
    int64_t pooled_w, int64_t batch_size, int64_t channels, at::IntArrayRef heights,
    at::IntArrayRef widths, int64_t sampling_ratio, bool aligned) {
  return run_backward(
      kernel, prepare_backward("_multi_scale_roi_align_backward", grad, rois, levels,
                               spatial_scales, pooled_h, pooled_w, batch_size, channels, heights,
                               widths, sampling_ratio, aligned));
}

}  // namespace roiops
