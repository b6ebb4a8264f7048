// Greedy NMS on CUDA for many independent segments at once -- (image, class) or (image, level)
// groups -- in one launch, without copying any suppression mask to the host.
//
// One block owns one segment at a time (blocks stride over segments; the segment count stays on the
// device). It walks the segment's boxes, sorted by decreasing score, in tiles of 64 candidates:
//   1. all threads test the tile's candidates against the boxes kept from earlier tiles;
//   2. 64 threads build the tile's 64x64 suppression bitmask (row c: later boxes that c
//   suppresses);
//   3. one thread resolves the tile in score order with bit operations, appends survivors to the
//      segment's kept list and stops once max_keep boxes are kept (early exit).
// This is torchvision's greedy order exactly; the IoU test is box_math::iou_above, shared with the
// CPU kernel, so both backends keep the same boxes.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>

#include "../common/box_math.h"
#include "../ops/bind_kernel.h"
#include "../ops/nms.h"
#include "cuda_helpers.cuh"

namespace roiops {
namespace {

using box_math::box_area;
using box_math::iou_above;

using cuda::elementwise_blocks;
using cuda::kThreadsPerBlock;

constexpr int kTile = 64;  // one 64-bit mask word per candidate

// head[i] = 1 where a segment starts: at every row start and wherever the class changes.
__global__ void segment_heads_kernel(const int64_t* __restrict__ classes, int64_t row_length,
                                     int64_t total, int32_t* __restrict__ head) {
  for (const int64_t i : cuda::grid_stride(total)) {
    head[i] = (i % row_length == 0) || (classes != nullptr && classes[i] != classes[i - 1]);
  }
}

// starts[s] = first position of segment s; starts[S] = total; *num_segments = S.
__global__ void segment_starts_kernel(const int32_t* __restrict__ head,
                                      const int32_t* __restrict__ segment_number, int64_t total,
                                      int64_t* __restrict__ starts,
                                      int64_t* __restrict__ num_segments) {
  for (const int64_t i : cuda::grid_stride(total)) {
    if (head[i]) starts[segment_number[i] - 1] = i;
    if (i == total - 1) {
      starts[segment_number[i]] = total;
      *num_segments = segment_number[i];
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreadsPerBlock)
    nms_segments_kernel(const T* __restrict__ boxes, const int64_t* __restrict__ classes,
                        const int64_t* __restrict__ starts,
                        const int64_t* __restrict__ num_segments, double threshold,
                        int64_t max_keep, T* __restrict__ kept_boxes, T* __restrict__ kept_areas,
                        bool* __restrict__ keep) {
  __shared__ T tile[kTile][4];
  __shared__ T tile_area[kTile];
  __shared__ unsigned long long tile_mask[kTile];
  __shared__ int suppressed[kTile];
  __shared__ int64_t kept_shared;

  const int64_t segments = *num_segments;
  for (int64_t s = blockIdx.x; s < segments; s += gridDim.x) {
    const int64_t begin = starts[s], end = starts[s + 1];
    if (classes != nullptr && classes[begin] < 0) continue;  // padding; uniform for the block
    // Segment s keeps its survivors at [begin, begin + kept) of the scratch lists.
    int64_t kept = 0;
    for (int64_t t0 = begin; t0 < end; t0 += kTile) {
      if (max_keep >= 0 && kept >= max_keep) break;  // uniform: kept is shared by the block
      const int n = static_cast<int>(end - t0 < kTile ? end - t0 : kTile);
      for (int i = threadIdx.x; i < n; i += blockDim.x) {
        for (int d = 0; d < 4; ++d) tile[i][d] = boxes[4 * (t0 + i) + d];
        tile_area[i] = box_area(tile[i]);
        suppressed[i] = 0;
      }
      __syncthreads();

      const int64_t pairs = kept * n;
      for (int64_t p = threadIdx.x; p < pairs; p += blockDim.x) {
        const int c = static_cast<int>(p % n);
        const int64_t k = begin + p / n;
        if (!suppressed[c] &&
            iou_above(kept_boxes + 4 * k, kept_areas[k], tile[c], tile_area[c], threshold)) {
          suppressed[c] = 1;  // benign race: every writer writes 1
        }
      }
      for (int c = threadIdx.x; c < n; c += blockDim.x) {
        unsigned long long mask = 0;
        for (int j = c + 1; j < n; ++j) {
          if (iou_above(tile[c], tile_area[c], tile[j], tile_area[j], threshold)) mask |= 1ull << j;
        }
        tile_mask[c] = mask;
      }
      __syncthreads();

      if (threadIdx.x == 0) {
        unsigned long long removed = 0;
        int64_t k = kept;
        for (int c = 0; c < n; ++c) {
          if (suppressed[c] || ((removed >> c) & 1ull)) continue;
          if (max_keep >= 0 && k >= max_keep) break;
          keep[t0 + c] = true;
          for (int d = 0; d < 4; ++d) kept_boxes[4 * (begin + k) + d] = tile[c][d];
          kept_areas[begin + k] = tile_area[c];
          ++k;
          removed |= tile_mask[c];
        }
        kept_shared = k;
      }
      __syncthreads();  // also publishes thread 0's kept_boxes writes to the block
      kept = kept_shared;
    }
  }
}

void nms_greedy_cuda(const NmsGreedyArgs& a, at::Tensor& keep) {
  const int64_t rows = a.boxes.size(0), n = a.boxes.size(1), total = rows * n;
  TORCH_CHECK_VALUE(total < std::numeric_limits<int32_t>::max(),
                    "nms: at most 2^31 - 1 boxes per call, got ", total);
  const auto int_opts = a.boxes.options().dtype(at::kInt);
  const auto long_opts = a.boxes.options().dtype(at::kLong);
  const unsigned blocks = elementwise_blocks(total);
  const int64_t* cls = a.classes.defined() ? a.classes.data_ptr<int64_t>() : nullptr;

  at::Tensor head = at::empty({total}, int_opts);
  cuda::launch(segment_heads_kernel, blocks, kThreadsPerBlock, cls, n, total,
               head.data_ptr<int32_t>());
  const at::Tensor segment_number = head.cumsum(0, at::kInt);  // 1-based segment of each box
  at::Tensor starts = at::empty({total + 1}, long_opts);
  at::Tensor num_segments = at::empty({1}, long_opts);
  cuda::launch(segment_starts_kernel, blocks, kThreadsPerBlock, head.data_ptr<int32_t>(),
               segment_number.data_ptr<int32_t>(), total, starts.data_ptr<int64_t>(),
               num_segments.data_ptr<int64_t>());

  // Enough blocks to fill the GPU; the segment count itself is only known on the device.
  const int sms = cuda::multiprocessor_count();
  const unsigned segment_blocks = static_cast<unsigned>(std::min<int64_t>(total, 8 * sms));
  AT_DISPATCH_FLOATING_TYPES(a.boxes.scalar_type(), "nms_greedy_cuda", [&] {
    at::Tensor kept_boxes = at::empty({total, 4}, a.boxes.options());
    at::Tensor kept_areas = at::empty({total}, a.boxes.options());
    cuda::launch(nms_segments_kernel<scalar_t>, segment_blocks, kThreadsPerBlock,
                 a.boxes.data_ptr<scalar_t>(), cls, starts.data_ptr<int64_t>(),
                 num_segments.data_ptr<int64_t>(), a.iou_threshold, a.max_keep,
                 kept_boxes.data_ptr<scalar_t>(), kept_areas.data_ptr<scalar_t>(),
                 keep.data_ptr<bool>());
  });
}

}  // namespace

ROIOPS_REGISTER_CUDA_KERNELS(m) {
  m.impl("_nms_greedy", bind_kernel<&nms_greedy, &nms_greedy_cuda>);
}

}  // namespace roiops
