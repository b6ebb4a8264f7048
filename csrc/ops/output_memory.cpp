#include "output_memory.h"

#include <ATen/ATen.h>
#include <ATen/EmptyTensor.h>
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <cstdint>
#include <cstdlib>
#include <list>
#include <mutex>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace roiops {

#if defined(__linux__) && defined(MADV_HUGEPAGE)
namespace {

constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kDefaultCacheBytes = size_t{512} << 20;

// The bytes of freed mappings kept for reuse: ROIOPS_CPU_CACHE_MB (0: none), else 512 MB.
size_t cache_capacity() {
  const char* text = std::getenv("ROIOPS_CPU_CACHE_MB");
  if (text == nullptr || *text == '\0') return kDefaultCacheBytes;
  char* end = nullptr;
  const long long megabytes = std::strtoll(text, &end, 10);
  TORCH_CHECK_VALUE(*end == '\0' && megabytes >= 0,
                    "ROIOPS_CPU_CACHE_MB: expected a number of megabytes (0 or more), got '", text,
                    "'");
  return static_cast<size_t>(megabytes) << 20;
}

struct Mapping {
  void* data;
  size_t bytes;
};

// Freed mappings, most recently freed last, up to capacity bytes in all; the oldest are unmapped
// to make room. Their pages stay faulted in, so an output of the same size next call costs no
// page faults -- and no zeroing by the kernel, nor host faults on a VM that has reported the
// memory as free meanwhile.
class FreeMappings {
 public:
  // The smallest kept mapping of `bytes` to twice that, or {nullptr, 0} (a small request does
  // not take the mapping a large output will want next).
  Mapping take(size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto best = kept_.end();
    for (auto it = kept_.begin(); it != kept_.end(); ++it) {
      const bool fits = it->bytes >= bytes && it->bytes / 2 <= bytes;
      if (fits && (best == kept_.end() || it->bytes < best->bytes)) best = it;
    }
    if (best == kept_.end()) return {nullptr, 0};
    const Mapping m = *best;
    kept_.erase(best);
    held_ -= m.bytes;
    return m;
  }

  void give(const Mapping& m) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (m.bytes > capacity_) {
      munmap(m.data, m.bytes);
      return;
    }
    kept_.push_back(m);
    held_ += m.bytes;
    while (held_ > capacity_) {
      munmap(kept_.front().data, kept_.front().bytes);
      held_ -= kept_.front().bytes;
      kept_.pop_front();
    }
  }

  size_t release() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const Mapping& m : kept_) munmap(m.data, m.bytes);
    kept_.clear();
    const size_t released = held_;
    held_ = 0;
    return released;
  }

  size_t held() {
    std::lock_guard<std::mutex> lock(mutex_);
    return held_;
  }

 private:
  std::mutex mutex_;
  std::list<Mapping> kept_;
  size_t held_ = 0;
  const size_t capacity_ = cache_capacity();
};

// Never destroyed: tensors may be freed during the process's exit, after static destructors ran.
FreeMappings& free_mappings() {
  static FreeMappings* mappings = new FreeMappings();
  return *mappings;
}

// Allocates large buffers as mappings of their own, advised into huge pages; small ones as the
// CPU allocator does. A mapping of its own, not malloc's heap: the advice then stays with the
// buffer, instead of on a heap range that later holds small allocations -- where each 2 MB fault
// would bloat the process (a first version advised the heap, and a later plain torch.empty of the
// test suite landed in an advised range). A freed buffer goes to free_mappings().
class HugePageAllocator final : public c10::Allocator {
 public:
  static constexpr size_t kMinBytes = size_t{4} << 20;  // two 2 MB pages

  c10::DataPtr allocate(size_t bytes) override {
    if (bytes < kMinBytes) return c10::GetCPUAllocator()->allocate(bytes);
    const size_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
    Mapping m = free_mappings().take(rounded);
    if (m.data == nullptr) {
      void* data =
          mmap(nullptr, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (data == MAP_FAILED) {
        (void)free_mappings().release();  // what the cache holds may be what is missing
        data = mmap(nullptr, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (data == MAP_FAILED) return c10::GetCPUAllocator()->allocate(bytes);  // reports OOM
      }
      // The return value is ignored on purpose: advice refused leaves ordinary pages.
      (void)madvise(data, rounded, MADV_HUGEPAGE);
      m = {data, rounded};
    }
    return {m.data, new Mapping(m), &give_back, c10::Device(c10::DeviceType::CPU)};
  }

  void copy_data(void* dest, const void* src, size_t count) const override {
    default_copy_data(dest, src, count);
  }

 private:
  static void give_back(void* context) {
    const Mapping* m = static_cast<const Mapping*>(context);
    free_mappings().give(*m);
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

int64_t cached_output_bytes() { return static_cast<int64_t>(free_mappings().held()); }

int64_t release_cached_outputs() { return static_cast<int64_t>(free_mappings().release()); }
#else
at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  return at::empty(sizes, options);
}

int64_t cached_output_bytes() { return 0; }

int64_t release_cached_outputs() { return 0; }
#endif

}  // namespace roiops
