// Every roiops schema, in one place (schemas.cpp).
#pragma once

#include <c10/util/ArrayRef.h>
#include <torch/library.h>

#include <string>

namespace roiops {

// Who implements an op: each backend (a CPU and a CUDA kernel, csrc/cpu/ and csrc/cuda/), or the
// op layer once for every device, over other ops (csrc/ops/, CompositeExplicitAutograd).
enum class Implementation { kBackend, kComposite };

struct OpDefinition {
  const char* schema;
  Implementation implementation;

  std::string name() const;  // the schema up to its argument list
};

c10::ArrayRef<OpDefinition> op_definitions();

// Defines every op on `m`. Also used by the tests' emulated-CUDA build, which registers the CUDA
// kernels under a library of its own with these same schemas.
void define_schemas(torch::Library& m);

}  // namespace roiops
