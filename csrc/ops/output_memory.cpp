#include "output_memory.h"

#include <ATen/ATen.h>

#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace roiops {

namespace {

// Advises the whole 2 MB blocks inside [data, data + bytes) (the block size of x86-64's and
// 4 KB-page aarch64's huge pages; on other page sizes a block-aligned range is still page-aligned).
void advise_huge_pages(void* data, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kBlock = uintptr_t{2} << 20;
  const uintptr_t start = reinterpret_cast<uintptr_t>(data);
  const uintptr_t begin = (start + kBlock - 1) & ~(kBlock - 1);
  const uintptr_t end = (start + bytes) & ~(kBlock - 1);
  if (end > begin) {
    // The return value is ignored on purpose: advice refused leaves ordinary pages.
    (void)madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
  }
#else
  (void)data;
  (void)bytes;
#endif
}

}  // namespace

at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor out = at::empty(sizes, options);
  if (out.is_cpu()) advise_huge_pages(out.data_ptr(), out.nbytes());
  return out;
}

}  // namespace roiops
