// Every roiops schema, in one place.
#pragma once

#include <torch/library.h>

namespace roiops {

// Defines the ops of the roiops library on `m`. Also used by the tests' emulated-CUDA build, which
// registers the CUDA kernels under a library of its own with these same schemas.
void define_schemas(torch::Library& m);

}  // namespace roiops
