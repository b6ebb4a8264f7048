// The roiops library: its schemas (schemas.cpp) and build information. The op layer (csrc/ops/)
// registers the composite ops; the backends register kernels in csrc/cpu/ and csrc/cuda/; fake
// kernels and autograd are registered from Python (roiops/_fake.py, roiops/_autograd.py).
//
// The shared object is a plain library with no Python in it: loading it runs the registrations.
// Python loads it with torch.ops.load_library (import roiops), a C++ program with dlopen.

#include <torch/library.h>

#include <string>

#include "ops/output_memory.h"
#include "schemas.h"

#ifndef ROIOPS_TORCH_VERSION
#define ROIOPS_TORCH_VERSION "unknown"
#endif

namespace roiops {

// "torch=<version built against>;cuda=<0|1>" -- lets roiops.build_info() and CI tell whether the
// CUDA kernels were compiled in.
static std::string build_info() {
#ifdef ROIOPS_WITH_CUDA
  const char* cuda = "1";
#else
  const char* cuda = "0";
#endif
  return std::string("torch=") + ROIOPS_TORCH_VERSION + ";cuda=" + cuda;
}

TORCH_LIBRARY(roiops, m) {
  define_schemas(m);
  m.def("_build_info() -> str", &build_info);
  m.def("_cached_output_bytes() -> int", &cached_output_bytes);
  m.def("_release_cached_outputs() -> int", &release_cached_outputs);
}

#ifndef ROIOPS_WITH_CUDA
// Built without the CUDA kernels: CUDA tensors get a sentence with the fix instead of the
// dispatcher's list of backends.
static void cuda_not_built(const c10::OperatorHandle& op, torch::jit::Stack*) {
  TORCH_CHECK(false, op.schema().name(),
              ": roiops was built without its CUDA kernels (no nvcc or a CPU-only torch at build "
              "time); rebuild with the CUDA toolkit present: ROIOPS_CUDA=1 pip install .");
}

TORCH_LIBRARY_IMPL(roiops, CUDA, m) {
  for (const OpDefinition& op : op_definitions()) {
    if (op.implementation == Implementation::kBackend) {
      m.impl(op.name().c_str(), torch::CppFunction::makeFromBoxedFunction<&cuda_not_built>());
    }
  }
}
#endif

}  // namespace roiops
