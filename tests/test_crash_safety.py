"""No bad argument kills the process: every op's argument errors are Python exceptions whose
messages carry their numbers, in any build.

The first GPU build crashed (SIGSEGV) on every error message that formats a number: its _C
carried a copy of libstdc++'s compiled locale code (roiops/_libstdcxx_check.py says how that
happens and how it is detected). Here each op is called with a bad argument in a fresh
interpreter, so that a crash is a failed test and not a dead test run, and the number must be in
the message: the same fault can also drop numbers silently (seen on the CI machine with a _C linked
with -static-libstdc++: "got shape [").
"""

from __future__ import annotations

import shutil
import subprocess
import textwrap

import pytest
import torch
from conftest import DEVICES
from inputs import build_support, run_fresh_python

import roiops

elf = build_support("elf")

# op -> (a call with one bad argument, where x is a [2, 3, 8, 8] map, b [5, 4] boxes, r [5, 5] RoIs
# and s [5] scores on the device; what the error message must say, numbers included)
BAD_CALLS = {
    "roi_align": ("ops.roi_align(x, r[:, :4], 1.0, 7, 7, 2, False)", "[5, 4]"),
    "_roi_align_backward": (
        "ops._roi_align_backward(x, r, 1.0, 7, 7, 2, 3, 8, 8, 2, False)",
        "[2, 3, 8, 8]",
    ),
    "multi_scale_roi_align": (
        "ops.multi_scale_roi_align([x, x], r, s.long(), [1.0], 7, 7, 2, False)",
        "got 2 feature maps",
    ),
    "_multi_scale_roi_align_backward": (
        "ops._multi_scale_roi_align_backward("
        "x, r, s.long(), [1.0], 7, 7, 2, 3, [8], [8], 2, False)",
        "[2, 3, 8, 8]",
    ),
    "roi_align_sample_points": ("ops.roi_align_sample_points(r, 1.0, 0, 7, 2, False)", "(0, 7)"),
    "assign_levels": ("ops.assign_levels(b, 5, 2, 224.0, 4.0, 1e-6)", "k_min=5"),
    "nms": ("ops.nms(b[:, :3], s, 0.5)", "[5, 3]"),
    "batched_nms": ("ops.batched_nms(b, s, s[:4].long(), 0.5)", "[4]"),
    "batched_nms_padded": ("ops.batched_nms_padded(b[None], s[None], None, 0.5, -3)", "-3"),
    "_nms_greedy": ("ops._nms_greedy(b[None, :, :3].contiguous(), None, 0.5, 5)", "[1, 5, 3]"),
    "decode_boxes": ("ops.decode_boxes(b[:, :3], b, [1.0] * 4, 4.0)", "[5, 3]"),
    "decode_clip_boxes": ("ops.decode_clip_boxes(b, b[:4], [1.0] * 4, 4.0, 60, 80, 0.0)", "[4, 4]"),
    "encode_boxes": ("ops.encode_boxes(b, b[:3], [1.0] * 4)", "[3, 4]"),
    "box_iou": ("ops.box_iou(b, b[:, :2])", "[5, 2]"),
    "paste_masks_in_image": (
        "ops.paste_masks_in_image(x[:, :1], b, 20, 20, 1)",
        "N = 2",
    ),
    "_resize_images": ("ops._resize_images(x[0], 0.5)", "[3, 8, 8]"),
    "grid_anchors": (
        "ops.grid_anchors(b[:2], [3], [2], [2], [8], [8], 1)",
        "[2, 4]",
    ),
}

PREAMBLE = """
import sys, torch, roiops
ops = torch.ops.roiops
d = torch.device({device!r})
g = torch.Generator().manual_seed(0)
x = torch.rand(2, 3, 8, 8, generator=g).to(d)
b = torch.tensor([[0., 0., 4., 4.], [1., 1., 5., 6.], [2., 0., 7., 3.], [0., 2., 3., 7.],
                  [4., 4., 8., 8.]], device=d)
r = torch.cat([torch.zeros(5, 1, device=d), b], 1)
s = torch.linspace(1, 0, 5, device=d)
try:
    {call}
except Exception as err:
    print("RAISED", type(err).__name__, err)
    sys.exit(0)
print("NO ERROR")
sys.exit(3)
"""


def test_every_op_has_a_bad_call():
    names = torch._C._dispatch_get_all_op_names()
    functions = {"_build_info", "_cached_output_bytes", "_release_cached_outputs"}  # no tensors
    ops = {n.split("::")[1] for n in names if n.startswith("roiops::")} - functions
    assert set(BAD_CALLS) == ops


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op", sorted(BAD_CALLS))
def test_bad_argument_raises_with_its_number_in_a_fresh_process(op, device):
    call, number = BAD_CALLS[op]
    code = textwrap.dedent(PREAMBLE).format(device=device, call=call)
    result = run_fresh_python(code, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{op} on {device}: exit {result.returncode}\n{output[-2000:]}"
    assert "RAISED" in result.stdout, output
    message = result.stdout.split("RAISED", 1)[1]
    assert number in message, f"the message lost its number {number!r}: {message}"


def test_installed_library_carries_no_libstdcxx_code_of_its_own():
    assert elf.loaded_libstdcxx() is not None  # torch loaded it: the check below is not vacuous
    assert elf.foreign_libstdcxx_code(roiops.library_path()) == []


def test_installed_library_needs_no_python():
    """A C++ program without an interpreter can load it (examples/cpp does)."""
    library = roiops.library_path()
    assert elf.python_references(library) == []
    assert any(name.startswith("libtorch_cpu") for name in elf.needed_libraries(library))


@pytest.mark.skipif(shutil.which("c++") is None, reason="needs a C++ compiler")
def test_the_check_finds_a_statically_linked_libstdcxx(tmp_path):
    """The control: a library linked with -static-libstdc++ is found out, by the very symbol of the
    GPU machine's backtrace; the same source linked normally passes."""
    source = tmp_path / "formats.cpp"
    source.write_text(
        "#include <sstream>\n#include <string>\n"
        'std::string format(long v) { std::ostringstream s; s << "got " << v; return s.str(); }\n'
    )
    static, shared = tmp_path / "static.so", tmp_path / "shared.so"
    base = ["c++", "-shared", "-fPIC", "-O2", str(source), "-o"]
    subprocess.run([*base, str(static), "-static-libstdc++"], check=True)
    subprocess.run([*base, str(shared)], check=True)
    found = elf.foreign_libstdcxx_code(str(static))
    assert "_ZNSo9_M_insertIlEERSoT_" in found  # std::ostream::_M_insert<long>
    assert elf.foreign_libstdcxx_code(str(shared)) == []


@pytest.mark.skipif(shutil.which("c++") is None, reason="needs a C++ compiler")
def test_the_check_finds_a_reference_to_python(tmp_path):
    """The control: a library that calls the Python C-API is found out (no Python headers needed:
    the symbol is declared by hand)."""
    source = tmp_path / "calls_python.cpp"
    source.write_text(
        'extern "C" void* PyLong_FromLong(long);\nvoid* one() { return PyLong_FromLong(1); }\n'
    )
    library = tmp_path / "calls_python.so"
    subprocess.run(["c++", "-shared", "-fPIC", str(source), "-o", str(library)], check=True)
    assert elf.python_references(str(library)) == ["PyLong_FromLong"]
    assert "needs Python (PyLong_FromLong)" in elf.op_library_problem(str(library))
