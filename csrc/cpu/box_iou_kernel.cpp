// Pairwise IoU on the CPU (torchvision.ops.box_iou), parallel over rows of all batches.

#include <ATen/ATen.h>
#include <ATen/Dispatch_v2.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../common/box_math.h"
#include "../ops/bind_kernel.h"
#include "../ops/box_iou.h"

namespace roiops {
namespace {

template <typename T>
void box_iou_impl(const BoxIouArgs& a, at::Tensor& iou) {
  using W = typename IouTypes<T>::W;
  using R = typename IouTypes<T>::R;
  using Box = box_math::IouBox<T, W>;
  const int64_t batches = a.boxes1.size(0), n = a.boxes1.size(1), m = a.boxes2.size(1);
  const T* pa = a.boxes1.data_ptr<T>();
  const T* pb = a.boxes2.data_ptr<T>();
  R* out = iou.data_ptr<R>();
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(m, 1));
  at::parallel_for(0, batches * n, grain, [&](int64_t lo, int64_t hi) {
    std::vector<Box> boxes2(m);
    int64_t loaded = -1;  // the batch whose boxes2 are in `boxes2`
    for (int64_t row = lo; row < hi; ++row) {
      const int64_t b = row / n;
      if (b != loaded) {
        for (int64_t j = 0; j < m; ++j)
          boxes2[j] = box_math::iou_box<T, W>(pb + 4 * (b * m + j), a.fmt);
        loaded = b;
      }
      const Box box1 = box_math::iou_box<T, W>(pa + 4 * row, a.fmt);
      for (int64_t j = 0; j < m; ++j)
        out[row * m + j] = box_math::pair_iou<T, W, R>(box1, boxes2[j]);
    }
  });
}

void box_iou_cpu(const BoxIouArgs& a, at::Tensor& iou) {
  AT_DISPATCH_V2(a.boxes1.scalar_type(), "box_iou_cpu",
                 AT_WRAP([&] { box_iou_impl<scalar_t>(a, iou); }), AT_EXPAND(AT_FLOATING_TYPES),
                 AT_EXPAND(AT_INTEGRAL_TYPES), at::kHalf, at::kBFloat16);
}

}  // namespace

TORCH_LIBRARY_IMPL(roiops, CPU, m) { m.impl("box_iou", bind_kernel<&box_iou, &box_iou_cpu>); }

}  // namespace roiops
