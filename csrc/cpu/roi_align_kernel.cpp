// RoIAlign on the CPU: forward parallel over RoIs, backward parallel over channels.
//
// Per RoI, the four pixel offsets and weights of every (valid) sample are computed once and reused
// for all channels, as in torchvision. Both passes visit samples in torchvision's order, so results
// are bit-identical to torchvision's CPU kernel in float32/float64 -- the backward too, because a
// channel's gradient plane is owned by one thread that adds RoI after RoI in index order. With
// enough RoIs the forward reads a channels-last copy of the maps and pools every channel of a bin
// at once, in vectors (forward_channels_last).

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "../common/roi_align_math.h"
#include "../ops/bind_kernel.h"
#include "../ops/roi_align.h"
#include "roi_samples.h"
#include "streaming_stores.h"
#include "workspace.h"

namespace roiops {
namespace {

using namespace roi_align_math;
using cpu::RoISamples;
using cpu::SamplePoint;

// torchvision reads rois[k, 0] out of bounds when it is not a batch index; here it is an error.
// (A level index that names no map gives a zero row, as torchvision's pooler gives one.)
template <typename acc_t>
void check_batch_indices(const char* op, const acc_t* rois, int64_t num_rois, int64_t batch) {
  for (int64_t k = 0; k < num_rois; ++k) {
    const acc_t b = rois[5 * k];
    TORCH_CHECK_VALUE(is_batch_index(b, batch), op, ": rois[", k, ", 0] = ", b,
                      " is not a batch index of the input (batch size ", batch, ")");
  }
}

// RoIs per thread at least: a parallel region costs ~10 us to start and join, about one RoI of
// 7x7 bins and 256 channels; a call of a few RoIs runs on one thread, unsplit.
int64_t roi_grain(int64_t bins, int64_t channels) {
  constexpr int64_t kMinElementsPerThread = 1 << 16;  // output elements
  return std::max<int64_t>(1, kMinElementsPerThread / std::max<int64_t>(1, bins * channels));
}

// Visiting order of the forward pass: by level and image, then in bands of 32 feature rows swept
// left to right, so that RoIs that overlap are pooled one after the other and find their pixels --
// all C planes of them -- still in cache (box-head case, 2-core CPU: 259 -> 140-190 ms, noisy).
// Outputs are independent, so the order changes no result.
template <typename scalar_t, typename acc_t>
std::vector<int64_t> spatial_order(const FeaturePyramid<scalar_t, acc_t>& pyramid,
                                   const acc_t* rois, const int64_t* levels, int64_t num_rois) {
  constexpr double kBandRows = 32;
  auto finite = [](double v) { return v == v ? v : std::numeric_limits<double>::infinity(); };
  std::vector<std::tuple<int64_t, double, double, double>> keys(num_rois);
  for (int64_t k = 0; k < num_rois; ++k) {
    const acc_t* r = rois + 5 * k;
    const int64_t level = levels != nullptr ? levels[k] : 0;
    const bool pooled = is_level_index(level, pyramid.num_levels);
    const double scale = pooled ? static_cast<double>(pyramid.scale[level]) : 1.0;
    const double centre_y = (static_cast<double>(r[2]) + r[4]) / 2 * scale;
    const double centre_x = (static_cast<double>(r[1]) + r[3]) / 2 * scale;
    keys[k] = {level, finite(r[0]), std::floor(finite(centre_y / kBandRows)), finite(centre_x)};
  }
  std::vector<int64_t> order(num_rois);
  for (int64_t k = 0; k < num_rois; ++k) order[k] = k;
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return keys[a] < keys[b]; });
  return order;
}

// --- channels-last forward: every channel of a bin at once ----------------------------------------
// (The backward scatters channels-last only within a pass of 16 channels: scattering every channel
// into a channels-last map larger than the caches, and transposing the gradient back, measured
// slower than plane-wise passes: 1000 RoIs 183 against 133 ms, 100 RoIs of 14x14 135 against 76.)
// Per bin, every channel samples the same points with the same weights. With the map channels-last
// ([N, H, W, C] in memory), a sample's four corners are four contiguous runs of C values, and the
// per-channel sums are one loop over C that the compiler vectorizes: the same operations on every
// element in the same order as the per-channel loop (no contraction into FMAs: -ffp-contract=off),
// so the results are the same bits. The loop is compiled for AVX-512 and AVX2 besides the baseline,
// and the loader picks the one this CPU runs (GCC's target_clones; elsewhere the baseline only).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(ROIOPS_NO_CLONES)
#define ROIOPS_X86_CLONES 1
#define ROIOPS_VECTOR_CLONES __attribute__((target_clones("default", "avx2", "avx512f")))
#else
#define ROIOPS_VECTOR_CLONES
#endif

// acc[c] += w1 * p[o1 + c] + w2 * p[o2 + c] + w3 * p[o3 + c] + w4 * p[o4 + c], summed left to right
// (interpolate()'s order), for the points of one bin, c in [0, channels).
#define ROIOPS_ADD_SAMPLES(T)                                                                    \
  ROIOPS_VECTOR_CLONES void add_samples(T* __restrict acc, const T* __restrict map,              \
                                        const SamplePoint<T>* points, int64_t num_points,        \
                                        int64_t channels) {                                     \
    for (int64_t s = 0; s < num_points; ++s) {                                                   \
      const SamplePoint<T>& pt = points[s];                                                      \
      const T w1 = pt.weights.w1, w2 = pt.weights.w2, w3 = pt.weights.w3, w4 = pt.weights.w4;    \
      const T* __restrict v1 = map + pt.offset[0];                                               \
      const T* __restrict v2 = map + pt.offset[1];                                               \
      const T* __restrict v3 = map + pt.offset[2];                                               \
      const T* __restrict v4 = map + pt.offset[3];                                               \
      for (int64_t c = 0; c < channels; ++c) {                                                   \
        acc[c] += w1 * v1[c] + w2 * v2[c] + w3 * v3[c] + w4 * v4[c];                             \
      }                                                                                          \
    }                                                                                            \
  }
ROIOPS_ADD_SAMPLES(float)
ROIOPS_ADD_SAMPLES(double)
#undef ROIOPS_ADD_SAMPLES

// --- 16 x 16 tile transposes: the channels-last copy's inner step -----------------------------
// out[x * out_stride + c] = in[c * in_stride + x] for a tile of 16 x 16 values, widened to float
// (float: as it is; bfloat16: its bits shifted up, exactly c10::BFloat16's conversion) -- data
// movement only, so bits are unchanged. Written in GCC's portable vector types, one vector of W
// floats per row of a W x W block, W the widest the code's ISA has in registers (16 AVX-512, 8
// AVX2, 4 SSE2 / NEON): log2(W) rounds of two-source shuffles, each swapping the off-diagonal
// d x d blocks of every 2d x 2d block, transpose a block; the tile is (16 / W)^2 blocks. In the
// AVX-512 version 16 loads, 64 shuffles and 16 stores where the scalar loop moves 256 values one
// by one (and calls memcpy for each row). W must be native: GCC lowers a permutation of a vector
// wider than the ISA's registers value by value through the stack (the 16-wide code in the AVX2
// clone: ~1000 scalar moves a tile, 170 instructions now). On a 2-core AMD EPYC without AVX-512
// (2026-12-07) that changed little: the copy is bound by its memory traffic there (41-45% of
// the mask-head pooling either way; 26.5 -> 24.7 ms, within that machine's noise).
// `stream`: the rows are written past the caches (streaming_stores.h), which spares reading each
// destination line before writing it. Measured on a 2-core
// Intel Xeon (AVX-512, 2026-12-07), multi-scale mask-head pooling of 2 images, in one process:
// the copy of the 116 MB the RoIs can sample 30 ms with the scalar loop, 27 with this transpose,
// 12 with it streamed; the pooling that reads the copy back did not slow down (20-21 ms).
#if defined(__GNUC__) && !defined(__clang__)
#define ROIOPS_TILE_TRANSPOSE 1
template <int W>
struct TileVectors {
  typedef float Floats __attribute__((vector_size(4 * W)));
  typedef int32_t Lanes __attribute__((vector_size(4 * W)));
  // unaligned views of a row in memory
  typedef float FloatsRow __attribute__((vector_size(4 * W), aligned(4), may_alias));
  typedef uint16_t HalvesRow __attribute__((vector_size(2 * W), aligned(2), may_alias));
};
typedef float Floats4 __attribute__((vector_size(16)));

// A row of W values as floats, straight into a register (a copy through memory would cost a
// store-forwarding stall per row).
template <int W>
__attribute__((always_inline)) inline void load_row(const float* in,
                                                    typename TileVectors<W>::Floats& row) {
  row = *reinterpret_cast<const typename TileVectors<W>::FloatsRow*>(in);
}
template <int W>
__attribute__((always_inline)) inline void load_row(const c10::BFloat16* in,
                                                    typename TileVectors<W>::Floats& row) {
  const auto bits = *reinterpret_cast<const typename TileVectors<W>::HalvesRow*>(in);
  row = reinterpret_cast<typename TileVectors<W>::Floats>(
      __builtin_convertvector(bits, typename TileVectors<W>::Lanes) << 16);
}

// The shuffle of round d that makes row r (first) or row r + d (second) of the pair: the lanes
// with bit d of row r trade places with the lanes without it of row r + d (b's lanes are W + i).
template <int W, int D, bool First, typename Lanes = std::make_integer_sequence<int, W>>
struct SwapLanes;
template <int W, int D, bool First, int... I>
struct SwapLanes<W, D, First, std::integer_sequence<int, I...>> {
  static constexpr typename TileVectors<W>::Lanes value{
      (First ? ((I & D) ? W + I - D : I) : ((I & D) ? W + I : I + D))...};
};

template <int W, int D>
__attribute__((always_inline)) inline void swap_blocks(typename TileVectors<W>::Floats* m) {
  constexpr auto first = SwapLanes<W, D, true>::value;
  constexpr auto second = SwapLanes<W, D, false>::value;
  for (int r = 0; r < W; ++r) {
    if (r & D) continue;
    const auto a = m[r], b = m[r + D];
    m[r] = __builtin_shuffle(a, b, first);
    m[r + D] = __builtin_shuffle(a, b, second);
  }
}

template <int W, typename scalar_t>
__attribute__((always_inline)) inline void transpose_block(float* __restrict out,
                                                           int64_t out_stride,
                                                           const scalar_t* __restrict in,
                                                           int64_t in_stride, bool stream) {
  typename TileVectors<W>::Floats m[W];
#pragma GCC unroll 16
  for (int c = 0; c < W; ++c) load_row<W>(in + c * in_stride, m[c]);
  swap_blocks<W, 1>(m);
  swap_blocks<W, 2>(m);
  if constexpr (W >= 8) swap_blocks<W, 4>(m);
  if constexpr (W >= 16) swap_blocks<W, 8>(m);
  for (int x = 0; x < W; ++x) {
    float* row = out + x * out_stride;
#ifdef ROIOPS_STREAMING_STORES
    if (stream) {  // row 16-byte aligned (copy_channels_last's condition)
      for (int q = 0; q < W / 4; ++q) {
        Floats4 quarter;
        std::memcpy(&quarter, reinterpret_cast<const char*>(&m[x]) + q * 16, sizeof(quarter));
        _mm_stream_ps(row + 4 * q, quarter);
      }
      continue;
    }
#endif
    std::memcpy(row, &m[x], sizeof(m[x]));
  }
}

template <int W, typename scalar_t>
__attribute__((always_inline)) inline void transpose_tile(float* out, int64_t out_stride,
                                                          const scalar_t* in, int64_t in_stride,
                                                          bool stream) {
  static_assert(W == 4 || W == 8 || W == 16);
  for (int bc = 0; bc < 16; bc += W) {
    for (int bx = 0; bx < 16; bx += W) {
      transpose_block<W>(out + bx * out_stride + bc, out_stride, in + bc * in_stride + bx,
                         in_stride, stream);
    }
  }
}

// transpose_16x16 for float and bfloat16 sources, one version per ISA (GCC's function
// multiversioning: the loader picks the one this CPU runs), each with its own W.
#define ROIOPS_TRANSPOSE_16X16(attributes, width)                                              \
  attributes void transpose_16x16(float* out, int64_t out_stride, const float* in,           \
                                  int64_t in_stride, bool stream) {                          \
    transpose_tile<width>(out, out_stride, in, in_stride, stream);                           \
  }                                                                                          \
  attributes void transpose_16x16(float* out, int64_t out_stride, const c10::BFloat16* in,   \
                                  int64_t in_stride, bool stream) {                          \
    transpose_tile<width>(out, out_stride, in, in_stride, stream);                           \
  }
#ifdef ROIOPS_X86_CLONES
ROIOPS_TRANSPOSE_16X16(__attribute__((target("default"))), 4)
ROIOPS_TRANSPOSE_16X16(__attribute__((target("avx2"))), 8)
ROIOPS_TRANSPOSE_16X16(__attribute__((target("avx512f"))), 16)
#else
ROIOPS_TRANSPOSE_16X16(, 4)
#endif
#undef ROIOPS_TRANSPOSE_16X16
#endif

// Whether a call pools channels-last: a map already in that layout, or enough work to pay for
// copying it there. Measured on the 2-core CPU (P2 of 256 x 200 x 336, 2026-12-07): the copy costs
// 7-9 ms (copy_channels_last); pooling 1000 RoIs of 7x7 bins costs 93 ms plane-wise, 20 ms
// channels-last; 100 RoIs of 14x14 bins 34 and 8 ms, 17 with the copy. The break-even is near
// 2 taps (bins x 16) per pixel of the maps. Vectors need channels.
bool pools_channels_last(const RoIAlignForwardArgs& a, int64_t bins) {
  if (a.features[0].size(1) < 8) return false;
  bool channels_last = true;
  int64_t pixels = 0;
  for (const at::Tensor& f : a.features) {
    channels_last = channels_last && f.is_contiguous(at::MemoryFormat::ChannelsLast);
    pixels += f.size(0) * f.size(2) * f.size(3);
  }
  return channels_last || a.rois.size(0) * bins * 16 >= 2 * pixels;
}

// The runs of kBlock pixels of each map row that the RoIs' samples may read, per image:
// touched[level][(n * height + y) * blocks_w + x / kBlock]. The channels-last copy skips the
// others (their workspace bytes are whatever an earlier call left). Conservative: a RoI marks its
// extent on the map widened by 2 pixels, which holds every bilinear corner its samples read (a
// sample lies within the extent, up to rounding; its corners are the pixels floor(y) and
// floor(y) + 1, clamped into the map); a RoI with non-finite or huge coordinates marks the whole
// map. Multi-scale mask-head pooling of 2 images (bench case) marks 116 of the maps' 183 MB
// (blocks of 16 x 16 pixels would mark 142 MB: small RoIs on P2 are a few pixels high).
constexpr int64_t kBlock = 16;  // the copy's tile width

struct MapBlocks {
  std::vector<std::vector<uint8_t>> touched;  // per level
};

template <typename acc_t>
MapBlocks touched_blocks(const RoIAlignForwardArgs& a, const acc_t* rois, const int64_t* levels) {
  MapBlocks m;
  const int64_t num_levels = static_cast<int64_t>(a.features.size());
  for (const at::Tensor& f : a.features) {
    const int64_t blocks_w = (f.size(3) + kBlock - 1) / kBlock;
    m.touched.emplace_back(f.size(0) * f.size(2) * blocks_w, uint8_t{0});
  }
  constexpr double kHuge = double{1 << 20};  // beyond it, float rounding exceeds the margin
  // Pixel range [first, last] of one axis that samples spaced `bin` from `start` may read.
  auto extent = [&](double start, double bin, int64_t pooled, int64_t size, int64_t* first,
                    int64_t* last) {
    const double end = start + bin * static_cast<double>(pooled);
    const double lo = std::min(start, end), hi = std::max(start, end);
    if (!(lo > -kHuge && hi < kHuge)) {  // NaN too
      *first = 0;
      *last = size - 1;
      return;
    }
    *first = std::max<int64_t>(0, static_cast<int64_t>(std::floor(lo)) - 2);
    *last = std::min<int64_t>(size - 1, static_cast<int64_t>(std::floor(hi)) + 2);
  };
  for (int64_t k = 0; k < a.rois.size(0); ++k) {
    const int64_t l = levels != nullptr ? levels[k] : 0;
    if (!is_level_index(l, static_cast<int>(num_levels))) continue;
    const acc_t* r = rois + 5 * k;
    const RoIGeometry<acc_t> g = roi_geometry(
        r[1], r[2], r[3], r[4], static_cast<acc_t>(a.spatial_scales[l]),
        static_cast<int>(a.pooled_h), static_cast<int>(a.pooled_w),
        static_cast<int>(a.sampling_ratio), a.aligned);
    const int64_t height = a.features[l].size(2), width = a.features[l].size(3);
    const int64_t blocks_w = (width + kBlock - 1) / kBlock;
    int64_t y0, y1, x0, x1;
    extent(g.start_h, g.bin_h, a.pooled_h, height, &y0, &y1);
    extent(g.start_w, g.bin_w, a.pooled_w, width, &x0, &x1);
    if (y0 > y1 || x0 > x1) continue;
    uint8_t* rows = m.touched[l].data() + static_cast<int64_t>(r[0]) * height * blocks_w;
    for (int64_t y = y0; y <= y1; ++y) {
      std::fill(rows + y * blocks_w + x0 / kBlock, rows + y * blocks_w + x1 / kBlock + 1,
                uint8_t{1});
    }
  }
  return m;
}

// Copies map f ([N, C, H, W], any strides) into nhwc ([N, H, W, C] of acc_t), converting on the
// way, the runs of pixels `touched` marks (touched_blocks; nullptr: all). Each pixel row is
// transposed in tiles of 16 channels x 16 pixels: a cache line read from each of 16 planes, a
// cache line written per pixel -- by transpose_16x16 where it applies (float or bfloat16 into
// float, a whole tile, pixels adjacent), else value by value; a copy larger than the caches with
// streaming stores. For P2 (256 x 200 x 336, 69 MB) on the 2-core AMD CPU, 2026-12-07: ATen's
// contiguous(ChannelsLast) 26 ms (two thirds of it page faults), its permuted copy into fresh huge
// pages 10.7 ms, the value-by-value loop 9 ms (into the workspace: 7).
template <typename scalar_t, typename acc_t>
void copy_channels_last(const at::Tensor& f, at::Tensor& nhwc, const uint8_t* touched) {
  const int64_t height = f.size(2), width = f.size(3), channels = f.size(1);
  const scalar_t* src = f.data_ptr<scalar_t>();
  acc_t* dst = nhwc.data_ptr<acc_t>();
  const int64_t stride_n = f.stride(0), stride_c = f.stride(1), stride_h = f.stride(2),
                stride_w = f.stride(3);
  constexpr int64_t kTile = kBlock;  // channels x pixels: a cache line of floats either way
  const int64_t blocks_w = (width + kBlock - 1) / kBlock;
#ifdef ROIOPS_TILE_TRANSPOSE
  constexpr bool kTransposable =
      std::is_same_v<acc_t, float> &&
      (std::is_same_v<scalar_t, float> || std::is_same_v<scalar_t, c10::BFloat16>);
  const bool whole_tiles = kTransposable && stride_w == 1;
  // Every tile row a whole cache line (the copy starts on a 64-byte boundary).
  const bool stream = whole_tiles && channels % kTile == 0 &&
                      reinterpret_cast<uintptr_t>(dst) % 64 == 0 &&
                      nhwc.numel() * static_cast<int64_t>(sizeof(acc_t)) >= cpu::kStreamingBytes;
#endif
  at::parallel_for(0, f.size(0) * height, 1, [&](int64_t begin, int64_t end) {
    acc_t tile[kTile][kTile];
    for (int64_t row = begin; row < end; ++row) {
      const scalar_t* in = src + (row / height) * stride_n + (row % height) * stride_h;
      acc_t* out = dst + row * width * channels;
      const uint8_t* row_blocks = touched != nullptr ? touched + row * blocks_w : nullptr;
      for (int64_t c0 = 0; c0 < channels; c0 += kTile) {
        const int64_t nc = std::min(kTile, channels - c0);
        for (int64_t x0 = 0; x0 < width; x0 += kTile) {
          if (row_blocks != nullptr && !row_blocks[x0 / kBlock]) continue;
          const int64_t nx = std::min(kTile, width - x0);
#ifdef ROIOPS_TILE_TRANSPOSE
          if constexpr (kTransposable) {
            if (whole_tiles && nc == kTile && nx == kTile) {
              transpose_16x16(out + x0 * channels + c0, channels, in + c0 * stride_c + x0,
                              stride_c, stream);
              continue;
            }
          }
#endif
          for (int64_t c = 0; c < nc; ++c) {
            const scalar_t* run = in + (c0 + c) * stride_c + x0 * stride_w;
            for (int64_t x = 0; x < nx; ++x) tile[c][x] = static_cast<acc_t>(run[x * stride_w]);
          }
          for (int64_t x = 0; x < nx; ++x) {
            acc_t* pixel = out + (x0 + x) * channels + c0;
            for (int64_t c = 0; c < nc; ++c) pixel[c] = tile[c][x];
          }
        }
      }
    }
#ifdef ROIOPS_TILE_TRANSPOSE
    if (stream) cpu::streaming_fence();  // before the threads join and the pooling reads the copy
#endif
  });
}

// The maps as acc_t, channels-last ([N, C, H, W] views): a map that is so already as it is, the
// others copied into this thread's workspace (workspace.h), the runs `blocks` marks of them.
// Each copy starts on a 64-byte boundary.
template <typename scalar_t, typename acc_t>
std::vector<at::Tensor> channels_last_maps(const std::vector<at::Tensor>& features,
                                           const MapBlocks& blocks) {
  const auto acc_type = c10::CppTypeToScalarType<acc_t>::value;
  auto is_ready = [&](const at::Tensor& f) {
    return f.scalar_type() == acc_type && f.is_contiguous(at::MemoryFormat::ChannelsLast);
  };
  auto aligned = [](int64_t bytes) { return (bytes + 63) / 64 * 64; };
  int64_t total = 0;
  for (const at::Tensor& f : features) {
    if (!is_ready(f)) total += aligned(f.numel() * static_cast<int64_t>(sizeof(acc_t)));
  }
  const at::Tensor scratch = total > 0 ? cpu::workspace(total) : at::Tensor();
  std::vector<at::Tensor> maps;
  int64_t offset = 0;
  for (size_t l = 0; l < features.size(); ++l) {
    const at::Tensor& f = features[l];
    if (is_ready(f)) {
      maps.push_back(f);
      continue;
    }
    const int64_t bytes = f.numel() * static_cast<int64_t>(sizeof(acc_t));
    at::Tensor nhwc = scratch.narrow(0, offset, bytes)
                          .view(acc_type)
                          .view({f.size(0), f.size(2), f.size(3), f.size(1)});
    offset += aligned(bytes);
    copy_channels_last<scalar_t, acc_t>(f, nhwc, blocks.touched[l].data());
    maps.push_back(nhwc.permute({0, 3, 1, 2}));
  }
  return maps;
}

template <typename scalar_t>
void forward_channels_last(const RoIAlignForwardArgs& a, at::Tensor& output) {
  using acc_t = at::opmath_type<scalar_t>;
  // The maps as acc_t, channels-last: the kernel then reads the values the plane-wise loop
  // converts one by one.
  const int64_t num_rois = a.rois.size(0);
  const acc_t* rois = a.rois.data_ptr<acc_t>();
  const int64_t* levels = a.levels.defined() ? a.levels.data_ptr<int64_t>() : nullptr;
  check_batch_indices(a.op, rois, num_rois, a.features[0].size(0));
  const std::vector<at::Tensor> maps =
      channels_last_maps<scalar_t, acc_t>(a.features, touched_blocks(a, rois, levels));
  const auto pyramid = make_pyramid<const acc_t, acc_t>(maps, a.spatial_scales);
  const int64_t channels = pyramid.channels;
  const int64_t bins = a.pooled_h * a.pooled_w;
  scalar_t* out = output.data_ptr<scalar_t>();
  const std::vector<int64_t> order = spatial_order(pyramid, rois, levels, num_rois);
  at::parallel_for(0, num_rois, roi_grain(bins, channels), [&](int64_t begin, int64_t end) {
    RoISamples<acc_t> samples;
    std::vector<acc_t> sums(bins * channels);  // [bin][channel] of one RoI
    for (int64_t idx = begin; idx < end; ++idx) {
      const int64_t k = order[idx];
      scalar_t* out_k = out + k * channels * bins;
      if (!samples.load(pyramid, rois, levels, k, a.pooled_h, a.pooled_w, a.sampling_ratio,
                        a.aligned)) {
        std::fill(out_k, out_k + channels * bins, scalar_t(0));
        continue;
      }
      const int level = samples.level;
      const acc_t* image = pyramid.data[level] + pyramid.plane_offset(level, samples.batch_index, 0);
      std::fill(sums.begin(), sums.end(), acc_t(0));
      for (int64_t bin = 0; bin < bins; ++bin) {
        const int64_t first = samples.bin_begin[bin];
        add_samples(sums.data() + bin * channels, image, samples.points.data() + first,
                    samples.bin_begin[bin + 1] - first, channels);
      }
      const acc_t count = forward_count(samples.geometry);
      for (int64_t c = 0; c < channels; ++c) {  // out[k] is [C, bins]
        for (int64_t bin = 0; bin < bins; ++bin) {
          out_k[c * bins + bin] = static_cast<scalar_t>(sums[bin * channels + c] / count);
        }
      }
    }
  });
}

void forward_cpu(const RoIAlignForwardArgs& a, at::Tensor& output) {
  const int64_t bins = a.pooled_h * a.pooled_w;
  if (pools_channels_last(a, bins)) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, a.features[0].scalar_type(),
                                    "roi_align_forward_cpu",
                                    [&] { forward_channels_last<scalar_t>(a, output); });
    return;
  }
  std::vector<at::Tensor> features;  // the plane-wise loop reads planes; other layouts are copied
  for (const at::Tensor& f : a.features) features.push_back(f.contiguous());
  const at::Tensor& first = features[0];
  const int64_t num_rois = a.rois.size(0);
  const int64_t channels = first.size(1);

  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, first.scalar_type(), "roi_align_forward_cpu", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        const auto pyramid = make_pyramid<const scalar_t, acc_t>(features, a.spatial_scales);
        const acc_t* rois = a.rois.data_ptr<acc_t>();
        const int64_t* levels = a.levels.defined() ? a.levels.data_ptr<int64_t>() : nullptr;
        check_batch_indices(a.op, rois, num_rois, pyramid.batch);
        scalar_t* out = output.data_ptr<scalar_t>();
        const std::vector<int64_t> order = spatial_order(pyramid, rois, levels, num_rois);

        at::parallel_for(0, num_rois, roi_grain(bins, channels), [&](int64_t begin, int64_t end) {
          RoISamples<acc_t> samples;
          for (int64_t idx = begin; idx < end; ++idx) {
            const int64_t k = order[idx];
            if (!samples.load(pyramid, rois, levels, k, a.pooled_h, a.pooled_w, a.sampling_ratio,
                              a.aligned)) {
              std::fill(out + k * channels * bins, out + (k + 1) * channels * bins, scalar_t(0));
              continue;
            }
            const int level = samples.level;
            const acc_t count = forward_count(samples.geometry);
            for (int64_t c = 0; c < channels; ++c) {
              const scalar_t* plane =
                  pyramid.data[level] + pyramid.plane_offset(level, samples.batch_index, c);
              scalar_t* out_c = out + (k * channels + c) * bins;
              for (int64_t bin = 0; bin < bins; ++bin) {
                acc_t sum = 0;
                for (int64_t s = samples.bin_begin[bin]; s < samples.bin_begin[bin + 1]; ++s) {
                  const SamplePoint<acc_t>& pt = samples.points[s];
                  sum += interpolate(pt.weights, static_cast<acc_t>(plane[pt.offset[0]]),
                                     static_cast<acc_t>(plane[pt.offset[1]]),
                                     static_cast<acc_t>(plane[pt.offset[2]]),
                                     static_cast<acc_t>(plane[pt.offset[3]]));
                }
                out_c[bin] = static_cast<scalar_t>(sum / count);
              }
            }
          }
        });
      });
}

// Backward: each thread owns a range of channels and adds RoI after RoI in index order, which is
// torchvision's summation order per gradient plane (bit-identical sums). RoIs are scattered a
// pass of 16 channels at a time; the samples of a batch of RoIs are built once and shared by all
// threads. Per RoI and pass, the values to add are computed first for the pass's channels at
// once, in vectors (corner_values), then added corner by corner into a channels-last buffer of
// the pass's 16 channels ([pixel][16], at most kBackwardBufferBytes a thread), where a
// corner's adds are one cache line instead of 16 lines a plane apart; the buffer is moved into the
// planes at the end of the pass (and out of them first when an earlier batch of RoIs added to
// them). Box-head case (1000 RoIs of 7x7 on P2, 2-core CPU, 2026-12-07): 8-channel passes with a
// scalar divide per add 95 ms, 16-channel passes with vector values 76 ms -- 32 gained nothing
// more; forward + backward with the channels-last buffer 71 against 106 ms adding into the planes
// (in one process, alternating).
constexpr int64_t kBackwardChannelsPerPass = 16;
constexpr int64_t kBackwardPointBudget = int64_t{1} << 20;  // sample points per batch of RoIs
// A thread's channels-last buffer: the maps of a batch are added to in groups that fit it (P2 of
// an 800 x 1344 image is 4.3 MB), so that memory does not grow with the batch size x threads.
constexpr int64_t kBackwardBufferBytes = int64_t{8} << 20;

// Moves 16 pixels x 16 channels between a pass buffer ([pixel][16]) and the planes (16 planes
// plane_stride apart), by transpose_16x16 where it applies; false: the caller moves them.
template <typename acc_t>
bool move_pass_tile(acc_t*, acc_t*, int64_t, bool) {
  return false;
}
#ifdef ROIOPS_TILE_TRANSPOSE
template <>
bool move_pass_tile(float* buffer, float* planes, int64_t plane_stride, bool into_buffer) {
  if (into_buffer) {
    transpose_16x16(buffer, kBackwardChannelsPerPass, planes, plane_stride, false);
  } else {
    transpose_16x16(planes, plane_stride, buffer, kBackwardChannelsPerPass, false);
  }
  return true;
}
#endif

// values[(p * 4 + corner) * n + c] = grad_by_bin[bin(p) * n + c] * w_corner(p) / divisor for the
// points p of one RoI and its channels c in [0, n): torchvision's expression, left to right. When
// the divisor (backward_count) is a power of two (always at a sampling ratio of 1, 2 or 4) the
// division is a multiply by the reciprocal: both round the same exact quotient, so the bits are
// the same, and a vector divide costs several multiplies.
#define ROIOPS_CORNER_VALUES(T)                                                                  \
  ROIOPS_VECTOR_CLONES void corner_values(T* __restrict values, const T* __restrict grad_by_bin, \
                                          const SamplePoint<T>* points, const int64_t* bin_begin, \
                                          int64_t bins, T divisor, int64_t n) {                  \
    int exponent;                                                                                \
    const bool power_of_two = divisor > 0 && std::frexp(divisor, &exponent) == T(0.5);           \
    const T reciprocal = T(1) / divisor;                                                         \
    for (int64_t bin = 0; bin < bins; ++bin) {                                                   \
      const T* __restrict g = grad_by_bin + bin * n;                                             \
      for (int64_t p = bin_begin[bin]; p < bin_begin[bin + 1]; ++p) {                            \
        const T w[4] = {points[p].weights.w1, points[p].weights.w2, points[p].weights.w3,        \
                        points[p].weights.w4};                                                   \
        for (int corner = 0; corner < 4; ++corner) {                                             \
          T* __restrict v = values + (p * 4 + corner) * n;                                       \
          if (power_of_two) {                                                                    \
            for (int64_t c = 0; c < n; ++c) v[c] = g[c] * w[corner] * reciprocal;                \
          } else {                                                                               \
            for (int64_t c = 0; c < n; ++c) v[c] = g[c] * w[corner] / divisor;                   \
          }                                                                                      \
        }                                                                                        \
      }                                                                                          \
    }                                                                                            \
  }
ROIOPS_CORNER_VALUES(float)
ROIOPS_CORNER_VALUES(double)
#undef ROIOPS_CORNER_VALUES

void backward_cpu(const RoIAlignBackwardArgs& a, std::vector<at::Tensor>& grads) {
  const int64_t num_rois = a.rois.size(0);
  const int64_t bins = a.pooled_h * a.pooled_w;
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, a.grad.scalar_type(), "roi_align_backward_cpu", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        const auto pyramid = make_pyramid<acc_t, acc_t>(grads, a.spatial_scales);
        const acc_t* rois = a.rois.data_ptr<acc_t>();
        const int64_t* levels = a.levels.defined() ? a.levels.data_ptr<int64_t>() : nullptr;
        check_batch_indices(a.op, rois, num_rois, pyramid.batch);
        const scalar_t* grad = a.grad.data_ptr<scalar_t>();

        // Sample offsets index the pixels of a contiguous map (run_backward allocates them so).
        for (int l = 0; l < pyramid.num_levels; ++l) {
          TORCH_INTERNAL_ASSERT(pyramid.stride_w[l] == 1 &&
                                pyramid.stride_h[l] == pyramid.width[l]);
        }
        std::vector<RoISamples<acc_t>> batch;
        std::vector<int64_t> batch_rois;  // RoI index of each loaded entry, ascending
        bool first_batch = true;  // the maps are still zero (run_backward)
        for (int64_t next = 0; next < num_rois;) {
          // Load RoIs in order until the batch holds kBackwardPointBudget points (at least one
          // RoI).
          batch_rois.clear();
          int64_t points = 0;
          while (next < num_rois && (batch_rois.empty() || points < kBackwardPointBudget)) {
            if (batch.size() <= batch_rois.size()) batch.emplace_back();
            RoISamples<acc_t>& s = batch[batch_rois.size()];
            if (s.load(pyramid, rois, levels, next, a.pooled_h, a.pooled_w, a.sampling_ratio,
                       a.aligned)) {
              batch_rois.push_back(next);
              points += static_cast<int64_t>(s.points.size());
            }
            ++next;
          }
          // The (level, image) maps this batch adds to, in groups whose channels-last buffer
          // fits kBackwardBufferBytes (a map larger than that is a group of its own), and where
          // each map's pixels start in its group's buffer.
          const int64_t num_maps = pyramid.num_levels * pyramid.batch;
          auto map_of = [&](const RoISamples<acc_t>& s) {
            return s.level * pyramid.batch + s.batch_index;
          };
          std::vector<uint8_t> used(num_maps, 0);
          for (size_t i = 0; i < batch_rois.size(); ++i) used[map_of(batch[i])] = 1;
          constexpr int64_t kPixelBytes = kBackwardChannelsPerPass * sizeof(acc_t);
          std::vector<int64_t> group_of(num_maps, -1), first_pixel(num_maps, 0),
              num_pixels(num_maps, 0);
          int64_t num_groups = 0, group_pixels = 0, buffer_pixels = 0;
          for (int64_t m = 0; m < num_maps; ++m) {
            if (!used[m]) continue;
            const int l = static_cast<int>(m / pyramid.batch);
            num_pixels[m] = int64_t{pyramid.height[l]} * pyramid.width[l];
            if (num_groups == 0 || (group_pixels + num_pixels[m]) * kPixelBytes >
                                       kBackwardBufferBytes) {
              ++num_groups;
              group_pixels = 0;
            }
            group_of[m] = num_groups - 1;
            first_pixel[m] = group_pixels;
            group_pixels += num_pixels[m];
            buffer_pixels = std::max(buffer_pixels, group_pixels);
          }
          const bool planes_are_zero = first_batch;  // the buffer starts at zero, not read in
          first_batch = false;
          at::parallel_for(
              0, a.channels, kBackwardChannelsPerPass, [&](int64_t c_begin, int64_t c_end) {
                std::vector<acc_t> grad_by_bin(bins * kBackwardChannelsPerPass);
                std::vector<acc_t> values;
                // From the kept outputs (output_memory.h): bounded for all threads together.
                const at::Tensor scratch =
                    empty_output({buffer_pixels * kPixelBytes}, at::TensorOptions(at::kByte));
                acc_t* buffer = static_cast<acc_t*>(scratch.data_ptr());
                // Moves the pass's n planes of group g's maps into the buffer ([pixel][16]) or
                // back, a run of 16 pixels at a time.
                auto transpose = [&](int64_t g, int64_t c0, int64_t n, bool into_buffer) {
                  for (int64_t m = 0; m < num_maps; ++m) {
                    if (group_of[m] != g) continue;
                    const int l = static_cast<int>(m / pyramid.batch);
                    acc_t* cl = buffer + first_pixel[m] * kBackwardChannelsPerPass;
                    acc_t* planes =
                        pyramid.data[l] + pyramid.plane_offset(l, m % pyramid.batch, c0);
                    const int64_t stride_c = pyramid.stride_c[l];
                    const int64_t count = num_pixels[m];
                    if (into_buffer && planes_are_zero) {
                      std::fill(cl, cl + count * kBackwardChannelsPerPass, acc_t(0));
                      continue;
                    }
                    for (int64_t i0 = 0; i0 < count; i0 += 16) {
                      const int64_t run = std::min<int64_t>(16, count - i0);
                      if (run == 16 && n == kBackwardChannelsPerPass &&
                          move_pass_tile(cl + i0 * kBackwardChannelsPerPass, planes + i0,
                                         stride_c, into_buffer)) {
                        continue;
                      }
                      for (int64_t c = 0; c < n; ++c) {
                        acc_t* plane = planes + c * stride_c + i0;
                        acc_t* column = cl + i0 * kBackwardChannelsPerPass + c;
                        for (int64_t j = 0; j < run; ++j) {
                          if (into_buffer) {
                            column[j * kBackwardChannelsPerPass] = plane[j];
                          } else {
                            plane[j] = column[j * kBackwardChannelsPerPass];
                          }
                        }
                      }
                    }
                  }
                };
                for (int64_t c0 = c_begin; c0 < c_end; c0 += kBackwardChannelsPerPass) {
                  const int64_t n = std::min(kBackwardChannelsPerPass, c_end - c0);
                  for (int64_t g = 0; g < num_groups; ++g) {
                    transpose(g, c0, n, true);
                    for (size_t i = 0; i < batch_rois.size(); ++i) {
                      const RoISamples<acc_t>& samples = batch[i];
                      const int64_t num_points = static_cast<int64_t>(samples.points.size());
                      if (num_points == 0 || group_of[map_of(samples)] != g) continue;
                      const int64_t k = batch_rois[i];
                      const scalar_t* grad_k = grad + (k * a.channels + c0) * bins;  // [n, bins]
                      for (int64_t c = 0; c < n; ++c) {
                        for (int64_t bin = 0; bin < bins; ++bin) {
                          grad_by_bin[bin * n + c] = static_cast<acc_t>(grad_k[c * bins + bin]);
                        }
                      }
                      values.resize(num_points * 4 * n);
                      corner_values(values.data(), grad_by_bin.data(), samples.points.data(),
                                    samples.bin_begin.data(), bins,
                                    backward_count(samples.geometry), n);
                      // Corner by corner, into the pass's n channels of the corner's pixel: one
                      // cache line (the planes themselves: n lines a plane apart), and adds to
                      // one channel keep torchvision's order.
                      acc_t* pixels =
                          buffer + first_pixel[map_of(samples)] * kBackwardChannelsPerPass;
                      const acc_t* v = values.data();
                      for (int64_t p = 0; p < num_points; ++p) {
                        for (int corner = 0; corner < 4; ++corner, v += n) {
                          acc_t* pixel =
                              pixels + samples.points[p].offset[corner] * kBackwardChannelsPerPass;
                          for (int64_t c = 0; c < n; ++c) pixel[c] += v[c];
                        }
                      }
                    }
                    transpose(g, c0, n, false);
                  }
                }
              });
        }
      });
}

}  // namespace

TORCH_LIBRARY_IMPL(roiops, CPU, m) { register_roi_align_kernels<&forward_cpu, &backward_cpu>(m); }

}  // namespace roiops
