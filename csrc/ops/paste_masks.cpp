#include "paste_masks.h"

#include <ATen/ATen.h>

#include "bind_kernel.h"
#include "output_memory.h"

namespace roiops {

at::Tensor paste_masks_in_image(PasteMasksKernel kernel, const at::Tensor& masks,
                                const at::Tensor& boxes, int64_t image_height, int64_t image_width,
                                int64_t padding) {
  constexpr const char* op = "paste_masks_in_image";
  TORCH_CHECK_VALUE(
      masks.dim() == 4 && masks.size(1) == 1 && masks.size(2) > 0 && masks.size(3) > 0, op,
      ": masks must be [N, 1, M, M] (one mask per detection), got shape ", masks.sizes());
  TORCH_CHECK_TYPE(at::isFloatingType(masks.scalar_type()), op,
                   ": masks must be a floating tensor, got ", masks.scalar_type());
  TORCH_CHECK_VALUE(boxes.dim() == 2 && boxes.size(1) == 4 && boxes.size(0) == masks.size(0), op,
                    ": boxes must be [N, 4] with N = ", masks.size(0),
                    " (one box per mask), got shape ", boxes.sizes());
  TORCH_CHECK_TYPE(at::isFloatingType(boxes.scalar_type()), op,
                   ": boxes must be a floating tensor, got ", boxes.scalar_type());
  TORCH_CHECK(boxes.device() == masks.device(), op, ": boxes is on ", boxes.device(),
              " but masks is on ", masks.device());
  TORCH_CHECK_VALUE(image_height >= 0 && image_width >= 0, op,
                    ": the image size must be non-negative, got (", image_height, ", ", image_width,
                    ")");
  TORCH_CHECK_VALUE(padding >= 0, op, ": padding must be non-negative, got ", padding);
  const int64_t mask_w = masks.size(3);
  // Boxes keep float64, float16 and bfloat16 (torchvision's geometry in their dtype); others
  // become float32.
  const at::ScalarType dtype = boxes.scalar_type();
  const at::ScalarType box_type =
      dtype == at::kDouble || dtype == at::kHalf || dtype == at::kBFloat16 ? dtype : at::kFloat;
  const PasteMasksArgs args{masks.contiguous(),
                            boxes.to(box_type).contiguous(),
                            image_height,
                            image_width,
                            padding,
                            static_cast<double>(mask_w + 2 * padding) / mask_w};
  at::Tensor out = empty_output({masks.size(0), 1, image_height, image_width}, masks.options());
  run_kernel(kernel, args, out);
  return out;
}

}  // namespace roiops
