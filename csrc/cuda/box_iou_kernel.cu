// Pairwise IoU on CUDA: one thread per (i, j) pair, row-major output.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include "../box_ops_args.h"
#include "../common/box_math.h"
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

at::Tensor box_iou_cuda(const at::Tensor& boxes1, const at::Tensor& boxes2) {
  check_box_iou_args(boxes1, boxes2);
  cuda::DeviceGuard device_guard(boxes1.device());
  const at::Tensor a = boxes1.contiguous(), b = boxes2.contiguous();
  const int64_t n = a.size(0), m = b.size(0);
  at::Tensor out = at::empty({n, m}, a.options());
  if (out.numel() == 0) return out;
  const unsigned blocks = static_cast<unsigned>(cuda::ceil_div<int64_t>(n * m, 256));
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "box_iou_cuda", [&] {
    cuda::launch(box_iou_kernel<scalar_t>, blocks, 256, a.data_ptr<scalar_t>(),
                 b.data_ptr<scalar_t>(), n, m, out.data_ptr<scalar_t>());
  });
  return out;
}

}  // namespace

ROIOPS_REGISTER_CUDA_KERNELS(m) { m.impl("box_iou", &box_iou_cuda); }

}  // namespace roiops
