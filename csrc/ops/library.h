// The torch library the op layer registers its composite ops into and looks backend ops up in.
//
// The package's library is `roiops`. The tests build the CUDA backend a second time for the CPU
// under an emulated execution model (tests/emulated_cuda/); that build defines ROIOPS_EMULATE_CUDA
// and compiles the same op layer into its own library, `roiops_emulated_cuda`, so that a composite
// op such as nms reaches the emulated CUDA kernels there and the real kernels here.
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>

#ifdef ROIOPS_EMULATE_CUDA
#define ROIOPS_LIBRARY roiops_emulated_cuda
#else
#define ROIOPS_LIBRARY roiops
#endif

#define ROIOPS_STRINGIFY_IMPL(x) #x
#define ROIOPS_STRINGIFY(x) ROIOPS_STRINGIFY_IMPL(x)

namespace roiops {

// The typed handle of op `name` (overload "") of this build's library, looked up once per call
// site.
template <typename Signature>
c10::TypedOperatorHandle<Signature> find_op(const char* name) {
  return c10::Dispatcher::singleton()
      .findSchemaOrThrow((std::string(ROIOPS_STRINGIFY(ROIOPS_LIBRARY)) + "::" + name).c_str(), "")
      .template typed<Signature>();
}

}  // namespace roiops
