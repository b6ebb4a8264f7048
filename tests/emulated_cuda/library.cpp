// The test-only library roiops_emulated_cuda: roiops' schemas, with the CUDA kernels of csrc/cuda/
// registered for CPU tensors and run on host threads (emulation.h, beside this file). Built by
// tests/emulated_cuda/__init__.py.
//
// It also holds three small kernels that check the emulator itself: one that uses shared memory and
// barriers correctly (its result must be right) and two that break the barrier rules (their launch
// must fail). A green emulated run of the real kernels means something only if both hold.

#include <ATen/ATen.h>
#include <torch/library.h>

#include "cuda/cuda_helpers.cuh"
#include "schemas.h"

namespace {

constexpr int kThreads = 64;

// out[b] = sum of row b of x [B, kThreads], by a tree reduction in shared memory.
__global__ void row_sums_kernel(const int64_t* x, int64_t* out) {
  __shared__ int64_t partial[kThreads];
  partial[threadIdx.x] = x[blockIdx.x * kThreads + threadIdx.x];
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = partial[0];
}

// Even and odd threads wait at different barriers: undefined on a GPU.
__global__ void divergent_barrier_kernel(int* out) {
  if (threadIdx.x % 2 == 0) {
    __syncthreads();
    out[threadIdx.x] = 1;
  } else {
    __syncthreads();
    out[threadIdx.x] = 2;
  }
}

// Thread 0 leaves before the barrier the others wait at.
__global__ void early_return_kernel(int* out) {
  if (threadIdx.x == 0) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

at::Tensor row_sums(const at::Tensor& x) {
  TORCH_CHECK(x.dim() == 2 && x.size(1) == kThreads && x.scalar_type() == at::kLong);
  const at::Tensor in = x.contiguous();
  at::Tensor out = at::empty({x.size(0)}, x.options());
  roiops::cuda::launch(row_sums_kernel, static_cast<unsigned>(x.size(0)), kThreads,
                       in.data_ptr<int64_t>(), out.data_ptr<int64_t>());
  return out;
}

void run_broken_kernel(int64_t which) {
  at::Tensor out = at::zeros({kThreads}, at::kInt);
  auto kernel = which == 0 ? divergent_barrier_kernel : early_return_kernel;
  roiops::cuda::launch(kernel, 1, kThreads, out.data_ptr<int>());
}

}  // namespace

TORCH_LIBRARY(roiops_emulated_cuda, m) {
  roiops::define_schemas(m);
  m.def("_emulator_row_sums(Tensor x) -> Tensor", &row_sums);
  m.def("_emulator_run_broken_kernel(int which) -> ()", &run_broken_kernel);
}
