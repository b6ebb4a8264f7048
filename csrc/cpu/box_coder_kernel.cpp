// Box decoding and encoding on the CPU (torchvision BoxCoder.decode_single / encode_single).
//
// exp and log come from ATen, applied to tensors of the shape torchvision applies torch.exp/log to:
// ATen's vectorised transcendental functions differ from libm in the last bit for some inputs, and
// calling the same kernel on the same values is what makes the results bit-identical.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <tuple>

#include "../box_ops_args.h"
#include "../common/box_math.h"

namespace roiops {
namespace {

using namespace box_math;

// Decodes into `out` [N, 4k]; if keep is given, also clips to the image and flags boxes whose
// sides are at least min_size (the RPN's proposal filter), fused in the same pass.
template <typename T>
void decode_impl(const at::Tensor& rel_codes, const at::Tensor& boxes, at::ArrayRef<double> weights,
                 double clip, at::Tensor& out, const double* image_hw, double min_size,
                 at::Tensor* keep) {
  const int64_t n = rel_codes.size(0), k = rel_codes.size(1) / 4;
  const T w[4] = {static_cast<T>(weights[0]), static_cast<T>(weights[1]),
                  static_cast<T>(weights[2]), static_cast<T>(weights[3])};
  const T* codes = rel_codes.data_ptr<T>();
  const T* ref = boxes.data_ptr<T>();
  // dx, dy, dw, dh planes of [N, k]: the dw and dh planes are what torchvision passes to torch.exp.
  at::Tensor deltas = at::empty({4, n, k}, rel_codes.options());
  T* d = deltas.data_ptr<T>();
  const int64_t plane = n * k;
  at::parallel_for(0, n, 2048, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      for (int64_t j = 0; j < k; ++j) {
        const DecodeDeltas<T> dd = decode_deltas(codes + 4 * (i * k + j), w, static_cast<T>(clip));
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
  const T height = image_hw ? static_cast<T>(image_hw[0]) : T(0);
  const T width = image_hw ? static_cast<T>(image_hw[1]) : T(0);
  at::parallel_for(0, n, 2048, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      for (int64_t j = 0; j < k; ++j) {
        const int64_t at = i * k + j;
        T* box = o + 4 * at;
        decode_box(ref + 4 * i, d[at], d[plane + at], ew[at], eh[at], box);
        if (kp != nullptr) {
          clip_box(box, height, width);
          kp[at] = sides_at_least(box, static_cast<T>(min_size));
        }
      }
    }
  });
}

at::Tensor decode_boxes_cpu(const at::Tensor& rel_codes, const at::Tensor& boxes,
                            at::ArrayRef<double> weights, double bbox_xform_clip) {
  check_decode_args("decode_boxes", rel_codes, boxes, weights);
  const at::Tensor codes = rel_codes.contiguous(), ref = boxes.contiguous();
  at::Tensor out = at::empty_like(codes);
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(codes.scalar_type(), "decode_boxes_cpu", [&] {
    decode_impl<scalar_t>(codes, ref, weights, bbox_xform_clip, out, nullptr, 0, nullptr);
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> decode_clip_boxes_cpu(
    const at::Tensor& rel_codes, const at::Tensor& boxes, at::ArrayRef<double> weights,
    double bbox_xform_clip, int64_t image_height, int64_t image_width, double min_size) {
  check_decode_args("decode_clip_boxes", rel_codes, boxes, weights);
  const at::Tensor codes = rel_codes.contiguous(), ref = boxes.contiguous();
  at::Tensor out = at::empty_like(codes);
  at::Tensor keep = at::empty({codes.size(0), codes.size(1) / 4}, codes.options().dtype(at::kBool));
  if (out.numel() == 0) return {out, keep};
  const double image_hw[2] = {static_cast<double>(image_height), static_cast<double>(image_width)};
  AT_DISPATCH_FLOATING_TYPES(codes.scalar_type(), "decode_clip_boxes_cpu", [&] {
    decode_impl<scalar_t>(codes, ref, weights, bbox_xform_clip, out, image_hw, min_size, &keep);
  });
  return {out, keep};
}

at::Tensor encode_boxes_cpu(const at::Tensor& reference_boxes, const at::Tensor& proposals,
                            at::ArrayRef<double> weights) {
  check_encode_args("encode_boxes", reference_boxes, proposals, weights);
  const at::Tensor gt = reference_boxes.contiguous(), ex = proposals.contiguous();
  const int64_t n = gt.size(0);
  at::Tensor out = at::empty({n, 4}, gt.options());
  if (n == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(gt.scalar_type(), "encode_boxes_cpu", [&] {
    using T = scalar_t;
    const T w[4] = {static_cast<T>(weights[0]), static_cast<T>(weights[1]),
                    static_cast<T>(weights[2]), static_cast<T>(weights[3])};
    // width and height ratios [2, N]: what torchvision passes to torch.log (as [N, 1] each).
    at::Tensor ratios = at::empty({2, n}, gt.options());
    const T* g = gt.data_ptr<T>();
    const T* e = ex.data_ptr<T>();
    T* o = out.data_ptr<T>();
    T* r = ratios.data_ptr<T>();
    at::parallel_for(0, n, 2048, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        const EncodeParts<T> p = encode_parts(g + 4 * i, e + 4 * i, w);
        o[4 * i] = p.dx;
        o[4 * i + 1] = p.dy;
        r[i] = p.width_ratio;
        r[n + i] = p.height_ratio;
      }
    });
    const at::Tensor log_w = at::log(ratios[0]);
    const at::Tensor log_h = at::log(ratios[1]);
    const T* lw = log_w.data_ptr<T>();
    const T* lh = log_h.data_ptr<T>();
    for (int64_t i = 0; i < n; ++i) {
      o[4 * i + 2] = w[2] * lw[i];
      o[4 * i + 3] = w[3] * lh[i];
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(roiops, CPU, m) {
  m.impl("decode_boxes", &decode_boxes_cpu);
  m.impl("decode_clip_boxes", &decode_clip_boxes_cpu);
  m.impl("encode_boxes", &encode_boxes_cpu);
}

}  // namespace roiops
