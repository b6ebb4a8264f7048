// Products that are never fused into a fused multiply-add.
//
// nvcc contracts `a * b + c` into one FMA (a single rounding instead of two) wherever it can; the
// host compiler is told not to (setup.py passes -ffp-contract=off) and torchvision's CPU kernels,
// the numerics roiops reproduces, never fuse. So every product whose rounding decides a result that
// must be bit-identical on both backends goes through mul_exact: __fmul_rn / __dmul_rn compile to
// `mul.rn`, which neither nvcc nor ptxas may fuse. tests/test_cuda_codegen.py compiles the CUDA
// kernels to PTX and checks that no contracted FMA and no fusable product is left.
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>

#include "macros.h"

namespace roiops {

ROIOPS_HOST_DEVICE ROIOPS_INLINE float mul_exact(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

ROIOPS_HOST_DEVICE ROIOPS_INLINE double mul_exact(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

// Half precision: the product of two halves (or bfloat16s) is exact in float, so one rounding gives
// the correctly rounded product -- what torch's multiply of two such tensors stores.
ROIOPS_HOST_DEVICE ROIOPS_INLINE c10::Half mul_exact(c10::Half a, c10::Half b) {
  return c10::Half(mul_exact(static_cast<float>(a), static_cast<float>(b)));
}

ROIOPS_HOST_DEVICE ROIOPS_INLINE c10::BFloat16 mul_exact(c10::BFloat16 a, c10::BFloat16 b) {
  return c10::BFloat16(mul_exact(static_cast<float>(a), static_cast<float>(b)));
}

// Integer products are exact anyway; these let integer-typed formulas share the float templates.
ROIOPS_HOST_DEVICE ROIOPS_INLINE int32_t mul_exact(int32_t a, int32_t b) { return a * b; }
ROIOPS_HOST_DEVICE ROIOPS_INLINE int64_t mul_exact(int64_t a, int64_t b) { return a * b; }

}  // namespace roiops
