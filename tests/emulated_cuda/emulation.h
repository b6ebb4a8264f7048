// The CUDA execution model on host threads, so that the kernels of csrc/cuda/ run -- their source
// unchanged -- on a machine without a GPU. Test code: the emulated build (tests/emulated_cuda/)
// defines ROIOPS_EMULATE_CUDA and puts this folder on the include path, where
// csrc/cuda/cuda_helpers.cuh finds this header; the package never includes it.
//
// A launch runs its blocks one after another; each block is blockDim host threads that share the
// kernel's __shared__ variables (function-local statics: one block at a time owns them) and take
// turns, one thread running at a time, from one __syncthreads to the next (BlockScheduler). The
// barrier is stricter than the hardware: every thread of the block must reach the same
// __syncthreads (same source line), and a thread may not return while others wait; a launch that
// breaks this, or makes no progress for a minute, raises with a message.
//
// What running here proves: indexing, bounds, tiling, work splitting and the barrier protocol of
// each kernel, on the inputs of the tests. What it cannot: races between blocks (blocks never
// overlap here), warp timing, and nvcc's code generation -- products are the host's here (no FMA
// contraction, which box_math::mul_exact also forbids on the device), and expf/logf are glibc's.
#pragma once

#include <c10/util/Exception.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

// The built-in variables, per host thread.
inline thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __syncthreads() ::roiops::emulation::sync_threads(__LINE__)

namespace roiops {
namespace emulation {

// Small on purpose: kernels that size their grid from these then stride over their work, so that
// the tests run the striding paths that a GPU takes only past 2^28 elements.
constexpr int kMultiprocessors = 2;
constexpr int kMaxGridBlocks = 3;

// Runs the threads of a block one at a time: each runs until its next __syncthreads or its return,
// then hands over to the next thread; when the last has arrived, the barrier opens and the first
// runs again. Even blocks go in thread order, odd blocks in reverse, so that a missing barrier
// between a shared-memory write and a read by another thread gives wrong results deterministically,
// whichever side of the reader the writer is.
class BlockScheduler {
 public:
  explicit BlockScheduler(int threads) : threads_(threads), wake_(threads) {}

  // Waits until thread t may start on the next block.
  void begin_block(int t) {
    std::unique_lock<std::mutex> lock(mutex_);
    wait_for_turn(lock, t, "the start of a block");
  }

  // __syncthreads at `line`, called by thread t.
  void sync(int t, int line) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (exited_ > 0) {
      fail("__syncthreads at line " + std::to_string(line) +
           " after some threads of the block returned from the kernel");
    } else if (arrived_ > 0 && line != line_) {
      fail("threads of one block wait at different __syncthreads (lines " + std::to_string(line_) +
           " and " + std::to_string(line) + ")");
    }
    line_ = line;
    if (++arrived_ == threads_) arrived_ = 0;  // the barrier opens
    pass_turn();
    wait_for_turn(lock, t, "__syncthreads at line " + std::to_string(line));
  }

  // The running thread has returned from the kernel for the current block.
  void finish_block() {
    std::unique_lock<std::mutex> lock(mutex_);
    if (arrived_ > 0) {
      fail("a thread returned from the kernel while others wait at __syncthreads (line " +
           std::to_string(line_) + ")");
    }
    if (++exited_ == threads_) {  // the block is done
      exited_ = 0;
      arrived_ = 0;
      reverse_ = !reverse_;
    }
    pass_turn();
  }

  std::string error() {
    std::lock_guard<std::mutex> lock(mutex_);
    return error_;
  }

 private:
  int thread_at(int position) const { return reverse_ ? threads_ - 1 - position : position; }

  void pass_turn() {
    position_ = (position_ + 1) % threads_;
    turn_ = thread_at(position_);
    wake_[turn_].notify_one();
  }

  void wait_for_turn(std::unique_lock<std::mutex>& lock, int t, const std::string& where) {
    const auto limit = std::chrono::minutes(1);
    if (!wake_[t].wait_for(lock, limit, [&] { return broken_ || turn_ == t; })) {
      fail("no progress for a minute at " + where);
    }
  }

  // Records the first error and lets every thread run freely to its end; the launch then raises.
  void fail(const std::string& what) {
    if (error_.empty()) error_ = what;
    broken_ = true;
    for (std::condition_variable& w : wake_) w.notify_all();
  }

  const int threads_;
  int position_ = 0;  // of the running thread in this block's order
  int turn_ = 0;      // the running thread
  bool reverse_ = false;
  int arrived_ = 0;  // threads waiting at the current __syncthreads
  int exited_ = 0;   // threads that returned from the kernel in this block
  int line_ = 0;
  bool broken_ = false;
  std::string error_;
  std::mutex mutex_;
  std::vector<std::condition_variable> wake_;  // one per thread: a turn wakes only its thread
};

inline thread_local BlockScheduler* current_block = nullptr;
inline thread_local int current_thread = 0;

inline void sync_threads(int line) { current_block->sync(current_thread, line); }

inline std::mutex& atomic_mutex() {
  static std::mutex m;
  return m;
}

// kernel<<<grid, block>>>: `body` is the kernel call, run by every thread of every block.
inline void launch(dim3 grid, dim3 block, const std::function<void()>& body) {
  const uint64_t threads = uint64_t(block.x) * block.y * block.z;
  TORCH_CHECK(threads >= 1 && threads <= 1024 && block.z <= 64, "emulated launch: invalid block (",
              block.x, ", ", block.y, ", ", block.z, ")");
  // The hardware's limits: grid.x < 2^31, grid.y and grid.z <= 65535.
  TORCH_CHECK(grid.x >= 1 && grid.x <= 0x7fffffffu && grid.y >= 1 && grid.z >= 1 &&
                  grid.y <= 65535 && grid.z <= 65535,
              "emulated launch: invalid grid (", grid.x, ", ", grid.y, ", ", grid.z, ")");
  BlockScheduler scheduler(static_cast<int>(threads));
  std::vector<std::thread> workers;
  workers.reserve(threads);
  for (unsigned t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      current_block = &scheduler;
      current_thread = static_cast<int>(t);
      threadIdx = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
      blockDim = block;
      gridDim = grid;
      for (unsigned z = 0; z < grid.z; ++z) {
        for (unsigned y = 0; y < grid.y; ++y) {
          for (unsigned x = 0; x < grid.x; ++x) {
            blockIdx = dim3(x, y, z);
            scheduler.begin_block(current_thread);
            body();
            scheduler.finish_block();
          }
        }
      }
      current_block = nullptr;
    });
  }
  for (std::thread& w : workers) w.join();
  const std::string error = scheduler.error();
  TORCH_CHECK(error.empty(), "emulated launch: ", error);
}

}  // namespace emulation
}  // namespace roiops

template <typename T>
inline T atomicAdd(T* address, T value) {
  std::lock_guard<std::mutex> lock(roiops::emulation::atomic_mutex());
  const T old = *address;
  *address = old + value;
  return old;
}
