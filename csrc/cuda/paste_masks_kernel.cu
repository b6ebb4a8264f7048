// Mask pasting on CUDA: one thread per pixel of every mask's image-sized canvas, all masks in one
// launch (torchvision loops over masks in Python). A thread outside its mask's window writes zero.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "../common/paste_math.h"
#include "../ops/bind_kernel.h"
#include "../ops/half_dispatch.h"
#include "../ops/paste_masks.h"
#include "cuda_helpers.cuh"

namespace roiops {
namespace {

using namespace paste_math;

template <typename T, typename B>
__global__ void paste_masks_kernel(const T* __restrict__ masks, const B* __restrict__ boxes,
                                   int64_t count, int64_t mask_h, int64_t mask_w, int64_t padding,
                                   at::opmath_type<B> scale, int64_t image_h, int64_t image_w,
                                   T* __restrict__ out) {
  using A = at::opmath_type<T>;
  const int64_t total = count * image_h * image_w;
  for (const int64_t i : cuda::grid_stride(total)) {
    const int64_t n = i / (image_h * image_w), y = i / image_w % image_h, x = i % image_w;
    const PasteWindow w = paste_window(boxes + 4 * n, scale, image_h, image_w);
    A value = A(0);
    if (y >= w.y0 && y < w.y1 && x >= w.x0 && x < w.x1) {
      const ResizeTap<A> ty = resize_tap<A>(y - w.box_y1, w.height, mask_h + 2 * padding);
      const ResizeTap<A> tx = resize_tap<A>(x - w.box_x1, w.width, mask_w + 2 * padding);
      value = resized_value<T, A>(masks + n * mask_h * mask_w, mask_h, mask_w, padding, ty, tx);
    }
    out[i] = static_cast<T>(value);
  }
}

void paste_masks_cuda(const PasteMasksArgs& a, at::Tensor& out) {
  const int64_t count = a.masks.size(0);
  const unsigned blocks = cuda::elementwise_blocks(out.numel());
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, a.masks.scalar_type(), "paste_masks_cuda", [&] {
        using T = scalar_t;
        auto launch = [&](auto box) {
          using B = decltype(box);
          cuda::launch(paste_masks_kernel<T, B>, blocks, cuda::kThreadsPerBlock,
                       a.masks.data_ptr<T>(), a.boxes.data_ptr<B>(), count, a.masks.size(2),
                       a.masks.size(3), a.padding, static_cast<at::opmath_type<B>>(a.scale),
                       a.image_h, a.image_w, out.data_ptr<T>());
        };
        if (a.boxes.scalar_type() == at::kDouble) {
          launch(double{});
        } else {
          with_half_or<float>(a.boxes.scalar_type(), launch);
        }
      });
}

}  // namespace

ROIOPS_REGISTER_CUDA_KERNELS(m) {
  m.impl("paste_masks_in_image", bind_kernel<&paste_masks_in_image, &paste_masks_cuda>);
}

}  // namespace roiops
