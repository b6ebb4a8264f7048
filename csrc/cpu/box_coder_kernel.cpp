// Box decoding and encoding on the CPU (torchvision BoxCoder.decode_single / encode_single).
//
// exp and log come from ATen, applied to tensors of the shape torchvision applies torch.exp/log to:
// ATen's vectorised transcendental functions differ from libm in the last bit for some inputs, and
// calling the same kernel on the same values is what makes the results bit-identical.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../common/box_math.h"
#include "../ops/bind_kernel.h"
#include "../ops/box_coder.h"

namespace roiops {
namespace {

using namespace box_math;

// Decodes into `out` [N, 4k]; for decode_clip_boxes also clips to the image and flags boxes whose
// sides are at least min_size (the RPN's proposal filter), fused in the same pass.
template <typename T>
void decode_impl(const DecodeArgs& a, at::Tensor& out, at::Tensor* keep) {
  const at::Tensor& rel_codes = a.rel_codes;
  const int64_t n = rel_codes.size(0), k = rel_codes.size(1) / 4;
  using W = at::opmath_type<T>;
  const W w[4] = {static_cast<W>(a.weights[0]), static_cast<W>(a.weights[1]),
                  static_cast<W>(a.weights[2]), static_cast<W>(a.weights[3])};
  const T clip = static_cast<T>(a.bbox_xform_clip);
  const T* codes = rel_codes.data_ptr<T>();
  const T* ref = a.boxes.data_ptr<T>();
  // dx, dy, dw, dh planes of [N, k]: the dw and dh planes are what torchvision passes to torch.exp.
  at::Tensor deltas = at::empty({4, n, k}, rel_codes.options());
  T* d = deltas.data_ptr<T>();
  const int64_t plane = n * k;
  at::parallel_for(0, n, 2048, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      for (int64_t j = 0; j < k; ++j) {
        const DecodeDeltas<T> dd =
            decode_deltas<WeightDivision::kDivide>(codes + 4 * (i * k + j), w, clip);
        const int64_t at = i * k + j;
        d[at] = dd.dx;
        d[plane + at] = dd.dy;
        d[2 * plane + at] = dd.dw;
        d[3 * plane + at] = dd.dh;
      }
    }
  });
  const at::Tensor exp_w = at::exp(deltas[2]);
  const at::Tensor exp_h = at::exp(deltas[3]);
  const T* ew = exp_w.data_ptr<T>();
  const T* eh = exp_h.data_ptr<T>();
  T* o = out.data_ptr<T>();
  bool* kp = keep != nullptr ? keep->data_ptr<bool>() : nullptr;
  const T height = a.image_size ? static_cast<T>(a.image_size->first) : T(0);
  const T width = a.image_size ? static_cast<T>(a.image_size->second) : T(0);
  const T min_size = static_cast<T>(a.min_size);
  at::parallel_for(0, n, 2048, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      for (int64_t j = 0; j < k; ++j) {
        const int64_t at = i * k + j;
        T* box = o + 4 * at;
        decode_box(ref + 4 * i, d[at], d[plane + at], ew[at], eh[at], box);
        if (kp != nullptr) {
          clip_box(box, height, width);
          kp[at] = sides_at_least(box, min_size);
        }
      }
    }
  });
}

void decode_cpu(const DecodeArgs& a, at::Tensor& out, at::Tensor* keep) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, a.rel_codes.scalar_type(),
                                  "decode_boxes_cpu", [&] { decode_impl<scalar_t>(a, out, keep); });
}

void encode_cpu(const EncodeArgs& a, at::Tensor& out) {
  const int64_t n = a.reference_boxes.size(0);
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, a.reference_boxes.scalar_type(), "encode_boxes_cpu", [&] {
        using T = scalar_t;
        const T w[4] = {static_cast<T>(a.weights[0]), static_cast<T>(a.weights[1]),
                        static_cast<T>(a.weights[2]), static_cast<T>(a.weights[3])};
        // width and height ratios [2, N]: what torchvision passes to torch.log (as [N, 1] each).
        at::Tensor ratios = at::empty({2, n}, a.reference_boxes.options());
        const T* g = a.reference_boxes.data_ptr<T>();
        T* o = out.data_ptr<T>();
        T* r = ratios.data_ptr<T>();
        with_half_or<T>(a.proposals.scalar_type(), [&](auto proposal_type) {
          using P = decltype(proposal_type);
          const P* e = a.proposals.data_ptr<P>();
          at::parallel_for(0, n, 2048, [&](int64_t lo, int64_t hi) {
            for (int64_t i = lo; i < hi; ++i) {
              const EncodeParts<T> p = encode_parts(g + 4 * i, e + 4 * i, w);
              o[4 * i] = p.dx;
              o[4 * i + 1] = p.dy;
              r[i] = p.width_ratio;
              r[n + i] = p.height_ratio;
            }
          });
        });
        const at::Tensor log_w = at::log(ratios[0]);
        const at::Tensor log_h = at::log(ratios[1]);
        const T* lw = log_w.data_ptr<T>();
        const T* lh = log_h.data_ptr<T>();
        for (int64_t i = 0; i < n; ++i) {
          o[4 * i + 2] = mul_exact(w[2], lw[i]);
          o[4 * i + 3] = mul_exact(w[3], lh[i]);
        }
      });
}

}  // namespace

TORCH_LIBRARY_IMPL(roiops, CPU, m) {
  m.impl("decode_boxes", bind_kernel<&decode_boxes, &decode_cpu>);
  m.impl("decode_clip_boxes", bind_kernel<&decode_clip_boxes, &decode_cpu>);
  m.impl("encode_boxes", bind_kernel<&encode_boxes, &encode_cpu>);
}

}  // namespace roiops
