// Limits shared by the op layer (argument checks) and both backends (fixed-size kernel arguments).
#pragma once

namespace roiops {

// Feature levels per call (multi-scale RoIAlign, anchors). FPN pyramids have 4-6 (P2-P6); 8 leaves
// room and keeps the per-level tables that are passed by value to the CUDA kernels small.
constexpr int kMaxLevels = 8;

}  // namespace roiops
