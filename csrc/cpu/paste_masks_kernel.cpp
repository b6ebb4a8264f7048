// Mask pasting on the CPU: parallel over masks. Per mask the resize's x pass is computed once for
// the few padded rows it reads, then each canvas pixel is written once: the window's rows by the
// y pass, and between them one run of zeros each -- streamed past the caches when the canvases are
// large and already in memory (streaming_stores.h): most of a canvas is zeros, and writing them is
// most of the time.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../common/paste_math.h"
#include "../ops/bind_kernel.h"
#include "../ops/half_dispatch.h"
#include "../ops/paste_masks.h"
#include "streaming_stores.h"

namespace roiops {
namespace {

using namespace paste_math;

template <typename T, typename B>
void paste_impl(const PasteMasksArgs& a, at::Tensor& out) {
  using A = at::opmath_type<T>;
  const int64_t count = a.masks.size(0), mask_h = a.masks.size(2), mask_w = a.masks.size(3);
  const int64_t padded_h = mask_h + 2 * a.padding, padded_w = mask_w + 2 * a.padding;
  const int64_t image_h = a.image_h, image_w = a.image_w;
  const T* masks = a.masks.data_ptr<T>();
  const B* boxes = a.boxes.data_ptr<B>();
  T* canvas = out.data_ptr<T>();
  const int64_t bytes = out.numel() * static_cast<int64_t>(sizeof(T));
  const bool stream = bytes >= cpu::kStreamingBytes && cpu::is_resident(canvas);
  auto zero = [stream](T* first, int64_t n) {
    if (stream) {
      cpu::stream_zeros(first, n * static_cast<int64_t>(sizeof(T)));
    } else {
      std::fill(first, first + n, T(0));
    }
  };
  at::parallel_for(0, count, 1, [&](int64_t begin, int64_t end) {
    std::vector<ResizeTap<A>> columns;
    std::vector<A> rows;  // the x pass of the padded rows the window reads, window-wide
    for (int64_t n = begin; n < end; ++n) {
      T* image = canvas + n * image_h * image_w;
      const PasteWindow w =
          paste_window(boxes + 4 * n, static_cast<at::opmath_type<B>>(a.scale), image_h, image_w);
      if (w.x1 <= w.x0 || w.y1 <= w.y0) {
        zero(image, image_h * image_w);
        continue;
      }
      const T* mask = masks + n * mask_h * mask_w;
      const int64_t width = w.x1 - w.x0;
      columns.resize(width);
      for (int64_t x = 0; x < width; ++x) {
        columns[x] = resize_tap<A>(w.x0 + x - w.box_x1, w.width, padded_w);
      }
      // The y taps grow with y: the window reads padded rows first_row..last_row. Their x pass is
      // computed once here instead of once per image row (a mask is upsampled ~10x).
      const int64_t first_row = resize_tap<A>(w.y0 - w.box_y1, w.height, padded_h).low;
      const ResizeTap<A> last = resize_tap<A>(w.y1 - 1 - w.box_y1, w.height, padded_h);
      const int64_t row_count = last.low + last.step - first_row + 1;
      rows.resize(row_count * width);
      for (int64_t r = 0; r < row_count; ++r) {
        for (int64_t x = 0; x < width; ++x) {
          rows[r * width + x] =
              resized_row<T, A>(mask, mask_h, mask_w, a.padding, first_row + r, columns[x]);
        }
      }
      // Every canvas pixel written once: the window's rows, and the zeros between them in one run
      // each (a row's right margin and the next row's left one; before the first row and after
      // the last, to the canvas' ends).
      zero(image, w.y0 * image_w + w.x0);
      for (int64_t y = w.y0; y < w.y1; ++y) {
        const ResizeTap<A> ty = resize_tap<A>(y - w.box_y1, w.height, padded_h);
        const A* upper = rows.data() + (ty.low - first_row) * width;
        const A* lower = upper + ty.step * width;
        T* pixels = image + y * image_w + w.x0;
        for (int64_t x = 0; x < width; ++x) {
          pixels[x] = static_cast<T>(blend_rows(ty, upper[x], lower[x]));
        }
        const int64_t gap_begin = y * image_w + w.x1;
        const int64_t gap_end = y + 1 < w.y1 ? (y + 1) * image_w + w.x0 : image_h * image_w;
        zero(image + gap_begin, gap_end - gap_begin);
      }
    }
    if (stream) cpu::streaming_fence();  // before the threads join
  });
}

void paste_masks_cpu(const PasteMasksArgs& a, at::Tensor& out) {
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, a.masks.scalar_type(), "paste_masks_cpu", [&] {
        using T = scalar_t;
        if (a.boxes.scalar_type() == at::kDouble) {
          paste_impl<T, double>(a, out);
          return;
        }
        with_half_or<float>(a.boxes.scalar_type(),
                            [&](auto box) { paste_impl<T, decltype(box)>(a, out); });
      });
}

}  // namespace

TORCH_LIBRARY_IMPL(roiops, CPU, m) {
  m.impl("paste_masks_in_image", bind_kernel<&paste_masks_in_image, &paste_masks_cpu>);
}

}  // namespace roiops
