// How a backend plugs its kernels into the op layer.
//
// Every op of csrc/ops/ is a plain function whose first parameter is the backend kernel it runs:
// it checks and normalises its arguments, allocates its outputs and runs the kernel. A backend
// registers the op with its own kernel bound in, under its dispatch key:
//
//   TORCH_LIBRARY_IMPL(roiops, CPU, m) { m.impl("box_iou", bind_kernel<&box_iou, &box_iou_cpu>); }
//
// so the checks, the allocation and the device guard are written once for every backend.
#pragma once

#include <ATen/DeviceGuard.h>
#include <ATen/core/Tensor.h>
#include <c10/core/CompileTimeFunctionPointer.h>

#include <utility>

namespace roiops {

// An op `Ret op(Kernel kernel, Args... args)` with its kernel bound: Ret call(Args... args).
template <typename OpPointer>
struct OpWithKernel;

template <typename Ret, typename Kernel, typename... Args>
struct OpWithKernel<Ret (*)(Kernel, Args...)> {
  template <auto op, auto kernel>
  static Ret call(Args... args) {
    return op(kernel, std::forward<Args>(args)...);
  }
};

// `op` with `kernel` bound as its first argument, as torch::Library::impl takes it (TORCH_FN).
template <auto op, auto kernel>
constexpr auto bind_kernel = c10::CompileTimeFunctionPointer<
    std::remove_pointer_t<decltype(&OpWithKernel<decltype(op)>::template call<op, kernel>)>,
    &OpWithKernel<decltype(op)>::template call<op, kernel>>();

// Runs kernel(args, output, more...) under a guard for the output's device, unless the output is
// empty (then there is nothing to compute, and a CUDA launch of zero blocks would be an error).
template <typename Args, typename... More>
void run_kernel(void (*kernel)(const Args&, at::Tensor&, More...), const Args& args,
                at::Tensor& output, More... more) {
  if (output.numel() == 0) return;
  const at::OptionalDeviceGuard device_guard(at::device_of(output));
  kernel(args, output, more...);
}

}  // namespace roiops
