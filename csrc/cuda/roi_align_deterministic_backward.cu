// RoIAlign backward on CUDA under torch.use_deterministic_algorithms(True).
//
// The default backward (roi_align_kernel.cu) scatters with atomics, so a pixel's contributions are
// added in whatever order threads arrive. Here the gradient is gathered instead:
//   1. one thread per (RoI, bin) counts the bilinear corners its samples touch inside the map;
//   2. after a scan, the same threads write one entry per corner -- (pixel key, source bin,
//      weight) -- in (RoI, bin, iy, ix, corner) order, which is torchvision's CPU loop order;
//   3. a stable sort by pixel key groups each pixel's entries and keeps that order;
//   4. one thread per (channel, entry) that heads a run of equal keys sums the run, g * w / count,
//      in that order, and writes the pixel.
// Every pixel's gradient is then the same float sum, in the same order, as torchvision's CPU
// backward: bit-identical to it and to roiops' CPU kernel, on every run. It costs a sort, memory
// for the entries (4 per sample) and one host sync: the number of entries, which sizes them.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>

#include <vector>

#include "../common/limits.h"
#include "../ops/roi_align.h"
#include "cuda_helpers.cuh"
#include "roi_align_sampling.cuh"

namespace roiops {
namespace {

using namespace roi_align_math;
using namespace roi_align_sampling;
using cuda::elementwise_blocks;
using cuda::kThreadsPerBlock;

// Pixel keys: level l's [N, H_l, W_l] pixels are keys [begin[l], begin[l + 1]).
struct PixelKeys {
  int64_t begin[kMaxLevels + 1];
};

// Thread per (RoI k, bin): corners[k * bins + bin] = 4 x the samples of the bin inside the map;
// sample_count[k] = the RoI's backward divisor.
template <typename acc_t>
__global__ void count_corners_kernel(const acc_t* __restrict__ rois,
                                     const int64_t* __restrict__ levels,
                                     const FeaturePyramid<acc_t, acc_t> pyr, int64_t num_rois,
                                     int pooled_h, int pooled_w, int sampling_ratio, bool aligned,
                                     int64_t* __restrict__ corners,
                                     acc_t* __restrict__ sample_count) {
  const int bins = pooled_h * pooled_w;
  for (const int64_t i : cuda::grid_stride(num_rois * bins)) {
    const int64_t k = i / bins;
    const int bin = static_cast<int>(i % bins);
    RoI<acc_t> r;
    if (!read_roi(pyr, rois, levels, k, pooled_h, pooled_w, sampling_ratio, aligned, &r)) {
      corners[i] = 0;
      continue;
    }
    if (bin == 0) sample_count[k] = backward_count(r.geometry);
    int64_t n = 0;
    for_each_sample<acc_t>(r, pyr.height[r.level], pyr.width[r.level], bin / pooled_w,
                           bin % pooled_w, nullptr, nullptr,
                           [&](const AxisTap<acc_t>&, const AxisTap<acc_t>&) { n += 4; });
    corners[i] = n;
  }
}

// Same threads as count_corners_kernel: the entries of bin i go to [first[i], first[i] +
// corners[i]) and never past it, even if the walk below disagreed with the count.
template <typename acc_t>
__global__ void write_corners_kernel(const acc_t* __restrict__ rois,
                                     const int64_t* __restrict__ levels,
                                     const FeaturePyramid<acc_t, acc_t> pyr, const PixelKeys keys,
                                     int64_t num_rois, int pooled_h, int pooled_w,
                                     int sampling_ratio, bool aligned,
                                     const int64_t* __restrict__ first,
                                     const int64_t* __restrict__ corners, int64_t* __restrict__ key,
                                     int64_t* __restrict__ source, acc_t* __restrict__ weight) {
  const int bins = pooled_h * pooled_w;
  for (const int64_t i : cuda::grid_stride(num_rois * bins)) {
    RoI<acc_t> r;
    if (!read_roi(pyr, rois, levels, i / bins, pooled_h, pooled_w, sampling_ratio, aligned, &r)) {
      continue;
    }
    const int bin = static_cast<int>(i % bins);
    const int height = pyr.height[r.level], width = pyr.width[r.level];
    const int64_t plane = keys.begin[r.level] + r.batch_index * height * width;
    int64_t e = first[i];
    const int64_t end = e + corners[i];
    for_each_sample<acc_t>(r, height, width, bin / pooled_w, bin % pooled_w, nullptr, nullptr,
                           [&](const AxisTap<acc_t>& ty, const AxisTap<acc_t>& tx) {
                             const BilinearWeights<acc_t> wt = bilinear_weights(ty, tx);
                             const int64_t row_lo = plane + static_cast<int64_t>(ty.low) * width;
                             const int64_t row_hi = plane + static_cast<int64_t>(ty.high) * width;
                             const int64_t pixels[4] = {row_lo + tx.low, row_lo + tx.high,
                                                        row_hi + tx.low, row_hi + tx.high};
                             const acc_t w[4] = {wt.w1, wt.w2, wt.w3, wt.w4};
                             for (int corner = 0; corner < 4 && e < end; ++corner, ++e) {
                               key[e] = pixels[corner];
                               source[e] = i;
                               weight[e] = w[corner];
                             }
                           });
  }
}

// Thread per (channel c, entry e) of the key-sorted entries; the thread whose entry heads a run of
// equal keys sums the run (entries order[e], order[e + 1], ...) and writes that pixel of channel c.
template <typename scalar_t>
__global__ void gather_corners_kernel(
    const scalar_t* __restrict__ grad, int bins,
    const FeaturePyramid<at::opmath_type<scalar_t>, at::opmath_type<scalar_t>> pyr,
    const PixelKeys keys, const int64_t* __restrict__ sorted_key, int64_t entries,
    const int64_t* __restrict__ order, const int64_t* __restrict__ source,
    const at::opmath_type<scalar_t>* __restrict__ weight,
    const at::opmath_type<scalar_t>* __restrict__ sample_count) {
  using acc_t = at::opmath_type<scalar_t>;
  for (const int64_t i : cuda::grid_stride(pyr.channels * entries)) {
    const int64_t c = i / entries, head = i % entries;
    const int64_t pixel_key = sorted_key[head];
    if (head > 0 && sorted_key[head - 1] == pixel_key) continue;  // not the head of its run
    acc_t sum = 0;
    for (int64_t e = head; e < entries && sorted_key[e] == pixel_key; ++e) {
      const int64_t j = order[e], k = source[j] / bins, bin = source[j] % bins;
      const acc_t g = static_cast<acc_t>(grad[(k * pyr.channels + c) * bins + bin]);
      sum += mul_exact(g, weight[j]) / sample_count[k];  // (g * w) / count, as torchvision
    }
    int level = 0;
    while (pixel_key >= keys.begin[level + 1]) ++level;
    const int64_t pixel = pixel_key - keys.begin[level];
    const int64_t width = pyr.width[level], height = pyr.height[level];
    const int64_t x = pixel % width, y = pixel / width % height, b = pixel / width / height;
    pyr.data[level][pyr.plane_offset(level, b, c) + y * pyr.stride_h[level] +
                    x * pyr.stride_w[level]] = sum;
  }
}

}  // namespace

void backward_deterministic_cuda(const RoIAlignBackwardArgs& a, std::vector<at::Tensor>& grads) {
  const int64_t num_rois = a.rois.size(0), bins = a.pooled_h * a.pooled_w;
  const auto long_opts = a.rois.options().dtype(at::kLong);
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, a.grad.scalar_type(), "roi_align_backward_deterministic", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        const auto pyramid = make_pyramid<acc_t, acc_t>(grads, a.spatial_scales);
        PixelKeys keys{};
        for (int l = 0; l < pyramid.num_levels; ++l) {
          keys.begin[l + 1] = keys.begin[l] + pyramid.batch * pyramid.height[l] * pyramid.width[l];
        }
        const acc_t* rois = a.rois.data_ptr<acc_t>();
        const int64_t* levels = a.levels.defined() ? a.levels.data_ptr<int64_t>() : nullptr;
        const int ph = static_cast<int>(a.pooled_h), pw = static_cast<int>(a.pooled_w);
        const int sr = static_cast<int>(a.sampling_ratio);
        const unsigned blocks = elementwise_blocks(num_rois * bins);

        at::Tensor corners = at::empty({num_rois * bins}, long_opts);
        at::Tensor sample_count = at::empty({num_rois}, a.rois.options());
        cuda::launch(count_corners_kernel<acc_t>, blocks, kThreadsPerBlock, rois, levels, pyramid,
                     num_rois, ph, pw, sr, a.aligned, corners.data_ptr<int64_t>(),
                     sample_count.data_ptr<acc_t>());
        const at::Tensor last = corners.cumsum(0);
        const int64_t entries = last[-1].item<int64_t>();  // the host sync
        if (entries == 0) return;
        const at::Tensor first = last - corners;
        at::Tensor key = at::empty({entries}, long_opts);
        at::Tensor source = at::empty({entries}, long_opts);
        at::Tensor weight = at::empty({entries}, a.rois.options());
        cuda::launch(write_corners_kernel<acc_t>, blocks, kThreadsPerBlock, rois, levels, pyramid,
                     keys, num_rois, ph, pw, sr, a.aligned, first.data_ptr<int64_t>(),
                     corners.data_ptr<int64_t>(), key.data_ptr<int64_t>(),
                     source.data_ptr<int64_t>(), weight.data_ptr<acc_t>());

        const auto [sorted_key, order] = key.sort(/*stable=*/true, /*dim=*/0, false);
        cuda::launch(gather_corners_kernel<scalar_t>, elementwise_blocks(a.channels * entries),
                     kThreadsPerBlock, a.grad.data_ptr<scalar_t>(), static_cast<int>(bins), pyramid,
                     keys, sorted_key.data_ptr<int64_t>(), entries, order.data_ptr<int64_t>(),
                     source.data_ptr<int64_t>(), weight.data_ptr<acc_t>(),
                     sample_count.data_ptr<acc_t>());
      });
}

}  // namespace roiops
