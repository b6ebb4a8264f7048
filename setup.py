"""Builds roiops' op library, roiops/_C: the C++ CPU kernels always, the CUDA kernels when torch has
CUDA and nvcc is found (knobs: build_support/toolchain.py, printed by the build).

The metadata is in pyproject.toml. `pip install .` builds against the torch ALREADY installed in the
target environment (build_support.toolchain.import_torch); `pip install --no-build-isolation .` and
`pip install -e .` work as well.
"""

import glob
import os
import sys

from setuptools import Extension, setup

ROOT = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, ROOT)  # build_support/: the build's own code, not shipped in the package

from build_support import elf, toolchain  # noqa: E402

torch = toolchain.import_torch()
toolchain.set_cuda_home()  # before torch.utils.cpp_extension reads it, at its import

from torch.utils.cpp_extension import BuildExtension  # noqa: E402

LIBRARY = "roiops._C"


class BuildOpLibrary(BuildExtension):
    """torch's BuildExtension for the op library, configured against the installed torch when the
    build runs (not when metadata is asked for), linking libstdc++ as a shared library and checking
    what it linked.

    A copy of libstdc++'s compiled code inside _C crashes the process the first time an error
    message formats a number (build_support/elf.py). -static-libstdc++ can reach the link from the
    interpreter's LDSHARED or from LDFLAGS: it is dropped here; whatever else puts libstdc++ code
    into _C, or ties it to Python, fails the build with the offending symbols."""

    def finalize_options(self):
        self.distribution.ext_modules = [toolchain.op_library(torch, LIBRARY)]
        super().finalize_options()

    def build_extensions(self):
        for attr in ("linker_so", "linker_so_cxx"):
            command = getattr(self.compiler, attr, None)
            if isinstance(command, list) and "-static-libstdc++" in command:
                print(f"roiops: dropping -static-libstdc++ from the link ({attr})")
                setattr(self.compiler, attr, [a for a in command if a != "-static-libstdc++"])
        super().build_extensions()

    def build_extension(self, ext):
        library = self.get_ext_fullpath(ext.name)
        # An op library of an earlier build under another name (a Python extension's, before
        # 0.3) would be packaged beside this one.
        for stale in glob.glob(os.path.join(os.path.dirname(library), "_C*.so")):
            if os.path.basename(stale) != os.path.basename(library):
                os.remove(stale)
        super().build_extension(ext)
        problem = elf.op_library_problem(library)
        if problem:
            sys.exit(f"roiops: the build is unsafe: {problem}")
        print(f"roiops: {os.path.basename(library)} carries no libstdc++ code and no Python")

    def run(self):
        super().run()
        # What `import roiops` compares with the installed torch before it loads the library
        # (written also when the library was up to date and not rebuilt).
        library = self.get_ext_fullpath(LIBRARY)
        with open(os.path.join(os.path.dirname(library), toolchain.BUILT_WITH), "w") as file:
            file.write(torch.__version__ + "\n")


setup(
    # A placeholder until build_ext configures the library: it makes the wheel platform-specific.
    ext_modules=[Extension(LIBRARY, sources=[], py_limited_api=True)],
    cmdclass={"build_ext": BuildOpLibrary},
    # A wheel needs the torch minor release it was built against; the source, any supported one.
    install_requires=[toolchain.torch_requirement(torch, source="sdist" in sys.argv)],
    package_data={"roiops": [toolchain.BUILT_WITH]},
)
