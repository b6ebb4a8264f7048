// RoIAlign on the CPU: forward parallel over RoIs, backward parallel over channels.
//
// Per RoI, the four pixel offsets and weights of every (valid) sample are computed once and reused
// for all channels, as in torchvision. Both passes visit samples in torchvision's order, so results
// are bit-identical to torchvision's CPU kernel in float32/float64 -- the backward too, because a
// channel's gradient plane is owned by one thread that adds RoI after RoI in index order.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

#include "../common/roi_align_math.h"
#include "../ops/bind_kernel.h"
#include "../ops/roi_align.h"
#include "roi_samples.h"

namespace roiops {
namespace {

using namespace roi_align_math;
using cpu::RoISamples;
using cpu::SamplePoint;

// torchvision reads rois[k, 0] out of bounds when it is not a batch index; here it is an error.
// (A level index that names no map gives a zero row, as torchvision's pooler gives one.)
template <typename acc_t>
void check_batch_indices(const char* op, const acc_t* rois, int64_t num_rois, int64_t batch) {
  for (int64_t k = 0; k < num_rois; ++k) {
    const acc_t b = rois[5 * k];
    TORCH_CHECK_VALUE(is_batch_index(b, batch), op, ": rois[", k, ", 0] = ", b,
                      " is not a batch index of the input (batch size ", batch, ")");
  }
}

// Visiting order of the forward pass: by level and image, then in bands of 32 feature rows swept
// left to right, so that RoIs that overlap are pooled one after the other and find their pixels --
// all C planes of them -- still in cache (box-head case, 2-core CPU: 259 -> 140-190 ms, noisy).
// Outputs are independent, so the order changes no result.
template <typename scalar_t, typename acc_t>
std::vector<int64_t> spatial_order(const FeaturePyramid<scalar_t, acc_t>& pyramid,
                                   const acc_t* rois, const int64_t* levels, int64_t num_rois) {
  constexpr double kBandRows = 32;
  auto finite = [](double v) { return v == v ? v : std::numeric_limits<double>::infinity(); };
  std::vector<std::tuple<int64_t, double, double, double>> keys(num_rois);
  for (int64_t k = 0; k < num_rois; ++k) {
    const acc_t* r = rois + 5 * k;
    const int64_t level = levels != nullptr ? levels[k] : 0;
    const bool pooled = is_level_index(level, pyramid.num_levels);
    const double scale = pooled ? static_cast<double>(pyramid.scale[level]) : 1.0;
    const double centre_y = (static_cast<double>(r[2]) + r[4]) / 2 * scale;
    const double centre_x = (static_cast<double>(r[1]) + r[3]) / 2 * scale;
    keys[k] = {level, finite(r[0]), std::floor(finite(centre_y / kBandRows)), finite(centre_x)};
  }
  std::vector<int64_t> order(num_rois);
  for (int64_t k = 0; k < num_rois; ++k) order[k] = k;
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return keys[a] < keys[b]; });
  return order;
}

void forward_cpu(const RoIAlignForwardArgs& a, at::Tensor& output) {
  std::vector<at::Tensor> features;  // the CPU loops read planes; other layouts are copied
  for (const at::Tensor& f : a.features) features.push_back(f.contiguous());
  const at::Tensor& first = features[0];
  const int64_t num_rois = a.rois.size(0);
  const int64_t channels = first.size(1);
  const int64_t bins = a.pooled_h * a.pooled_w;

  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, first.scalar_type(), "roi_align_forward_cpu", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        const auto pyramid = make_pyramid<const scalar_t, acc_t>(features, a.spatial_scales);
        const acc_t* rois = a.rois.data_ptr<acc_t>();
        const int64_t* levels = a.levels.defined() ? a.levels.data_ptr<int64_t>() : nullptr;
        check_batch_indices(a.op, rois, num_rois, pyramid.batch);
        scalar_t* out = output.data_ptr<scalar_t>();
        const std::vector<int64_t> order = spatial_order(pyramid, rois, levels, num_rois);

        at::parallel_for(0, num_rois, 1, [&](int64_t begin, int64_t end) {
          RoISamples<acc_t> samples;
          for (int64_t idx = begin; idx < end; ++idx) {
            const int64_t k = order[idx];
            if (!samples.load(pyramid, rois, levels, k, a.pooled_h, a.pooled_w, a.sampling_ratio,
                              a.aligned)) {
              std::fill(out + k * channels * bins, out + (k + 1) * channels * bins, scalar_t(0));
              continue;
            }
            const int level = samples.level;
            const acc_t count = forward_count(samples.geometry);
            for (int64_t c = 0; c < channels; ++c) {
              const scalar_t* plane =
                  pyramid.data[level] + pyramid.plane_offset(level, samples.batch_index, c);
              scalar_t* out_c = out + (k * channels + c) * bins;
              for (int64_t bin = 0; bin < bins; ++bin) {
                acc_t sum = 0;
                for (int64_t s = samples.bin_begin[bin]; s < samples.bin_begin[bin + 1]; ++s) {
                  const SamplePoint<acc_t>& pt = samples.points[s];
                  sum += interpolate(pt.weights, static_cast<acc_t>(plane[pt.offset[0]]),
                                     static_cast<acc_t>(plane[pt.offset[1]]),
                                     static_cast<acc_t>(plane[pt.offset[2]]),
                                     static_cast<acc_t>(plane[pt.offset[3]]));
                }
                out_c[bin] = static_cast<scalar_t>(sum / count);
              }
            }
          }
        });
      });
}

// Backward: each thread owns a range of channels and adds RoI after RoI in index order, which is
// torchvision's summation order per gradient plane (bit-identical sums). RoIs are scattered a few
// channels at a time, so the planes being written (8 x H x W) stay in the cache instead of
// every RoI touching its footprint in all of the thread's planes; the samples of a batch of RoIs
// are built once and shared by all threads.
constexpr int64_t kBackwardChannelsPerPass = 8;
constexpr int64_t kBackwardPointBudget = int64_t{1} << 20;  // sample points per batch of RoIs

void backward_cpu(const RoIAlignBackwardArgs& a, std::vector<at::Tensor>& grads) {
  const int64_t num_rois = a.rois.size(0);
  const int64_t bins = a.pooled_h * a.pooled_w;
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, a.grad.scalar_type(), "roi_align_backward_cpu", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        const auto pyramid = make_pyramid<acc_t, acc_t>(grads, a.spatial_scales);
        const acc_t* rois = a.rois.data_ptr<acc_t>();
        const int64_t* levels = a.levels.defined() ? a.levels.data_ptr<int64_t>() : nullptr;
        check_batch_indices(a.op, rois, num_rois, pyramid.batch);
        const scalar_t* grad = a.grad.data_ptr<scalar_t>();

        std::vector<RoISamples<acc_t>> batch;
        std::vector<int64_t> batch_rois;  // RoI index of each loaded entry, ascending
        for (int64_t next = 0; next < num_rois;) {
          // Load RoIs in order until the batch holds kBackwardPointBudget points (at least one
          // RoI).
          batch_rois.clear();
          int64_t points = 0;
          while (next < num_rois && (batch_rois.empty() || points < kBackwardPointBudget)) {
            if (batch.size() <= batch_rois.size()) batch.emplace_back();
            RoISamples<acc_t>& s = batch[batch_rois.size()];
            if (s.load(pyramid, rois, levels, next, a.pooled_h, a.pooled_w, a.sampling_ratio,
                       a.aligned)) {
              batch_rois.push_back(next);
              points += static_cast<int64_t>(s.points.size());
            }
            ++next;
          }
          at::parallel_for(
              0, a.channels, kBackwardChannelsPerPass, [&](int64_t c_begin, int64_t c_end) {
                for (int64_t c0 = c_begin; c0 < c_end; c0 += kBackwardChannelsPerPass) {
                  const int64_t c1 = std::min(c0 + kBackwardChannelsPerPass, c_end);
                  for (size_t i = 0; i < batch_rois.size(); ++i) {
                    const RoISamples<acc_t>& samples = batch[i];
                    const int64_t k = batch_rois[i];
                    const int level = samples.level;
                    const acc_t count = backward_count(samples.geometry);
                    for (int64_t c = c0; c < c1; ++c) {
                      acc_t* plane =
                          pyramid.data[level] + pyramid.plane_offset(level, samples.batch_index, c);
                      const scalar_t* grad_c = grad + (k * a.channels + c) * bins;
                      for (int64_t bin = 0; bin < bins; ++bin) {
                        const acc_t grad_bin = static_cast<acc_t>(grad_c[bin]);
                        for (int64_t p = samples.bin_begin[bin]; p < samples.bin_begin[bin + 1];
                             ++p) {
                          const SamplePoint<acc_t>& pt = samples.points[p];
                          const acc_t w[4] = {pt.weights.w1, pt.weights.w2, pt.weights.w3,
                                              pt.weights.w4};
                          for (int corner = 0; corner < 4; ++corner) {
                            plane[pt.offset[corner]] += mul_exact(grad_bin, w[corner]) / count;
                          }
                        }
                      }
                    }
                  }
                }
              });
        }
      });
}

}  // namespace

TORCH_LIBRARY_IMPL(roiops, CPU, m) { register_roi_align_kernels<&forward_cpu, &backward_cpu>(m); }

}  // namespace roiops
