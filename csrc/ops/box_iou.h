// box_iou: pairwise IoU (torchvision.ops.box_iou, fmt "xyxy" | "xywh" | "cxcywh", any leading batch
// dimensions, any real dtype), the op both backends plug into (bind_kernel.h).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <c10/util/string_view.h>

#include <cstdint>
#include <type_traits>

#include "../common/box_math.h"

namespace roiops {

struct BoxIouArgs {
  at::Tensor boxes1;  // [B, N, 4] contiguous
  at::Tensor boxes2;  // [B, M, 4], boxes1's dtype, contiguous
  box_math::BoxFormat fmt;
};

// Fills iou [B, N, M] (float32 for half-precision and integer boxes, else the boxes' dtype).
using BoxIouKernel = void (*)(const BoxIouArgs&, at::Tensor& iou);

at::Tensor box_iou(BoxIouKernel kernel, const at::Tensor& boxes1, const at::Tensor& boxes2,
                   c10::string_view fmt);

// The types box_math::pair_iou computes in for boxes of type T, as torchvision's _upcast and true
// division give them: W for areas and the intersection (float for half precision, int32 for the
// small integer types, else T), R for the ratio (float32 for half-precision and integer boxes).
template <typename T>
struct IouTypes {
  static constexpr bool kHalfPrecision =
      std::is_same_v<T, c10::Half> || std::is_same_v<T, c10::BFloat16>;
  static constexpr bool kSmallInteger = std::is_integral_v<T> && sizeof(T) < sizeof(int64_t);
  using W =
      std::conditional_t<kHalfPrecision, float, std::conditional_t<kSmallInteger, int32_t, T>>;
  using R = std::conditional_t<kHalfPrecision || std::is_integral_v<T>, float, T>;
};

}  // namespace roiops
