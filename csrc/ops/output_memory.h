// Memory for the large CPU outputs and workspaces of the ops.
//
// A fresh CPU buffer is faulted in on its first write, a 4 KB page at a time; for the outputs of
// these ops (a 341 MB canvas of pasted masks, a 55 MB gradient map, a 50 MB pooled batch) the
// faults cost more than the kernel that fills them. On Linux, empty_output() maps a buffer of 4 MB
// or more on its own (mmap) and advises it into transparent huge pages (madvise(MADV_HUGEPAGE),
// honoured in the kernel's default "madvise" mode and in "always"), so that it faults 2 MB at a
// time. Measured on the project's 2-core CPU (2026-12-07): writing a fresh 341 MB buffer 100 ->
// 14 ms, a fresh 50 MB one 15 -> 2.3 ms. PyTorch's CPU allocator advises its own allocations only
// under THP_MEM_ALLOC_ENABLE=1. Advice only: where it is not taken (another OS, THP "never")
// nothing else changes; CUDA tensors are what at::empty gives.
//
// A freed output's mapping is kept (up to 512 MB in all, ROIOPS_CPU_CACHE_MB to change; the
// oldest unmapped first) and given to the next output of its size, as PyTorch's CUDA allocator
// keeps freed blocks: a loop that pools, pastes or backpropagates image after image then faults
// nothing in. On VMs that report free memory to their host (the project's Firecracker machines),
// memory freed for a second or two is handed back and faults in the host again, ~1 ms per MB:
// multi-scale box-head pooling + backward of 2 images (248 MB of outputs) interleaved with
// torchvision's took 450 ms fresh, 220 ms alone (2026-12-07). Such memory is not in malloc's
// statistics; release_cached_outputs() (roiops.release_cached_memory()) unmaps what is kept.
#pragma once

#include <ATen/core/Tensor.h>

namespace roiops {

// at::empty(sizes, options); a large CPU buffer is mapped on its own, advised into huge pages.
at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options);

// Bytes of freed outputs kept for reuse; unmapping them (returns their bytes).
int64_t cached_output_bytes();
int64_t release_cached_outputs();

}  // namespace roiops
