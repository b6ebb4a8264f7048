// RoIAlign under torch.autocast (CPU and CUDA), as torchvision's autocast kernels behave: the RoIs
// are cast to float32 (unless float64), the result has the input's dtype.
//
// torchvision casts the feature map to float32 as well and rounds the float32 result back to the
// input's dtype. roiops' kernels accumulate half precision in float32 already, reading each value
// converted exactly, so casting only the RoIs gives the same bits -- without a float32 copy of
// every feature map. Only the forward ops need this: autograd records them with the cast RoIs.

#include <ATen/autocast_mode.h>
#include <torch/library.h>

#include "ops/library.h"

namespace roiops {
namespace {

template <c10::DispatchKey key, c10::DeviceType device>
at::Tensor roi_align_autocast(const at::Tensor& input, const at::Tensor& rois, double spatial_scale,
                              c10::SymInt pooled_h, c10::SymInt pooled_w, int64_t sampling_ratio,
                              bool aligned) {
  const c10::impl::ExcludeDispatchKeyGuard no_autocast(key);
  static const auto op = find_op<at::Tensor(const at::Tensor&, const at::Tensor&, double,
                                            c10::SymInt, c10::SymInt, int64_t, bool)>("roi_align");
  return op.call(input, at::autocast::cached_cast(at::kFloat, rois, device), spatial_scale,
                 pooled_h, pooled_w, sampling_ratio, aligned);
}

template <c10::DispatchKey key, c10::DeviceType device>
at::Tensor multi_scale_roi_align_autocast(at::TensorList features, const at::Tensor& rois,
                                          const at::Tensor& levels,
                                          at::ArrayRef<double> spatial_scales, c10::SymInt pooled_h,
                                          c10::SymInt pooled_w, int64_t sampling_ratio,
                                          bool aligned) {
  const c10::impl::ExcludeDispatchKeyGuard no_autocast(key);
  static const auto op =
      find_op<at::Tensor(at::TensorList, const at::Tensor&, const at::Tensor&, at::ArrayRef<double>,
                         c10::SymInt, c10::SymInt, int64_t, bool)>("multi_scale_roi_align");
  return op.call(features, at::autocast::cached_cast(at::kFloat, rois, device), levels,
                 spatial_scales, pooled_h, pooled_w, sampling_ratio, aligned);
}

template <c10::DispatchKey key, c10::DeviceType device>
void register_autocast(torch::Library& m) {
  m.impl("roi_align", &roi_align_autocast<key, device>);
  m.impl("multi_scale_roi_align", &multi_scale_roi_align_autocast<key, device>);
}

}  // namespace

TORCH_LIBRARY_IMPL(roiops, AutocastCPU, m) {
  register_autocast<c10::DispatchKey::AutocastCPU, c10::DeviceType::CPU>(m);
}

TORCH_LIBRARY_IMPL(roiops, AutocastCUDA, m) {
  register_autocast<c10::DispatchKey::AutocastCUDA, c10::DeviceType::CUDA>(m);
}

}  // namespace roiops
