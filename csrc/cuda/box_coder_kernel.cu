// Box decoding and encoding on CUDA: a thread per box (and class), everything fused in one pass;
// float16 / bfloat16 boxes rounded step by step as torchvision's tensor ops round them.
// The contract is torchvision's CUDA bits (its CPU bits are out of reach on a GPU: ATen's CPU exp
// and log are vectorised approximations of their own). Same formulas as the CPU (box_math.h,
// products never fused into FMAs), with what torchvision's ops do on CUDA: expf/logf -- what
// torch.exp/torch.log call there -- and the codes multiplied by the weights' reciprocals.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "../common/box_math.h"
#include "../ops/bind_kernel.h"
#include "../ops/box_coder.h"
#include "cuda_helpers.cuh"

namespace roiops {
namespace {

using namespace box_math;

__device__ __forceinline__ float exp_of(float v) { return expf(v); }
__device__ __forceinline__ double exp_of(double v) { return exp(v); }
__device__ __forceinline__ float log_of(float v) { return logf(v); }
__device__ __forceinline__ double log_of(double v) { return log(v); }
// Half precision as torch computes it: in float, rounded once.
template <typename T>
__device__ __forceinline__ T exp_of(T v) {
  return static_cast<T>(expf(static_cast<float>(v)));
}
template <typename T>
__device__ __forceinline__ T log_of(T v) {
  return static_cast<T>(logf(static_cast<float>(v)));
}

template <typename T>
struct Weights {
  T w[4];
};

template <typename T>
Weights<T> to_weights(const double* weights) {
  return {{static_cast<T>(weights[0]), static_cast<T>(weights[1]), static_cast<T>(weights[2]),
           static_cast<T>(weights[3])}};
}

// 1 / w in W (T, or float for half precision T), computed on the host as ATen's CUDA division by
// a scalar computes it.
template <typename W>
Weights<W> to_reciprocal_weights(const double* weights) {
  Weights<W> r = to_weights<W>(weights);
  for (W& w : r.w) w = W(1) / w;
  return r;
}

// Thread per (box i, class j) of rel_codes [N, 4k]. With keep != nullptr also clips to the image
// and flags boxes with both sides >= min_size.
template <typename T, typename W = at::opmath_type<T>>
__global__ void decode_kernel(const T* __restrict__ codes, const T* __restrict__ ref, int64_t n,
                              int64_t k, const Weights<W> reciprocal_weights, T clip, T height,
                              T width, T min_size, T* __restrict__ out, bool* __restrict__ keep) {
  for (const int64_t at : cuda::grid_stride(n * k)) {
    const DecodeDeltas<T> d = decode_deltas<WeightDivision::kMultiplyByReciprocal>(
        codes + 4 * at, reciprocal_weights.w, clip);
    T box[4];
    decode_box(ref + 4 * (at / k), d.dx, d.dy, exp_of(d.dw), exp_of(d.dh), box);
    if (keep != nullptr) {
      clip_box(box, height, width);
      keep[at] = sides_at_least(box, min_size);
    }
    for (int c = 0; c < 4; ++c) out[4 * at + c] = box[c];
  }
}

template <typename T, typename P>
__global__ void encode_kernel(const T* __restrict__ gt, const P* __restrict__ proposals, int64_t n,
                              const Weights<T> weights, T* __restrict__ out) {
  for (const int64_t i : cuda::grid_stride(n)) {
    const EncodeParts<T> p = encode_parts(gt + 4 * i, proposals + 4 * i, weights.w);
    out[4 * i] = p.dx;
    out[4 * i + 1] = p.dy;
    out[4 * i + 2] = mul_exact(weights.w[2], log_of(p.width_ratio));
    out[4 * i + 3] = mul_exact(weights.w[3], log_of(p.height_ratio));
  }
}

void decode_cuda(const DecodeArgs& a, at::Tensor& out, at::Tensor* keep) {
  const int64_t n = a.rel_codes.size(0), k = a.rel_codes.size(1) / 4;
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, a.rel_codes.scalar_type(), "decode_boxes_cuda", [&] {
        using T = scalar_t;
        cuda::launch(
            decode_kernel<T>, cuda::elementwise_blocks(n * k), cuda::kThreadsPerBlock,
            a.rel_codes.data_ptr<T>(), a.boxes.data_ptr<T>(), n, k,
            to_reciprocal_weights<at::opmath_type<T>>(a.weights), static_cast<T>(a.bbox_xform_clip),
            a.image_size ? static_cast<T>(a.image_size->first) : T(0),
            a.image_size ? static_cast<T>(a.image_size->second) : T(0), static_cast<T>(a.min_size),
            out.data_ptr<T>(), keep ? keep->data_ptr<bool>() : nullptr);
      });
}

void encode_cuda(const EncodeArgs& a, at::Tensor& out) {
  const int64_t n = a.reference_boxes.size(0);
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, a.reference_boxes.scalar_type(), "encode_boxes_cuda", [&] {
        using T = scalar_t;
        with_half_or<T>(a.proposals.scalar_type(), [&](auto proposal_type) {
          using P = decltype(proposal_type);
          cuda::launch(encode_kernel<T, P>, cuda::elementwise_blocks(n), cuda::kThreadsPerBlock,
                       a.reference_boxes.data_ptr<T>(), a.proposals.data_ptr<P>(), n,
                       to_weights<T>(a.weights), out.data_ptr<T>());
        });
      });
}

}  // namespace

ROIOPS_REGISTER_CUDA_KERNELS(m) {
  m.impl("decode_boxes", bind_kernel<&decode_boxes, &decode_cuda>);
  m.impl("decode_clip_boxes", bind_kernel<&decode_clip_boxes, &decode_cuda>);
  m.impl("encode_boxes", bind_kernel<&encode_boxes, &encode_cuda>);
}

}  // namespace roiops
