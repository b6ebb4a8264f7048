// Limits shared by the op layer (argument checks) and both backends (fixed-size kernel arguments).
#pragma once

#include <cstdint>

namespace roiops {

// Feature levels per call (multi-scale RoIAlign, anchors). FPN pyramids have 4-6 (P2-P6); 8 leaves
// room and keeps the per-level tables that are passed by value to the CUDA kernels small.
constexpr int kMaxLevels = 8;

// RoIAlign's arguments: pixel indices are int in the kernels (so feature maps stay below 2^30 per
// side, with room for the +1 of a bilinear neighbour), and an output cell's work must stay bounded.
constexpr int64_t kMaxMapSide = int64_t{1} << 30;  // feature map height and width: below this
constexpr int64_t kMaxPooledSide = 4096;           // output_size per side: at most this
constexpr int64_t kMaxSamplingRatio = 1024;        // samples per bin and axis: at most this

}  // namespace roiops
