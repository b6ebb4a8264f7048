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
// thread, visiting only the samples inside the map (roi_align_sampling.cuh).
//
// The backward scatters with atomics; under torch.use_deterministic_algorithms(True) it gathers
// instead, in a fixed order (roi_align_deterministic_backward.cu).
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
#include <type_traits>
#include <vector>

#include "../ops/roi_align.h"
#include "cuda_helpers.cuh"
#include "roi_align_sampling.cuh"

namespace roiops {
namespace {

using namespace roi_align_math;
using namespace roi_align_sampling;
using cuda::ceil_div;
using cuda::kThreadsPerBlock;

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

// Resident blocks per multiprocessor the forward is compiled for. Unbounded, ptxas gives the float
// and half kernels 76 registers: 3 blocks (768 threads) per SM. Asking for 4 caps them at 64
// registers with no spills (ptxas -v, sm_90), so 33% more warps hide the gathers' latency. The
// double kernel would spill; it keeps its registers.
template <typename scalar_t>
constexpr int forward_min_blocks() {
  return std::is_same<scalar_t, double>::value ? 1 : 4;
}

template <typename scalar_t, bool kChannelFastest>
__global__ void __launch_bounds__(kThreadsPerBlock, forward_min_blocks<scalar_t>())
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

  RoI<acc_t> r;
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
                      const scalar_t* row_lo = plane + ty.low * sy;
                      const scalar_t* row_hi = plane + ty.high * sy;
                      sum += interpolate(bilinear_weights(ty, tx),
                                         static_cast<acc_t>(row_lo[tx.low * sx]),
                                         static_cast<acc_t>(row_lo[tx.high * sx]),
                                         static_cast<acc_t>(row_hi[tx.low * sx]),
                                         static_cast<acc_t>(row_hi[tx.high * sx]));
                    });
    out_chunk[c_local * bins + bin] = static_cast<scalar_t>(sum / count);
  }
}

// Scatters grad [K, C, PH, PW] into per-level accumulators [N, C, H_l, W_l] (float or double) with
// atomics, four per sample, as torchvision does.
// 76 registers (3 blocks per SM); capping them for a 4th block makes ptxas spill, and the kernel is
// bound by its atomics anyway.
template <typename scalar_t>
__global__ void __launch_bounds__(kThreadsPerBlock) roi_align_backward_kernel(
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

  RoI<acc_t> r;
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
                      atomicAdd(row_lo + tx.low * sx, mul_exact(g, wt.w1) / count);
                      atomicAdd(row_lo + tx.high * sx, mul_exact(g, wt.w2) / count);
                      atomicAdd(row_hi + tx.low * sx, mul_exact(g, wt.w3) / count);
                      atomicAdd(row_hi + tx.high * sx, mul_exact(g, wt.w4) / count);
                    });
  }
}

// Channels per block: enough outputs per block (~8 per thread) to amortise the tap setup, spread
// evenly over the chunks.
int channels_per_block(int64_t channels, int64_t bins) {
  const int64_t target = std::max<int64_t>(1, (8 * kThreadsPerBlock) / bins);
  const int64_t chunks = ceil_div(channels, target);
  return static_cast<int>(ceil_div(channels, chunks));
}

bool all_channels_last(const std::vector<at::Tensor>& features) {
  for (const at::Tensor& f : features) {
    if (f.stride(1) != 1 || f.size(1) == 1) return false;
  }
  return true;
}

void forward_cuda(const RoIAlignForwardArgs& a, at::Tensor& output) {
  const at::Tensor& first = a.features[0];
  const int64_t num_rois = a.rois.size(0);
  const int64_t channels = first.size(1);
  TORCH_CHECK_VALUE(num_rois <= std::numeric_limits<int32_t>::max(), a.op,
                    ": at most 2^31 - 1 RoIs per call, got ", num_rois);
  const bool channel_fastest = all_channels_last(a.features);
  const int cpb = channel_fastest ? static_cast<int>(std::min<int64_t>(channels, 128))
                                  : channels_per_block(channels, a.pooled_h * a.pooled_w);
  const dim3 grid(static_cast<unsigned>(num_rois),
                  static_cast<unsigned>(ceil_div<int64_t>(channels, cpb)));
  TORCH_CHECK(grid.y <= 65535, a.op, ": too many channels (", channels, ")");

  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, first.scalar_type(), "roi_align_forward_cuda", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        const auto pyramid = make_pyramid<const scalar_t, acc_t>(a.features, a.spatial_scales);
        const acc_t* rois = a.rois.data_ptr<acc_t>();
        const int64_t* levels = a.levels.defined() ? a.levels.data_ptr<int64_t>() : nullptr;
        auto kernel = channel_fastest ? roi_align_forward_kernel<scalar_t, true>
                                      : roi_align_forward_kernel<scalar_t, false>;
        cuda::launch(kernel, grid, kThreadsPerBlock, pyramid, rois, levels,
                     static_cast<int>(a.pooled_h), static_cast<int>(a.pooled_w),
                     static_cast<int>(a.sampling_ratio), a.aligned, cpb,
                     output.data_ptr<scalar_t>());
      });
}

void backward_cuda(const RoIAlignBackwardArgs& a, std::vector<at::Tensor>& grads) {
  if (at::globalContext().deterministicAlgorithms()) {
    backward_deterministic_cuda(a, grads);
    return;
  }
  TORCH_CHECK_VALUE(a.rois.size(0) <= std::numeric_limits<int32_t>::max(), a.op,
                    ": at most 2^31 - 1 RoIs per call, got ", a.rois.size(0));
  const int cpb = channels_per_block(a.channels, a.pooled_h * a.pooled_w);
  const dim3 grid(static_cast<unsigned>(a.rois.size(0)),
                  static_cast<unsigned>(ceil_div<int64_t>(a.channels, cpb)));
  TORCH_CHECK(grid.y <= 65535, a.op, ": too many channels (", a.channels, ")");
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, a.grad.scalar_type(), "roi_align_backward_cuda", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        const auto pyramid = make_pyramid<acc_t, acc_t>(grads, a.spatial_scales);
        const int64_t* levels = a.levels.defined() ? a.levels.data_ptr<int64_t>() : nullptr;
        cuda::launch(roi_align_backward_kernel<scalar_t>, grid, kThreadsPerBlock,
                     a.grad.data_ptr<scalar_t>(), a.rois.data_ptr<acc_t>(), levels, pyramid,
                     static_cast<int>(a.pooled_h), static_cast<int>(a.pooled_w),
                     static_cast<int>(a.sampling_ratio), a.aligned, cpb);
      });
}

}  // namespace

ROIOPS_REGISTER_CUDA_KERNELS(m) { register_roi_align_kernels<&forward_cuda, &backward_cuda>(m); }

}  // namespace roiops
