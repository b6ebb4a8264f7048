// RoIAlign of quantized feature maps (QuantizedCPU): torchvision's quantized roi_align.
//
// Registered directly, not through the op layer's roi_align(kernel, ...): that allocates a float
// output and checks float dtypes, where this one returns a quantized tensor. It shares the op
// layer's dtype-free checks (check_roi_align_geometry) and its pyramid of maps (make_pyramid).
//
// Same geometry and samples as the float kernel (roi_samples.h), then torchvision's quantized
// arithmetic: the raw integer values are weighted in float32, the zero point is removed once per
// bin through the sum of the weights, the mean is scaled by the input's scale and requantized with
// it (round half to even, clamped to the type's range). The RoIs are quantized too (dequantized
// here as ATen does: scale * (q - zero_point) in float32), and, as in torchvision, the batch holds
// one image: the batch index of a quantized RoI is not exact, so it is not used.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "../common/roi_align_math.h"
#include "../cpu/roi_samples.h"
#include "../ops/roi_align.h"

namespace roiops {
namespace {

using namespace roi_align_math;

// The RoIs as float32 [K, 5], batch index 0.
at::Tensor dequantized_rois(const at::Tensor& rois) {
  const at::Tensor q = rois.int_repr().to(at::kInt).contiguous();
  const float scale = static_cast<float>(rois.q_scale());
  const int32_t zero_point = static_cast<int32_t>(rois.q_zero_point());
  at::Tensor out = at::empty({rois.size(0), 5}, rois.options().dtype(at::kFloat));
  const int32_t* in = q.data_ptr<int32_t>();
  float* o = out.data_ptr<float>();
  for (int64_t i = 0; i < q.numel(); ++i) {
    o[i] = i % 5 == 0 ? 0.f : scale * static_cast<float>(in[i] - zero_point);
  }
  return out;
}

template <typename qint_t>
void pool_quantized(const at::Tensor& input, const at::Tensor& rois, double spatial_scale,
                    int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio, bool aligned,
                    at::Tensor& output) {
  using underlying_t = typename qint_t::underlying;
  const at::Tensor values = input.int_repr().contiguous();
  const int64_t num_rois = rois.size(0), channels = input.size(1), bins = pooled_h * pooled_w;
  const auto map = make_pyramid<const underlying_t, float>({values}, {spatial_scale});
  const float scale = static_cast<float>(input.q_scale());
  const float inverse_scale = 1.0f / scale;
  const int64_t zero_point = input.q_zero_point();
  constexpr int64_t kMin = std::numeric_limits<underlying_t>::min();
  constexpr int64_t kMax = std::numeric_limits<underlying_t>::max();
  const float* r = rois.data_ptr<float>();
  qint_t* out = output.data_ptr<qint_t>();
  at::parallel_for(0, num_rois, 1, [&](int64_t begin, int64_t end) {
    cpu::RoISamples<float> samples;
    for (int64_t k = begin; k < end; ++k) {
      samples.load(map, r, nullptr, k, pooled_h, pooled_w, sampling_ratio, aligned);
      const float count = forward_count(samples.geometry);
      for (int64_t c = 0; c < channels; ++c) {
        const underlying_t* plane = map.data[0] + map.plane_offset(0, 0, c);
        for (int64_t bin = 0; bin < bins; ++bin) {
          float sum = 0, weight_sum = 0;
          for (int64_t s = samples.bin_begin[bin]; s < samples.bin_begin[bin + 1]; ++s) {
            const cpu::SamplePoint<float>& pt = samples.points[s];
            sum += interpolate(pt.weights, static_cast<float>(plane[pt.offset[0]]),
                               static_cast<float>(plane[pt.offset[1]]),
                               static_cast<float>(plane[pt.offset[2]]),
                               static_cast<float>(plane[pt.offset[3]]));
            weight_sum += pt.weights.w1 + pt.weights.w2 + pt.weights.w3 + pt.weights.w4;
          }
          const float mean = scale * (sum - static_cast<float>(zero_point) * weight_sum) / count;
          const int64_t q = zero_point + static_cast<int64_t>(std::nearbyint(mean * inverse_scale));
          out[(k * channels + c) * bins + bin] =
              qint_t(static_cast<underlying_t>(std::min(std::max(q, kMin), kMax)));
        }
      }
    }
  });
}

at::Tensor roi_align_quantized(const at::Tensor& input, const at::Tensor& rois,
                               double spatial_scale, int64_t pooled_h, int64_t pooled_w,
                               int64_t sampling_ratio, bool aligned) {
  constexpr const char* op = "roi_align";
  TORCH_CHECK_VALUE(input.is_quantized() && rois.is_quantized(), op,
                    ": if input is quantized, rois must also be quantized (as in torchvision); "
                    "got input of dtype ",
                    input.scalar_type(), " and rois of dtype ", rois.scalar_type());
  TORCH_CHECK_TYPE(rois.scalar_type() == input.scalar_type(), op,
                   ": quantized rois must have the input's dtype (", input.scalar_type(), "), got ",
                   rois.scalar_type());
  TORCH_CHECK_VALUE(
      input.qscheme() == at::kPerTensorAffine && rois.qscheme() == at::kPerTensorAffine, op,
      ": quantized input and rois must be quantized per tensor");
  check_roi_align_geometry(op, input, rois, spatial_scale, pooled_h, pooled_w, sampling_ratio);
  // torchvision's wording first, so that code matching on it keeps working.
  TORCH_CHECK_VALUE(input.size(0) == 1, op,
                    ": Only one image per batch is allowed in quantized roi_align (the batch index "
                    "of a quantized RoI is not exact), got a batch of ",
                    input.size(0));
  at::Tensor output =
      at::_empty_affine_quantized({rois.size(0), input.size(1), pooled_h, pooled_w},
                                  input.options(), input.q_scale(), input.q_zero_point());
  if (output.numel() == 0) return output;
  const at::Tensor float_rois = dequantized_rois(rois);
  AT_DISPATCH_QINT_TYPES(input.scalar_type(), "roi_align_quantized", [&] {
    pool_quantized<scalar_t>(input, float_rois, spatial_scale, pooled_h, pooled_w, sampling_ratio,
                             aligned, output);
  });
  return output;
}

}  // namespace

TORCH_LIBRARY_IMPL(roiops, QuantizedCPU, m) { m.impl("roi_align", &roi_align_quantized); }

}  // namespace roiops
