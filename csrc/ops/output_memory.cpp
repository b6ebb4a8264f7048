#include "output_memory.h"

#include <ATen/ATen.h>
#include <ATen/EmptyTensor.h>
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace roiops {

#if defined(__linux__) && defined(MADV_HUGEPAGE)
namespace {

// Allocates large buffers as mappings of their own, advised into huge pages; small ones as the
// CPU allocator does. A mapping of its own, not malloc's heap: the advice then ends with the
// buffer (munmap), instead of staying on a heap range that later holds small allocations -- where
// each 2 MB fault would bloat the process (a first version advised the heap, and a later plain
// torch.empty of the test suite landed in an advised range).
class HugePageAllocator final : public c10::Allocator {
 public:
  static constexpr size_t kMinBytes = size_t{4} << 20;  // two 2 MB pages

  c10::DataPtr allocate(size_t bytes) override {
    if (bytes < kMinBytes) return c10::GetCPUAllocator()->allocate(bytes);
    void* data = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (data == MAP_FAILED) return c10::GetCPUAllocator()->allocate(bytes);  // it reports OOM
    // The return value is ignored on purpose: advice refused leaves ordinary pages.
    (void)madvise(data, bytes, MADV_HUGEPAGE);
    return {data, new Mapping{data, bytes}, &unmap, c10::Device(c10::DeviceType::CPU)};
  }

  void copy_data(void* dest, const void* src, size_t count) const override {
    default_copy_data(dest, src, count);
  }

 private:
  struct Mapping {
    void* data;
    size_t bytes;
  };
  static void unmap(void* context) {
    const Mapping* m = static_cast<const Mapping*>(context);
    munmap(m->data, m->bytes);
    delete m;
  }
};

}  // namespace

at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  if (options.device().type() != c10::DeviceType::CPU || options.pinned_memory()) {
    return at::empty(sizes, options);
  }
  static HugePageAllocator allocator;
  return at::detail::empty_generic(sizes, &allocator, c10::DispatchKeySet(c10::DispatchKey::CPU),
                                   options.dtype().toScalarType(),
                                   options.memory_format_opt());
}
#else
at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  return at::empty(sizes, options);
}
#endif

}  // namespace roiops
