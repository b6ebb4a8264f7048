// RoIAlign on CUDA, one kernel for one or many feature levels.
//
// One block per (RoI, chunk of channels). The RoI's geometry is computed once per block and the
// bilinear taps of its bins are separable -- the y taps depend only on (ph, iy), the x taps only on
// (pw, ix) -- so the block stores PH*grid_h + PW*grid_w taps in shared memory instead of every
// thread recomputing PH*PW*grid_h*grid_w of them (torchvision's per-output kernel recomputes all of
// them for every channel). Threads then walk the chunk's outputs:
//   * channel-first maps (NCHW): consecutive threads take consecutive bins of one channel, so the
//     gathers of a warp fall in one small window of one plane and the output writes are contiguous;
//   * channels-last maps (NHWC, stride_c == 1): consecutive threads take consecutive channels
//     of one bin, so every gather of a warp is one contiguous row of channels -- no NCHW copy.
// A RoI whose grid would not fit in shared memory (huge box, adaptive grid) computes taps per
// thread, visiting only the samples inside the map (bisection, see roi_align_math.h).
//
// The backward scatters with atomics; under torch.use_deterministic_algorithms(True) it gathers
// instead, in a fixed order (see "Deterministic backward" below).
//
// A batch index outside [0, N) or a level index outside [0, L) -- such as assign_levels' -1 for a
// box with no defined level -- gives a zero output row and no gradient: checking on the host would
// cost a device sync, and no memory outside the maps is touched.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "../common/roi_align_math.h"
#include "../roi_align_args.h"
#include "cuda_helpers.cuh"

namespace roiops {
namespace {

using namespace roi_align_math;
using cuda::ceil_div;

constexpr int kThreads = 256;
// Taps per axis kept in shared memory: PH * grid_h <= 512 covers 7x7 and 14x14 outputs up to
// adaptive grids of 36 (boxes ~250 pixels on the level they are pooled from).
constexpr int kMaxSharedTaps = 512;

// Block (k, y) owns channels [y * channels_per_block, ...) of RoI k: outputs [cn, PH, PW],
// contiguous.
struct BlockSlice {
  int64_t roi;
  int64_t first_channel;
  int channels;  // cn: fewer in the last chunk
  int bins;      // PH * PW
  int64_t work;  // cn * bins: up to 128 channels x 4096^2 bins, beyond int
  int64_t first_output;
};

__device__ __forceinline__ BlockSlice block_slice(int64_t channels, int channels_per_block,
                                                  int bins) {
  BlockSlice s;
  s.roi = blockIdx.x;
  s.first_channel = static_cast<int64_t>(blockIdx.y) * channels_per_block;
  const int64_t left = channels - s.first_channel;
  s.channels = static_cast<int>(left < channels_per_block ? left : channels_per_block);
  s.bins = bins;
  s.work = static_cast<int64_t>(s.channels) * bins;
  s.first_output = (s.roi * channels + s.first_channel) * bins;
  return s;
}

template <typename acc_t>
struct BlockRoI {
  int level;
  int64_t batch_index;
  RoIGeometry<acc_t> geometry;
  bool taps_in_shared;
};

// Reads RoI k; false if its batch or level index is out of range.
template <typename scalar_t, typename acc_t>
__device__ __forceinline__ bool read_roi(const FeaturePyramid<scalar_t, acc_t>& pyr,
                                         const acc_t* __restrict__ rois,
                                         const int64_t* __restrict__ levels, int64_t k,
                                         int pooled_h, int pooled_w, int sampling_ratio,
                                         bool aligned, BlockRoI<acc_t>* r) {
  const acc_t* roi = rois + 5 * k;
  const acc_t b = roi[0];
  if (!(b > acc_t(-1) && b < static_cast<acc_t>(pyr.batch))) return false;
  const int64_t level = levels != nullptr ? levels[k] : 0;
  if (level < 0 || level >= pyr.num_levels) return false;
  r->level = static_cast<int>(level);
  r->batch_index = static_cast<int64_t>(b);
  r->geometry = roi_geometry(roi[1], roi[2], roi[3], roi[4], pyr.scale[r->level], pooled_h,
                             pooled_w, sampling_ratio, aligned);
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
// order (iy outer, ix inner).
template <typename acc_t, typename Visit>
__device__ __forceinline__ void for_each_sample(const BlockRoI<acc_t>& r, int height, int width,
                                                int ph, int pw, const AxisTap<acc_t>* y_taps,
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

template <typename scalar_t, bool kChannelFastest>
__global__ void __launch_bounds__(kThreads)
    roi_align_forward_kernel(const FeaturePyramid<const scalar_t, at::opmath_type<scalar_t>> pyr,
                             const at::opmath_type<scalar_t>* __restrict__ rois,
                             const int64_t* __restrict__ levels, int pooled_h, int pooled_w,
                             int sampling_ratio, bool aligned, int channels_per_block,
                             scalar_t* __restrict__ out) {
  using acc_t = at::opmath_type<scalar_t>;
  __shared__ AxisTap<acc_t> y_taps[kMaxSharedTaps];
  __shared__ AxisTap<acc_t> x_taps[kMaxSharedTaps];

  const BlockSlice w = block_slice(pyr.channels, channels_per_block, pooled_h * pooled_w);
  const int cn = w.channels, bins = w.bins;
  scalar_t* out_chunk = out + w.first_output;

  BlockRoI<acc_t> r;
  if (!read_roi(pyr, rois, levels, w.roi, pooled_h, pooled_w, sampling_ratio, aligned, &r)) {
    for (int64_t i = threadIdx.x; i < w.work; i += blockDim.x) out_chunk[i] = scalar_t(0);
    return;  // uniform across the block: no thread reaches the barrier below
  }
  const int height = pyr.height[r.level], width = pyr.width[r.level];
  r.taps_in_shared =
      fill_shared_taps(r.geometry, height, width, pooled_h, pooled_w, y_taps, x_taps);
  const acc_t count = forward_count(r.geometry);
  const int64_t sy = pyr.stride_h[r.level], sx = pyr.stride_w[r.level];

  for (int64_t i = threadIdx.x; i < w.work; i += blockDim.x) {
    const int c_local = static_cast<int>(kChannelFastest ? i % cn : i / bins);
    const int bin = static_cast<int>(kChannelFastest ? i / cn : i % bins);
    const scalar_t* plane =
        pyr.data[r.level] + pyr.plane_offset(r.level, r.batch_index, w.first_channel + c_local);
    acc_t sum = 0;
    for_each_sample(r, height, width, bin / pooled_w, bin % pooled_w, y_taps, x_taps,
                    [&](const AxisTap<acc_t>& ty, const AxisTap<acc_t>& tx) {
                      const BilinearWeights<acc_t> wt = bilinear_weights(ty, tx);
                      const scalar_t* row_lo = plane + ty.low * sy;
                      const scalar_t* row_hi = plane + ty.high * sy;
                      sum += wt.w1 * static_cast<acc_t>(row_lo[tx.low * sx]) +
                             wt.w2 * static_cast<acc_t>(row_lo[tx.high * sx]) +
                             wt.w3 * static_cast<acc_t>(row_hi[tx.low * sx]) +
                             wt.w4 * static_cast<acc_t>(row_hi[tx.high * sx]);
                    });
    out_chunk[c_local * bins + bin] = static_cast<scalar_t>(sum / count);
  }
}

// Scatters grad [K, C, PH, PW] into per-level accumulators [N, C, H_l, W_l] (float or double) with
// atomics, four per sample, as torchvision does.
template <typename scalar_t>
__global__ void __launch_bounds__(kThreads) roi_align_backward_kernel(
    const scalar_t* __restrict__ grad, const at::opmath_type<scalar_t>* __restrict__ rois,
    const int64_t* __restrict__ levels,
    const FeaturePyramid<at::opmath_type<scalar_t>, at::opmath_type<scalar_t>> pyr, int pooled_h,
    int pooled_w, int sampling_ratio, bool aligned, int channels_per_block) {
  using acc_t = at::opmath_type<scalar_t>;
  __shared__ AxisTap<acc_t> y_taps[kMaxSharedTaps];
  __shared__ AxisTap<acc_t> x_taps[kMaxSharedTaps];

  const BlockSlice w = block_slice(pyr.channels, channels_per_block, pooled_h * pooled_w);
  const int bins = w.bins;
  const scalar_t* grad_chunk = grad + w.first_output;

  BlockRoI<acc_t> r;
  if (!read_roi(pyr, rois, levels, w.roi, pooled_h, pooled_w, sampling_ratio, aligned, &r)) return;
  const int height = pyr.height[r.level], width = pyr.width[r.level];
  r.taps_in_shared =
      fill_shared_taps(r.geometry, height, width, pooled_h, pooled_w, y_taps, x_taps);
  const acc_t count = backward_count(r.geometry);
  const int64_t sy = pyr.stride_h[r.level], sx = pyr.stride_w[r.level];

  for (int64_t i = threadIdx.x; i < w.work; i += blockDim.x) {
    const acc_t g = static_cast<acc_t>(grad_chunk[i]);
    if (g == acc_t(0)) continue;  // adds nothing; saves four atomics per sample
    const int c_local = static_cast<int>(i / bins), bin = static_cast<int>(i % bins);
    acc_t* plane =
        pyr.data[r.level] + pyr.plane_offset(r.level, r.batch_index, w.first_channel + c_local);
    for_each_sample(r, height, width, bin / pooled_w, bin % pooled_w, y_taps, x_taps,
                    [&](const AxisTap<acc_t>& ty, const AxisTap<acc_t>& tx) {
                      const BilinearWeights<acc_t> wt = bilinear_weights(ty, tx);
                      acc_t* row_lo = plane + ty.low * sy;
                      acc_t* row_hi = plane + ty.high * sy;
                      atomicAdd(row_lo + tx.low * sx, g * wt.w1 / count);
                      atomicAdd(row_lo + tx.high * sx, g * wt.w2 / count);
                      atomicAdd(row_hi + tx.low * sx, g * wt.w3 / count);
                      atomicAdd(row_hi + tx.high * sx, g * wt.w4 / count);
                    });
  }
}

// --- Deterministic backward --------------------------------------------------------------------
// The atomic scatter adds a pixel's contributions in whatever order threads arrive. Under
// torch.use_deterministic_algorithms(True) the gradient is gathered instead:
//   1. one thread per (RoI, bin) counts the bilinear corners its samples touch inside the map;
//   2. after a scan, the same threads write one entry per corner -- (pixel key, source bin, weight)
//      -- in (RoI, bin, iy, ix, corner) order, which is torchvision's CPU loop order;
//   3. a stable sort by pixel key groups each pixel's entries and keeps that order;
//   4. one thread per (channel, pixel) sums its entries, g * w / count, in that order.
// Every pixel's gradient is then the same float sum, in the same order, as torchvision's CPU
// backward: bit-identical to it and to roiops' CPU kernel, on every run. It costs a sort, memory
// for the entries (4 per sample) and one host sync (the entry count).

// Pixel keys: level l's [N, H_l, W_l] pixels are keys [begin[l], begin[l + 1]).
struct PixelKeys {
  int64_t begin[kMaxLevels + 1];
};

constexpr int64_t kMaxElementwiseBlocks = 1 << 20;  // grid-stride beyond this

unsigned elementwise_blocks(int64_t n) {
  return static_cast<unsigned>(std::min(ceil_div<int64_t>(n, kThreads), kMaxElementwiseBlocks));
}

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
  const int64_t total = num_rois * bins, stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    const int64_t k = i / bins;
    const int bin = static_cast<int>(i % bins);
    BlockRoI<acc_t> r;
    if (!read_roi(pyr, rois, levels, k, pooled_h, pooled_w, sampling_ratio, aligned, &r)) {
      corners[i] = 0;
      continue;
    }
    r.taps_in_shared = false;
    if (bin == 0) sample_count[k] = backward_count(r.geometry);
    int64_t n = 0;
    for_each_sample<acc_t>(r, pyr.height[r.level], pyr.width[r.level], bin / pooled_w,
                           bin % pooled_w, nullptr, nullptr,
                           [&](const AxisTap<acc_t>&, const AxisTap<acc_t>&) { n += 4; });
    corners[i] = n;
  }
}

// Same threads as count_corners_kernel: the entries of bin i at [first[i], first[i] + corners[i]).
template <typename acc_t>
__global__ void write_corners_kernel(const acc_t* __restrict__ rois,
                                     const int64_t* __restrict__ levels,
                                     const FeaturePyramid<acc_t, acc_t> pyr, const PixelKeys keys,
                                     int64_t num_rois, int pooled_h, int pooled_w,
                                     int sampling_ratio, bool aligned,
                                     const int64_t* __restrict__ first, int64_t* __restrict__ key,
                                     int64_t* __restrict__ source, acc_t* __restrict__ weight) {
  const int bins = pooled_h * pooled_w;
  const int64_t total = num_rois * bins, stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    BlockRoI<acc_t> r;
    if (!read_roi(pyr, rois, levels, i / bins, pooled_h, pooled_w, sampling_ratio, aligned, &r)) {
      continue;
    }
    r.taps_in_shared = false;
    const int bin = static_cast<int>(i % bins);
    const int height = pyr.height[r.level], width = pyr.width[r.level];
    const int64_t plane = keys.begin[r.level] + r.batch_index * height * width;
    int64_t e = first[i];
    for_each_sample<acc_t>(r, height, width, bin / pooled_w, bin % pooled_w, nullptr, nullptr,
                           [&](const AxisTap<acc_t>& ty, const AxisTap<acc_t>& tx) {
                             const BilinearWeights<acc_t> wt = bilinear_weights(ty, tx);
                             const int64_t row_lo = plane + static_cast<int64_t>(ty.low) * width;
                             const int64_t row_hi = plane + static_cast<int64_t>(ty.high) * width;
                             const int64_t pixels[4] = {row_lo + tx.low, row_lo + tx.high,
                                                        row_hi + tx.low, row_hi + tx.high};
                             const acc_t w[4] = {wt.w1, wt.w2, wt.w3, wt.w4};
                             for (int corner = 0; corner < 4; ++corner, ++e) {
                               key[e] = pixels[corner];
                               source[e] = i;
                               weight[e] = w[corner];
                             }
                           });
  }
}

// Thread per (channel c, pixel run r): the run's entries are order[run_end[r - 1] .. run_end[r]).
template <typename scalar_t>
__global__ void gather_corners_kernel(
    const scalar_t* __restrict__ grad, int bins,
    const FeaturePyramid<at::opmath_type<scalar_t>, at::opmath_type<scalar_t>> pyr,
    const PixelKeys keys, const int64_t* __restrict__ run_key, const int64_t* __restrict__ run_end,
    int64_t runs, const int64_t* __restrict__ order, const int64_t* __restrict__ source,
    const at::opmath_type<scalar_t>* __restrict__ weight,
    const at::opmath_type<scalar_t>* __restrict__ sample_count) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t total = pyr.channels * runs, stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    const int64_t c = i / runs, r = i % runs;
    acc_t sum = 0;
    for (int64_t e = r == 0 ? 0 : run_end[r - 1]; e < run_end[r]; ++e) {
      const int64_t j = order[e], k = source[j] / bins, bin = source[j] % bins;
      const acc_t g = static_cast<acc_t>(grad[(k * pyr.channels + c) * bins + bin]);
      sum += g * weight[j] / sample_count[k];  // (g * w) / count, as torchvision
    }
    int level = 0;
    while (run_key[r] >= keys.begin[level + 1]) ++level;
    const int64_t pixel = run_key[r] - keys.begin[level];
    const int64_t width = pyr.width[level], height = pyr.height[level];
    const int64_t x = pixel % width, y = pixel / width % height, b = pixel / width / height;
    pyr.data[level][pyr.plane_offset(level, b, c) + y * pyr.stride_h[level] +
                    x * pyr.stride_w[level]] = sum;
  }
}

void backward_deterministic_cuda(const RoIAlignBackwardArgs& a, std::vector<at::Tensor>& grads) {
  const int64_t num_rois = a.rois.size(0), bins = a.pooled_h * a.pooled_w;
  if (num_rois == 0 || a.channels == 0) return;
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
        cuda::launch(count_corners_kernel<acc_t>, blocks, kThreads, rois, levels, pyramid, num_rois,
                     ph, pw, sr, a.aligned, corners.data_ptr<int64_t>(),
                     sample_count.data_ptr<acc_t>());
        const at::Tensor last = corners.cumsum(0);
        const int64_t entries = last[-1].item<int64_t>();  // the host sync
        if (entries == 0) return;
        const at::Tensor first = last - corners;
        at::Tensor key = at::empty({entries}, long_opts);
        at::Tensor source = at::empty({entries}, long_opts);
        at::Tensor weight = at::empty({entries}, a.rois.options());
        cuda::launch(write_corners_kernel<acc_t>, blocks, kThreads, rois, levels, pyramid, keys,
                     num_rois, ph, pw, sr, a.aligned, first.data_ptr<int64_t>(),
                     key.data_ptr<int64_t>(), source.data_ptr<int64_t>(), weight.data_ptr<acc_t>());

        const auto [sorted_key, order] = key.sort(/*stable=*/true, /*dim=*/0, false);
        const auto [run_key, unused, run_length] =
            at::unique_consecutive(sorted_key, /*return_inverse=*/false, /*return_counts=*/true);
        const at::Tensor run_end = run_length.cumsum(0);
        const int64_t runs = run_key.size(0);
        cuda::launch(gather_corners_kernel<scalar_t>, elementwise_blocks(a.channels * runs),
                     kThreads, a.grad.data_ptr<scalar_t>(), static_cast<int>(bins), pyramid, keys,
                     run_key.data_ptr<int64_t>(), run_end.data_ptr<int64_t>(), runs,
                     order.data_ptr<int64_t>(), source.data_ptr<int64_t>(),
                     weight.data_ptr<acc_t>(), sample_count.data_ptr<acc_t>());
      });
}

// Channels per block: enough outputs per block (~8 per thread) to amortise the tap setup, spread
// evenly over the chunks.
int channels_per_block(int64_t channels, int64_t bins) {
  const int64_t target = std::max<int64_t>(1, (8 * kThreads) / bins);
  const int64_t chunks = ceil_div(channels, target);
  return static_cast<int>(ceil_div(channels, chunks));
}

bool all_channels_last(const std::vector<at::Tensor>& features) {
  for (const at::Tensor& f : features) {
    if (f.stride(1) != 1 || f.size(1) == 1) return false;
  }
  return true;
}

at::Tensor forward_cuda(const char* op, const RoIAlignForwardArgs& a) {
  const at::Tensor& first = a.features[0];
  cuda::DeviceGuard device_guard(first.device());
  const int64_t num_rois = a.rois.size(0);
  const int64_t channels = first.size(1);
  at::Tensor output = at::empty({num_rois, channels, a.pooled_h, a.pooled_w}, first.options());
  if (output.numel() == 0) return output;

  TORCH_CHECK_VALUE(num_rois <= std::numeric_limits<int32_t>::max(), op,
                    ": at most 2^31 - 1 RoIs per call, got ", num_rois);
  const bool channel_fastest = all_channels_last(a.features);
  const int cpb = channel_fastest ? static_cast<int>(std::min<int64_t>(channels, 128))
                                  : channels_per_block(channels, a.pooled_h * a.pooled_w);
  const dim3 grid(static_cast<unsigned>(num_rois),
                  static_cast<unsigned>(ceil_div<int64_t>(channels, cpb)));
  TORCH_CHECK(grid.y <= 65535, op, ": too many channels (", channels, ")");

  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, first.scalar_type(), "roi_align_forward_cuda", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        const auto pyramid = make_pyramid<const scalar_t, acc_t>(a.features, a.spatial_scales);
        const acc_t* rois = a.rois.data_ptr<acc_t>();
        const int64_t* levels = a.levels.defined() ? a.levels.data_ptr<int64_t>() : nullptr;
        auto kernel = channel_fastest ? roi_align_forward_kernel<scalar_t, true>
                                      : roi_align_forward_kernel<scalar_t, false>;
        cuda::launch(kernel, grid, kThreads, pyramid, rois, levels, static_cast<int>(a.pooled_h),
                     static_cast<int>(a.pooled_w), static_cast<int>(a.sampling_ratio), a.aligned,
                     cpb, output.data_ptr<scalar_t>());
      });
  return output;
}

void backward_cuda(const char* op, const RoIAlignBackwardArgs& a, std::vector<at::Tensor>& grads) {
  cuda::DeviceGuard device_guard(a.grad.device());
  if (at::globalContext().deterministicAlgorithms()) {
    backward_deterministic_cuda(a, grads);
    return;
  }
  TORCH_CHECK_VALUE(a.rois.size(0) <= std::numeric_limits<int32_t>::max(), op,
                    ": at most 2^31 - 1 RoIs per call, got ", a.rois.size(0));
  const int cpb = channels_per_block(a.channels, a.pooled_h * a.pooled_w);
  const dim3 grid(static_cast<unsigned>(a.rois.size(0)),
                  static_cast<unsigned>(ceil_div<int64_t>(a.channels, cpb)));
  TORCH_CHECK(grid.y <= 65535, op, ": too many channels (", a.channels, ")");
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, a.grad.scalar_type(), "roi_align_backward_cuda", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        const auto pyramid = make_pyramid<acc_t, acc_t>(grads, a.spatial_scales);
        const int64_t* levels = a.levels.defined() ? a.levels.data_ptr<int64_t>() : nullptr;
        cuda::launch(roi_align_backward_kernel<scalar_t>, grid, kThreads,
                     a.grad.data_ptr<scalar_t>(), a.rois.data_ptr<acc_t>(), levels, pyramid,
                     static_cast<int>(a.pooled_h), static_cast<int>(a.pooled_w),
                     static_cast<int>(a.sampling_ratio), a.aligned, cpb);
      });
}

}  // namespace

ROIOPS_REGISTER_CUDA_KERNELS(m) { register_roi_align_kernels<&forward_cuda, &backward_cuda>(m); }

}  // namespace roiops
