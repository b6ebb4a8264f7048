// Pairwise IoU on CUDA: one thread per (i, j) pair, row-major output.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include "../common/box_math.h"
#include "../ops/bind_kernel.h"
#include "../ops/box_iou.h"
#include "cuda_helpers.cuh"

namespace roiops {
namespace {

template <typename T>
__global__ void box_iou_kernel(const T* __restrict__ a, const T* __restrict__ b, int64_t n,
                               int64_t m, T* __restrict__ out) {
  const int64_t at = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (at >= n * m) return;
  const T* box_a = a + 4 * (at / m);
  const T* box_b = b + 4 * (at % m);
  out[at] = box_math::pair_iou(box_a, box_math::box_area(box_a), box_b, box_math::box_area(box_b));
}

void box_iou_cuda(const BoxIouArgs& a, at::Tensor& iou) {
  const int64_t n = a.boxes1.size(0), m = a.boxes2.size(0);
  AT_DISPATCH_FLOATING_TYPES(a.boxes1.scalar_type(), "box_iou_cuda", [&] {
    cuda::launch(box_iou_kernel<scalar_t>, cuda::elementwise_blocks(n * m), cuda::kThreadsPerBlock,
                 a.boxes1.data_ptr<scalar_t>(), a.boxes2.data_ptr<scalar_t>(), n, m,
                 iou.data_ptr<scalar_t>());
  });
}

}  // namespace

ROIOPS_REGISTER_CUDA_KERNELS(m) { m.impl("box_iou", bind_kernel<&box_iou, &box_iou_cuda>); }

}  // namespace roiops
