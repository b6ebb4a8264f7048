// NMS, batched NMS and the fixed-size batched variant: argument checks and the device-independent
// steps (sorting, class grouping, compaction) written once with ATen ops, registered as
// CompositeExplicitAutograd. The greedy suppression itself is the backend op _nms_greedy
// (nms.h; csrc/cpu/nms_kernel.cpp, csrc/cuda/nms_kernel.cu).
//
// Order of results: decreasing score; equal scores keep ascending box index (a stable sort), NaN
// scores first -- torchvision's order (for batched_nms on large inputs, the order of its unstable
// sort). batched_nms is exact per-class NMS: boxes of different classes never interact, without
// torchvision's coordinate-offset trick and its float rounding.

#include "nms.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#include <optional>
#include <tuple>

#include "bind_kernel.h"
#include "library.h"

namespace roiops {

at::Tensor nms_greedy(NmsGreedyKernel kernel, const at::Tensor& boxes,
                      const std::optional<at::Tensor>& classes, double iou_threshold,
                      int64_t max_keep) {
  TORCH_CHECK_VALUE(boxes.dim() == 3 && boxes.size(2) == 4 && boxes.is_contiguous(),
                    "_nms_greedy: boxes must be a contiguous [B, N, 4] tensor, got shape ",
                    boxes.sizes());
  TORCH_CHECK_TYPE(boxes.scalar_type() == at::kFloat || boxes.scalar_type() == at::kDouble,
                   "_nms_greedy: boxes must be float32 or float64, got ", boxes.scalar_type());
  NmsGreedyArgs args{boxes, at::Tensor(), iou_threshold, max_keep};
  if (classes.has_value() && classes->defined()) {
    TORCH_CHECK_VALUE(classes->dim() == 2 && classes->size(0) == boxes.size(0) &&
                          classes->size(1) == boxes.size(1),
                      "_nms_greedy: classes must be [B, N] like boxes, got shape ",
                      classes->sizes());
    TORCH_CHECK_TYPE(classes->scalar_type() == at::kLong,
                     "_nms_greedy: classes must be int64, got ", classes->scalar_type());
    TORCH_CHECK(classes->device() == boxes.device(), "_nms_greedy: classes is on ",
                classes->device(), " but boxes is on ", boxes.device());
    args.classes = classes->contiguous();
  }
  at::Tensor keep = at::zeros({boxes.size(0), boxes.size(1)}, boxes.options().dtype(at::kBool));
  run_kernel(kernel, args, keep);
  return keep;
}

namespace {

bool is_float_type(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16;
}

// boxes [..., N, 4], scores [..., N], idxs [..., N] (batch dims `lead`); all on one device.
void check_nms_args(const char* op, const at::Tensor& boxes, const at::Tensor& scores,
                    const at::Tensor* idxs, int64_t lead) {
  const char* shape = lead == 0 ? "[N, 4]" : "[B, N, 4]";
  TORCH_CHECK_VALUE(boxes.dim() == lead + 2 && boxes.size(-1) == 4, op, ": boxes must be a ",
                    lead + 2, "-D tensor ", shape, " of (x1, y1, x2, y2), got shape ",
                    boxes.sizes());
  TORCH_CHECK_VALUE(scores.dim() == lead + 1 && scores.sizes() == boxes.sizes().slice(0, lead + 1),
                    op, ": scores must have one score per box (shape ",
                    boxes.sizes().slice(0, lead + 1), "), got shape ", scores.sizes());
  TORCH_CHECK_TYPE(is_float_type(boxes.scalar_type()), op,
                   ": boxes must be float32, float64, float16 or bfloat16, got ",
                   boxes.scalar_type());
  TORCH_CHECK_TYPE(is_float_type(scores.scalar_type()), op,
                   ": scores must be float32, float64, float16 or bfloat16, got ",
                   scores.scalar_type());
  TORCH_CHECK(scores.device() == boxes.device(), op, ": scores is on ", scores.device(),
              " but boxes is on ", boxes.device());
  if (idxs != nullptr) {
    TORCH_CHECK_VALUE(idxs->sizes() == scores.sizes(), op,
                      ": idxs must have one class index per box (shape ", scores.sizes(),
                      "), got shape ", idxs->sizes());
    TORCH_CHECK_TYPE(at::isIntegralType(idxs->scalar_type(), /*includeBool=*/false), op,
                     ": idxs must be an integer tensor, got ", idxs->scalar_type());
    TORCH_CHECK(idxs->device() == boxes.device(), op, ": idxs is on ", idxs->device(),
                " but boxes is on ", boxes.device());
  }
}

// Keep flags, per row in score order: keep[b, p] says whether box order[b, p] survives.
// classes [B, N] (int64, or undefined for one class): boxes with a negative class are ignored.
std::tuple<at::Tensor, at::Tensor> keep_in_score_order(const at::Tensor& boxes,
                                                       const at::Tensor& scores,
                                                       const at::Tensor& classes,
                                                       double iou_threshold, int64_t max_keep) {
  // Reduced precision boxes are compared in float32: exact for the values they hold.
  const at::Tensor b = boxes.scalar_type() == at::kDouble ? boxes : boxes.to(at::kFloat);
  const at::Tensor order =
      std::get<1>(scores.sort(/*stable=*/true, /*dim=*/1, /*descending=*/true));
  at::Tensor perm = order;
  at::Tensor classes_sorted;
  if (classes.defined()) {
    // Group by class, keeping the score order inside each class (stable sort).
    auto [sorted, within] = classes.gather(1, order).sort(/*stable=*/true, /*dim=*/1, false);
    perm = order.gather(1, within);
    classes_sorted = sorted;
  }
  const at::Tensor boxes_sorted =
      b.gather(1, perm.unsqueeze(-1).expand({perm.size(0), perm.size(1), 4})).contiguous();
  static const auto greedy =
      find_op<at::Tensor(const at::Tensor&, const std::optional<at::Tensor>&, double, int64_t)>(
          "_nms_greedy");
  const at::Tensor keep_sorted = greedy.call(
      boxes_sorted,
      classes_sorted.defined() ? std::optional<at::Tensor>(classes_sorted) : std::nullopt,
      iou_threshold, max_keep);
  // Back from class-grouped order to score order.
  const at::Tensor keep =
      at::zeros_like(keep_sorted).scatter_(1, perm, keep_sorted).gather(1, order);
  return {order, keep};
}

at::Tensor nms(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  constexpr const char* op = "nms";
  check_nms_args(op, boxes, scores, nullptr, 0);
  if (boxes.size(0) == 0) return at::empty({0}, boxes.options().dtype(at::kLong));
  auto [order, keep] =
      keep_in_score_order(boxes.unsqueeze(0), scores.unsqueeze(0), at::Tensor(), iou_threshold, -1);
  return order[0].masked_select(keep[0]);  // the one host sync: the output size
}

at::Tensor batched_nms(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& idxs,
                       double iou_threshold) {
  constexpr const char* op = "batched_nms";
  check_nms_args(op, boxes, scores, &idxs, 0);
  if (boxes.size(0) == 0) return at::empty({0}, boxes.options().dtype(at::kLong));
  // Any class index is a class here, negative ones too: shift so the smallest is 0.
  const at::Tensor classes = idxs.to(at::kLong).unsqueeze(0);
  auto [order, keep] = keep_in_score_order(boxes.unsqueeze(0), scores.unsqueeze(0),
                                           classes - classes.min(), iou_threshold, -1);
  const at::Tensor kept = order[0].masked_select(keep[0]);
  // Above 4000 box coordinates on the CPU (20000 elsewhere) torchvision switches to a loop over
  // classes and orders what it kept with an unstable sort of their scores taken in index order, so
  // equal scores come out in whatever order that sort leaves them. Sort the same values the same
  // way, so the result is torchvision's index for index there too.
  if (boxes.numel() > (boxes.is_cpu() ? 4000 : 20000)) {
    const at::Tensor by_index = std::get<0>(kept.sort());
    const at::Tensor by_score = std::get<1>(
        scores.index_select(0, by_index).sort(/*stable=*/false, /*dim=*/0, /*descending=*/true));
    return by_index.index_select(0, by_score);
  }
  return kept;
}

std::tuple<at::Tensor, at::Tensor> batched_nms_padded(const at::Tensor& boxes,
                                                      const at::Tensor& scores,
                                                      const std::optional<at::Tensor>& idxs,
                                                      double iou_threshold, int64_t max_output) {
  constexpr const char* op = "batched_nms_padded";
  check_nms_args(op, boxes, scores, idxs.has_value() ? &*idxs : nullptr, 1);
  TORCH_CHECK_VALUE(max_output >= 0, op, ": max_output must be non-negative, got ", max_output);
  const int64_t batch = boxes.size(0), n = boxes.size(1);
  const auto long_opts = boxes.options().dtype(at::kLong);
  if (batch == 0 || n == 0 || max_output == 0) {
    return {at::full({batch, max_output}, -1, long_opts), at::zeros({batch}, long_opts)};
  }
  const at::Tensor classes = idxs.has_value() ? idxs->to(at::kLong) : at::Tensor();
  // Per class at most max_output survivors can make the image's top max_output: stop there.
  auto [order, keep] = keep_in_score_order(boxes, scores, classes, iou_threshold, max_output);
  // Compaction without a host sync: the r-th kept box of a row goes to column r - 1; others are
  // written to a spare last column that is cut off.
  const at::Tensor rank = keep.to(at::kLong).cumsum(1);
  const at::Tensor take = keep.logical_and(rank <= max_output);
  const at::Tensor column = at::where(take, rank - 1, at::full({}, max_output, long_opts));
  at::Tensor out = at::full({batch, max_output + 1}, -1, long_opts);
  out.scatter_(1, column, at::where(take, order, at::full({}, -1, long_opts)));
  const at::Tensor count = rank.select(1, n - 1).clamp_max(max_output);
  return {out.narrow(1, 0, max_output).contiguous(), count};
}

}  // namespace

TORCH_LIBRARY_IMPL(ROIOPS_LIBRARY, CompositeExplicitAutograd, m) {
  m.impl("nms", &nms);
  m.impl("batched_nms", &batched_nms);
  m.impl("batched_nms_padded", &batched_nms_padded);
}

}  // namespace roiops
