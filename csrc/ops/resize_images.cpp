// _resize_images: the detection transform's bilinear resize -- F.interpolate(images,
// scale_factor=scale, mode="bilinear", recompute_scale_factor=True, align_corners=False), as
// torchvision's GeneralizedRCNNTransform calls it -- as an op of its own.
//
// Why an op: torch.compile (inductor) lowers F.interpolate into its own loops, which round
// differently from ATen's kernel, and every later stage of a detector inherits the difference. An
// op is one opaque node: compiled and exported models resize with ATen's arithmetic, bit for bit.

#include <ATen/ATen.h>
#include <torch/library.h>

#include <cmath>

#include "library.h"

namespace roiops {
namespace {

at::Tensor resize_images(const at::Tensor& images, double scale) {
  constexpr const char* op = "_resize_images";
  TORCH_CHECK_VALUE(images.dim() == 4, op, ": images must be [N, C, H, W], got shape ",
                    images.sizes());
  TORCH_CHECK_TYPE(at::isFloatingType(images.scalar_type()), op,
                   ": images must be a floating tensor, got ", images.scalar_type());
  TORCH_CHECK_VALUE(std::isfinite(scale) && scale > 0.0, op,
                    ": scale must be positive and finite, got ", scale);
  // F.interpolate's output size under recompute_scale_factor: floor(size * scale) in double; the
  // resize then derives its ratios from the sizes alone.
  const int64_t height =
      static_cast<int64_t>(std::floor(static_cast<double>(images.size(2)) * scale));
  const int64_t width =
      static_cast<int64_t>(std::floor(static_cast<double>(images.size(3)) * scale));
  TORCH_CHECK_VALUE(height >= 1 && width >= 1, op, ": a ", images.size(2), "x", images.size(3),
                    " image scaled by ", scale, " is empty");
  return at::upsample_bilinear2d(images, {height, width}, /*align_corners=*/false, std::nullopt,
                                 std::nullopt);
}

}  // namespace

TORCH_LIBRARY_IMPL(ROIOPS_LIBRARY, CompositeExplicitAutograd, m) {
  m.impl("_resize_images", &resize_images);
}

}  // namespace roiops
