// Scratch memory a CPU kernel needs for the length of one call (RoIAlign's channels-last copy of
// the maps), kept by the calling thread from call to call.
//
// A fresh buffer pays its page faults on every call -- and on a VM that hands freed memory back to
// its host (free page reporting: the project's Firecracker machines report free 8 MB blocks) a host
// fault per page as well. Measured on the 2-core machine, 2026-12-07, multi-scale box-head pooling
// (P2-P5 of 2 images, a 182 MB copy) interleaved with torchvision's: the copy took 28 ms into
// memory the previous call had used and 200-220 ms, one call in three, into reported memory;
// the op's median 163 ms with a fresh buffer per call, 81 ms with this one.
//
// Up to kKeptWorkspaceBytes stay allocated until the thread exits (the channels-last maps of one
// 800 x 1333 image are 91 MB, of two 182 MB); a larger request gets a buffer of its own.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

#include "../ops/output_memory.h"

namespace roiops {
namespace cpu {

constexpr int64_t kKeptWorkspaceBytes = int64_t{512} << 20;

// `bytes` of CPU memory as a uint8 tensor, good until this thread asks again (so a kernel asks
// once per call, for all it needs).
inline at::Tensor workspace(int64_t bytes) {
  const auto options = at::TensorOptions(at::kByte);
  if (bytes > kKeptWorkspaceBytes) return empty_output({bytes}, options);
  thread_local at::Tensor kept;
  if (!kept.defined() || kept.numel() < bytes) {
    kept = at::Tensor();  // free the smaller buffer before allocating the larger
    kept = empty_output({bytes}, options);
  }
  return kept.narrow(0, 0, bytes);
}

}  // namespace cpu
}  // namespace roiops
