// Pairwise IoU on the CPU (torchvision.ops.box_iou), parallel over rows.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>

#include "../common/box_math.h"
#include "../ops/bind_kernel.h"
#include "../ops/box_iou.h"

namespace roiops {
namespace {

void box_iou_cpu(const BoxIouArgs& a, at::Tensor& iou) {
  const int64_t n = a.boxes1.size(0), m = a.boxes2.size(0);
  AT_DISPATCH_FLOATING_TYPES(a.boxes1.scalar_type(), "box_iou_cpu", [&] {
    const scalar_t* pa = a.boxes1.data_ptr<scalar_t>();
    const scalar_t* pb = a.boxes2.data_ptr<scalar_t>();
    scalar_t* o = iou.data_ptr<scalar_t>();
    const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(m, 1));
    at::parallel_for(0, n, grain, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        const scalar_t area_a = box_math::box_area(pa + 4 * i);
        for (int64_t j = 0; j < m; ++j) {
          o[i * m + j] =
              box_math::pair_iou(pa + 4 * i, area_a, pb + 4 * j, box_math::box_area(pb + 4 * j));
        }
      }
    });
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(roiops, CPU, m) { m.impl("box_iou", bind_kernel<&box_iou, &box_iou_cpu>); }

}  // namespace roiops
