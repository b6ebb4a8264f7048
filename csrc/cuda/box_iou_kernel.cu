// Pairwise IoU on CUDA: a thread per (batch, i, j) pair (grid-stride), row-major output.

#include <ATen/ATen.h>
#include <ATen/Dispatch_v2.h>
#include <torch/library.h>

#include "../common/box_math.h"
#include "../ops/bind_kernel.h"
#include "../ops/box_iou.h"
#include "cuda_helpers.cuh"

namespace roiops {
namespace {

template <typename T>
__global__ void box_iou_kernel(const T* __restrict__ a, const T* __restrict__ b, int64_t batches,
                               int64_t n, int64_t m, box_math::BoxFormat fmt,
                               typename IouTypes<T>::R* __restrict__ out) {
  using W = typename IouTypes<T>::W;
  using R = typename IouTypes<T>::R;
  for (const int64_t at : cuda::grid_stride(batches * n * m)) {
    const int64_t row = at / m, batch = row / n, j = at % m;
    out[at] = box_math::pair_iou<T, W, R>(box_math::iou_box<T, W>(a + 4 * row, fmt),
                                          box_math::iou_box<T, W>(b + 4 * (batch * m + j), fmt));
  }
}

void box_iou_cuda(const BoxIouArgs& a, at::Tensor& iou) {
  const int64_t batches = a.boxes1.size(0), n = a.boxes1.size(1), m = a.boxes2.size(1);
  AT_DISPATCH_V2(a.boxes1.scalar_type(), "box_iou_cuda", AT_WRAP([&] {
                   cuda::launch(box_iou_kernel<scalar_t>, cuda::elementwise_blocks(batches * n * m),
                                cuda::kThreadsPerBlock, a.boxes1.data_ptr<scalar_t>(),
                                a.boxes2.data_ptr<scalar_t>(), batches, n, m, a.fmt,
                                iou.data_ptr<typename IouTypes<scalar_t>::R>());
                 }),
                 AT_EXPAND(AT_FLOATING_TYPES), AT_EXPAND(AT_INTEGRAL_TYPES), at::kHalf,
                 at::kBFloat16);
}

}  // namespace

ROIOPS_REGISTER_CUDA_KERNELS(m) { m.impl("box_iou", bind_kernel<&box_iou, &box_iou_cuda>); }

}  // namespace roiops
