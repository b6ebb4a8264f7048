// Memory for the large CPU outputs and workspaces of the ops.
//
// A fresh CPU buffer is faulted in on its first write, a 4 KB page at a time; for the outputs of
// these ops (a 341 MB canvas of pasted masks, a 55 MB gradient map, a 50 MB pooled batch) the
// faults cost more than the kernel that fills them. On Linux, empty_output() maps a buffer of 4 MB
// or more on its own (mmap) and advises it into transparent huge pages (madvise(MADV_HUGEPAGE),
// honoured in the kernel's default "madvise" mode and in "always"), so that it faults 2 MB at a
// time; munmap ends both when the tensor is freed. (Such memory is not in malloc's statistics.)
// Measured on the project's 2-core CPU (2026-12-07): writing a fresh 341 MB buffer 100 -> 14 ms,
// a fresh 50 MB one 15 -> 2.3 ms. PyTorch's CPU allocator advises its own allocations only under
// THP_MEM_ALLOC_ENABLE=1. Advice only: where it is not taken (another OS, THP "never") nothing else
// changes; CUDA tensors are what at::empty gives. One cost, on VMs that report free memory to
// their host (the project's Firecracker machines): a huge page carved from a reported block faults
// in the host too, ~1 ms per MB -- worse than 4 KB pages (0.3 ms per MB) for memory idle for
// seconds, better for memory a loop frees and allocates again (README, 2026-12-07).
#pragma once

#include <ATen/core/Tensor.h>

namespace roiops {

// at::empty(sizes, options); a large CPU buffer is mapped on its own, advised into huge pages.
at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options);

}  // namespace roiops
