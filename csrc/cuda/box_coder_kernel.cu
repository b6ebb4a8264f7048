// Box decoding and encoding on CUDA: one thread per box (and class), everything fused in one pass.
// Same formulas as the CPU (box_math.h, products never fused into FMAs), with expf/logf -- the
// functions torch.exp/torch.log call on CUDA -- so results equal torchvision's CUDA results.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <tuple>

#include "../box_ops_args.h"
#include "../common/box_math.h"
#include "cuda_helpers.cuh"

namespace roiops {
namespace {

using namespace box_math;

__device__ __forceinline__ float exp_of(float v) { return expf(v); }
__device__ __forceinline__ double exp_of(double v) { return exp(v); }
__device__ __forceinline__ float log_of(float v) { return logf(v); }
__device__ __forceinline__ double log_of(double v) { return log(v); }

template <typename T>
struct Weights {
  T w[4];
};

template <typename T>
Weights<T> to_weights(at::ArrayRef<double> weights) {
  return {{static_cast<T>(weights[0]), static_cast<T>(weights[1]), static_cast<T>(weights[2]),
           static_cast<T>(weights[3])}};
}

// Thread per (box i, class j) of rel_codes [N, 4k]. With keep != nullptr also clips to the image
// and flags boxes with both sides >= min_size.
template <typename T>
__global__ void decode_kernel(const T* __restrict__ codes, const T* __restrict__ ref, int64_t n,
                              int64_t k, const Weights<T> weights, T clip, T height, T width,
                              T min_size, T* __restrict__ out, bool* __restrict__ keep) {
  const int64_t at = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (at >= n * k) return;
  const DecodeDeltas<T> d = decode_deltas(codes + 4 * at, weights.w, clip);
  T box[4];
  decode_box(ref + 4 * (at / k), d.dx, d.dy, exp_of(d.dw), exp_of(d.dh), box);
  if (keep != nullptr) {
    clip_box(box, height, width);
    keep[at] = sides_at_least(box, min_size);
  }
  for (int c = 0; c < 4; ++c) out[4 * at + c] = box[c];
}

template <typename T>
__global__ void encode_kernel(const T* __restrict__ gt, const T* __restrict__ proposals, int64_t n,
                              const Weights<T> weights, T* __restrict__ out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const EncodeParts<T> p = encode_parts(gt + 4 * i, proposals + 4 * i, weights.w);
  out[4 * i] = p.dx;
  out[4 * i + 1] = p.dy;
  out[4 * i + 2] = mul_exact(weights.w[2], log_of(p.width_ratio));
  out[4 * i + 3] = mul_exact(weights.w[3], log_of(p.height_ratio));
}

constexpr int kThreads = 256;

void launch_decode(const at::Tensor& codes, const at::Tensor& ref, at::ArrayRef<double> weights,
                   double clip, at::Tensor& out, const double* image_hw, double min_size,
                   at::Tensor* keep) {
  const int64_t n = codes.size(0), k = codes.size(1) / 4;
  if (n * k == 0) return;
  const unsigned blocks = static_cast<unsigned>(cuda::ceil_div<int64_t>(n * k, kThreads));
  AT_DISPATCH_FLOATING_TYPES(codes.scalar_type(), "decode_boxes_cuda", [&] {
    using T = scalar_t;
    cuda::launch(decode_kernel<T>, blocks, kThreads, codes.data_ptr<T>(), ref.data_ptr<T>(), n, k,
                 to_weights<T>(weights), static_cast<T>(clip),
                 image_hw ? static_cast<T>(image_hw[0]) : T(0),
                 image_hw ? static_cast<T>(image_hw[1]) : T(0), static_cast<T>(min_size),
                 out.data_ptr<T>(), keep ? keep->data_ptr<bool>() : nullptr);
  });
}

at::Tensor decode_boxes_cuda(const at::Tensor& rel_codes, const at::Tensor& boxes,
                             at::ArrayRef<double> weights, double bbox_xform_clip) {
  check_decode_args("decode_boxes", rel_codes, boxes, weights);
  cuda::DeviceGuard device_guard(rel_codes.device());
  const at::Tensor codes = rel_codes.contiguous(), ref = boxes.contiguous();
  at::Tensor out = at::empty_like(codes);
  launch_decode(codes, ref, weights, bbox_xform_clip, out, nullptr, 0, nullptr);
  return out;
}

std::tuple<at::Tensor, at::Tensor> decode_clip_boxes_cuda(
    const at::Tensor& rel_codes, const at::Tensor& boxes, at::ArrayRef<double> weights,
    double bbox_xform_clip, int64_t image_height, int64_t image_width, double min_size) {
  check_decode_args("decode_clip_boxes", rel_codes, boxes, weights);
  cuda::DeviceGuard device_guard(rel_codes.device());
  const at::Tensor codes = rel_codes.contiguous(), ref = boxes.contiguous();
  at::Tensor out = at::empty_like(codes);
  at::Tensor keep = at::empty({codes.size(0), codes.size(1) / 4}, codes.options().dtype(at::kBool));
  const double image_hw[2] = {static_cast<double>(image_height), static_cast<double>(image_width)};
  launch_decode(codes, ref, weights, bbox_xform_clip, out, image_hw, min_size, &keep);
  return {out, keep};
}

at::Tensor encode_boxes_cuda(const at::Tensor& reference_boxes, const at::Tensor& proposals,
                             at::ArrayRef<double> weights) {
  check_encode_args("encode_boxes", reference_boxes, proposals, weights);
  cuda::DeviceGuard device_guard(reference_boxes.device());
  const at::Tensor gt = reference_boxes.contiguous(), ex = proposals.contiguous();
  const int64_t n = gt.size(0);
  at::Tensor out = at::empty({n, 4}, gt.options());
  if (n == 0) return out;
  const unsigned blocks = static_cast<unsigned>(cuda::ceil_div<int64_t>(n, kThreads));
  AT_DISPATCH_FLOATING_TYPES(gt.scalar_type(), "encode_boxes_cuda", [&] {
    cuda::launch(encode_kernel<scalar_t>, blocks, kThreads, gt.data_ptr<scalar_t>(),
                 ex.data_ptr<scalar_t>(), n, to_weights<scalar_t>(weights),
                 out.data_ptr<scalar_t>());
  });
  return out;
}

}  // namespace

ROIOPS_REGISTER_CUDA_KERNELS(m) {
  m.impl("decode_boxes", &decode_boxes_cuda);
  m.impl("decode_clip_boxes", &decode_clip_boxes_cuda);
  m.impl("encode_boxes", &encode_boxes_cuda);
}

}  // namespace roiops
