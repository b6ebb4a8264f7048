// Pairwise IoU on the CPU (torchvision.ops.box_iou), parallel over rows.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../box_ops_args.h"
#include "../common/box_math.h"

namespace roiops {
namespace {

at::Tensor box_iou_cpu(const at::Tensor& boxes1, const at::Tensor& boxes2) {
  check_box_iou_args(boxes1, boxes2);
  const at::Tensor a = boxes1.contiguous(), b = boxes2.contiguous();
  const int64_t n = a.size(0), m = b.size(0);
  at::Tensor out = at::empty({n, m}, a.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "box_iou_cpu", [&] {
    const scalar_t* pa = a.data_ptr<scalar_t>();
    const scalar_t* pb = b.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, n, std::max<int64_t>(1, 16384 / std::max<int64_t>(m, 1)),
                     [&](int64_t lo, int64_t hi) {
                       for (int64_t i = lo; i < hi; ++i) {
                         const scalar_t area_a = box_math::box_area(pa + 4 * i);
                         for (int64_t j = 0; j < m; ++j) {
                           o[i * m + j] = box_math::pair_iou(pa + 4 * i, area_a, pb + 4 * j,
                                                             box_math::box_area(pb + 4 * j));
                         }
                       }
                     });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(roiops, CPU, m) { m.impl("box_iou", &box_iou_cpu); }

}  // namespace roiops
