// Kernels whose second tensor may be half precision beside a first of another type (an RPN's
// anchors or a model's detections under torch.autocast): fn is called with a value of the C++ type
// to read that tensor as.
#pragma once

#include <c10/core/ScalarType.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

namespace roiops {

// fn(c10::Half{}) or fn(c10::BFloat16{}) for those dtypes, else fn(Otherwise{}).
template <typename Otherwise, typename Fn>
void with_half_or(at::ScalarType dtype, const Fn& fn) {
  if (dtype == at::kHalf) {
    fn(c10::Half{});
  } else if (dtype == at::kBFloat16) {
    fn(c10::BFloat16{});
  } else {
    fn(Otherwise{});
  }
}

}  // namespace roiops
