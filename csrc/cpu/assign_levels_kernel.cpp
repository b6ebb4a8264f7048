// FPN level of every box, on the CPU.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../common/level_math.h"
#include "../ops/assign_levels.h"
#include "../ops/bind_kernel.h"

namespace roiops {
namespace {

void assign_levels_cpu(const AssignLevelsArgs& a, at::Tensor& levels) {
  const int64_t num = a.boxes.size(0), cols = a.boxes.size(1), first = cols - 4;
  AT_DISPATCH_FLOATING_TYPES(a.boxes.scalar_type(), "assign_levels_cpu", [&] {
    const scalar_t* in = a.boxes.data_ptr<scalar_t>();
    int64_t* out = levels.data_ptr<int64_t>();
    const auto scale = static_cast<scalar_t>(a.canonical_scale);
    const auto level = static_cast<scalar_t>(a.canonical_level);
    const auto eps = static_cast<scalar_t>(a.eps);
    at::parallel_for(0, num, 4096, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const scalar_t* box = in + i * cols + first;
        out[i] = level_math::fpn_level<scalar_t>(box[0], box[1], box[2], box[3], scale, level, eps,
                                                 a.k_min, a.k_max);
      }
    });
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(roiops, CPU, m) {
  m.impl("assign_levels", bind_kernel<&assign_levels, &assign_levels_cpu>);
}

}  // namespace roiops
