// FPN level of every box, on the CPU.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../assign_levels_args.h"
#include "../common/level_math.h"

namespace roiops {
namespace {

at::Tensor assign_levels_cpu(const at::Tensor& boxes, int64_t k_min, int64_t k_max,
                             double canonical_scale, double canonical_level, double eps) {
  const at::Tensor b = check_assign_levels_args(boxes, k_min, k_max, canonical_scale);
  const int64_t num = b.size(0), cols = b.size(1), first = cols - 4;
  at::Tensor levels = at::empty({num}, b.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(b.scalar_type(), "assign_levels_cpu", [&] {
    const scalar_t* in = b.data_ptr<scalar_t>();
    int64_t* out = levels.data_ptr<int64_t>();
    at::parallel_for(0, num, 4096, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const scalar_t* box = in + i * cols + first;
        out[i] = level_math::fpn_level<scalar_t>(
            box[0], box[1], box[2], box[3], static_cast<scalar_t>(canonical_scale),
            static_cast<scalar_t>(canonical_level), static_cast<scalar_t>(eps), k_min, k_max);
      }
    });
  });
  return levels;
}

}  // namespace

TORCH_LIBRARY_IMPL(roiops, CPU, m) { m.impl("assign_levels", &assign_levels_cpu); }

}  // namespace roiops
