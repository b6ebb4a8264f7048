// Greedy NMS on the CPU: each (row, class) segment of the class-grouped, score-sorted boxes is
// suppressed independently, segments in parallel. Within a segment this is torchvision's CPU loop.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "../common/box_math.h"
#include "../ops/bind_kernel.h"
#include "../ops/nms.h"

namespace roiops {
namespace {

struct Segment {
  int64_t begin, end;  // flat positions in [B * N)
};

template <typename T>
void suppress_segment(const T* boxes, const Segment& s, double threshold, int64_t max_keep,
                      bool* keep, std::vector<T>& areas, std::vector<char>& suppressed) {
  const int64_t n = s.end - s.begin;
  const T* seg = boxes + 4 * s.begin;
  areas.resize(n);
  suppressed.assign(n, 0);
  for (int64_t i = 0; i < n; ++i) areas[i] = box_math::box_area(seg + 4 * i);
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (suppressed[i]) continue;
    if (max_keep >= 0 && kept == max_keep) break;  // early stop: enough survivors
    keep[s.begin + i] = true;
    ++kept;
    for (int64_t j = i + 1; j < n; ++j) {
      if (!suppressed[j] &&
          box_math::iou_above(seg + 4 * i, areas[i], seg + 4 * j, areas[j], threshold)) {
        suppressed[j] = 1;
      }
    }
  }
}

void nms_greedy_cpu(const NmsGreedyArgs& a, at::Tensor& keep) {
  const int64_t rows = a.boxes.size(0), n = a.boxes.size(1);
  // Segments: runs of one class within a row; negative classes are padding and get none.
  std::vector<Segment> segments;
  const int64_t* c = a.classes.defined() ? a.classes.data_ptr<int64_t>() : nullptr;
  for (int64_t r = 0; r < rows; ++r) {
    int64_t begin = r * n;
    for (int64_t p = r * n + 1; p <= (r + 1) * n; ++p) {
      if (p < (r + 1) * n && (c == nullptr || c[p] == c[p - 1])) continue;
      if (c == nullptr || c[begin] >= 0) segments.push_back({begin, p});
      begin = p;
    }
  }

  // Threads only for enough work: a parallel region costs ~10 us on a quiet machine, and on a
  // busy one a descheduled thread holds up the others for a whole time slice -- detection NMS (90
  // classes, ~1 ms of work) ran at 0.69x torchvision's single thread with both cores busy. The
  // work of a segment is its pairwise IoUs, at most n^2 / 2.
  constexpr double kParallelPairs = 1 << 22;  // ~4 ms of IoUs on one core
  double pairs = 0;
  for (const Segment& s : segments) {
    const double n = static_cast<double>(s.end - s.begin);
    pairs += 0.5 * n * n;
  }
  const int64_t count = static_cast<int64_t>(segments.size());
  const int64_t grain = pairs < kParallelPairs ? std::max<int64_t>(count, 1) : 1;
  AT_DISPATCH_FLOATING_TYPES(a.boxes.scalar_type(), "nms_greedy_cpu", [&] {
    const scalar_t* b = a.boxes.data_ptr<scalar_t>();
    bool* k = keep.data_ptr<bool>();
    at::parallel_for(0, count, grain, [&](int64_t lo, int64_t hi) {
      std::vector<scalar_t> areas;
      std::vector<char> suppressed;
      for (int64_t s = lo; s < hi; ++s) {
        suppress_segment(b, segments[s], a.iou_threshold, a.max_keep, k, areas, suppressed);
      }
    });
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(roiops, CPU, m) {
  m.impl("_nms_greedy", bind_kernel<&nms_greedy, &nms_greedy_cpu>);
}

}  // namespace roiops
