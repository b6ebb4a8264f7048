// paste_masks_in_image: every mask pasted into its image-sized canvas (torchvision's
// paste_masks_in_image, one op instead of a Python loop over masks); the op both backends plug
// into (bind_kernel.h). The geometry and the resize are paste_math.h's.
#pragma once

#include <ATen/core/Tensor.h>

namespace roiops {

struct PasteMasksArgs {
  at::Tensor masks;  // [N, 1, M_h, M_w] contiguous
  at::Tensor boxes;  // [N, 4] float32, float64, float16 or bfloat16, contiguous, image pixels
  int64_t image_h, image_w, padding;
  double scale;  // (M_w + 2 * padding) / M_w: the box growth, a Python float to torchvision
};

// Fills out [N, 1, image_h, image_w] in the masks' dtype: each mask's window, zero elsewhere.
using PasteMasksKernel = void (*)(const PasteMasksArgs&, at::Tensor& out);

at::Tensor paste_masks_in_image(PasteMasksKernel kernel, const at::Tensor& masks,
                                const at::Tensor& boxes, int64_t image_height, int64_t image_width,
                                int64_t padding);

}  // namespace roiops
