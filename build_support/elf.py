"""Checks of the linked op library (roiops/_C), run by setup.py right after the link and by the
tests on the installed library: it carries no libstdc++ code of its own, and no Python.

No Python: the library is what a C++ program loads to run roiops' ops (an AOTInductor package that
calls them, say), where no interpreter is; so it may neither reference a Python C-API symbol nor
need libpython or torch's Python bindings (libtorch_python).

libstdc++: on the first GPU machine (2026-11-30, g++ 13, nvcc 13.0) every error message that
formats a number crashed the process: ``std::ostream::_M_insert<long>`` and libstdc++'s locale code
ran from inside roiops' ``_C``, not from the process's libstdc++. Two copies of libstdc++'s locale
machinery in one process (two sets of facet ids and locale state) break exactly there: formatting a
number is the first thing that needs the num_put facet. On the CI machine, the same objects linked
with ``-static-libstdc++`` do not crash but drop every number from the messages ("got shape [").
Header template code instantiated in our own translation units is harmless; libstdc++'s compiled
code is not. This module tells them apart:

- a symbol that libstdc++ exports with *global* binding is compiled library code (locale, codecvt,
  ios_base, ...); a library that defines one carries libstdc++ itself (its static archive was linked
  in: ``-static-libstdc++``, or a toolchain that found only ``libstdc++.a``);
- ``basic_ostream::_M_insert<T>`` and ``basic_istream::_M_extract<T>`` are out-of-line members that
  libstdc++'s headers declare ``extern template`` in every language mode; no translation unit may
  instantiate them, so a definition of one means the same thing (the symbols of that backtrace).

Weak copies of inline members (``std::string``'s move constructor, say), and of std::string's
members that C++20 leaves to every translation unit, are ordinary header code and pass.

Pure Python (reads the ELF dynamic symbol table itself): no binutils needed. Linux only; elsewhere
:func:`foreign_libstdcxx_code` returns an empty list.
"""

from __future__ import annotations

import os
import re
import struct

_ONLY_IN_LIBSTDCXX = re.compile(r"^_ZN(K)?S[oi]\d*_M_(insert|extract)I")  # ostream/istream members
_STB_GLOBAL = 1
_SHT_DYNAMIC = 6
_SHT_DYNSYM = 11
_DT_NEEDED = 1


def _read_elf(path: str) -> tuple[bytes, list[tuple]]:
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError(f"{path} is not a 64-bit little-endian ELF file")
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    header = "<IIQQQQIIQQ"
    return data, [struct.unpack_from(header, data, shoff + i * shentsize) for i in range(shnum)]


def _string(data: bytes, at: int) -> str:
    return data[at : data.index(b"\0", at)].decode()


def _dynamic_symbols(path: str, defined: bool) -> dict[str, int]:
    """{name: ELF binding} of the symbols a 64-bit little-endian ELF file defines in .dynsym (or,
    defined=False, those it needs from other libraries)."""
    data, sections = _read_elf(path)
    symbols: dict[str, int] = {}
    for _, sh_type, _, _, offset, size, link, _, _, entsize in sections:
        if sh_type != _SHT_DYNSYM:
            continue
        strtab_offset = sections[link][4]
        for at in range(offset, offset + size, entsize):
            name, info, _, shndx, _, _ = struct.unpack_from("<IBBHQQ", data, at)
            if name == 0 or (shndx != 0) != defined:  # the null symbol, or the other kind
                continue
            symbols[_string(data, strtab_offset + name)] = info >> 4
    return symbols


def needed_libraries(path: str) -> list[str]:
    """The DT_NEEDED entries of the library's .dynamic section: the libraries it loads."""
    data, sections = _read_elf(path)
    needed = []
    for _, sh_type, _, _, offset, size, link, _, _, entsize in sections:
        if sh_type != _SHT_DYNAMIC:
            continue
        strtab_offset = sections[link][4]
        for at in range(offset, offset + size, entsize):
            tag, value = struct.unpack_from("<qQ", data, at)
            if tag == _DT_NEEDED:
                needed.append(_string(data, strtab_offset + value))
    return needed


def python_references(library: str) -> list[str]:
    """What ties ``library`` to a Python interpreter (empty: good): the Python C-API symbols it
    needs and the Python libraries it loads."""
    symbols = sorted(
        name for name in _dynamic_symbols(library, defined=False) if name.startswith(("Py", "_Py"))
    )
    python_libraries = ("libpython", "libtorch_python")
    libraries = [name for name in needed_libraries(library) if name.startswith(python_libraries)]
    return libraries + symbols


def loaded_libstdcxx() -> str | None:
    """Path of the libstdc++ mapped into this process (torch loads it), None if there is none."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1]
                if os.path.basename(path).startswith("libstdc++.so"):
                    return path
    except OSError:
        pass
    return None


def foreign_libstdcxx_code(library: str, libstdcxx: str | None = None) -> list[str]:
    """The symbols of libstdc++'s compiled code that ``library`` defines itself (empty: good).

    ``libstdcxx`` defaults to the libstdc++ loaded in this process (import torch first)."""
    libstdcxx = libstdcxx or loaded_libstdcxx()
    if libstdcxx is None:
        return []
    exported = _dynamic_symbols(libstdcxx, defined=True)
    ours = _dynamic_symbols(library, defined=True)
    return sorted(
        name
        for name, binding in ours.items()
        if name in exported
        and (exported[name] == _STB_GLOBAL or _ONLY_IN_LIBSTDCXX.match(name) is not None)
    )


def op_library_problem(library: str) -> str | None:
    """Why ``library`` is unsafe to load (libstdc++ code of its own) or cannot be loaded without
    Python (Python references), or None."""
    foreign = foreign_libstdcxx_code(library)
    if foreign:
        return explain_libstdcxx(library, foreign)
    python = python_references(library)
    if python:
        return (
            f"{library} needs Python ({', '.join(python[:8])}), so a C++ program cannot load it: "
            "it must not include Python.h nor link torch's Python bindings (py_limited_api keeps "
            "libtorch_python off the link line)"
        )
    return None


def explain_libstdcxx(library: str, symbols: list[str]) -> str:
    shown = "\n  ".join(symbols[:12]) + ("\n  ..." if len(symbols) > 12 else "")
    return (
        f"{library} defines {len(symbols)} symbol(s) of libstdc++'s compiled code itself:\n"
        f"  {shown}\n"
        "Such a library crashes, or garbles, the first error message that formats a number (two "
        "copies of "
        "libstdc++'s locale code in one process). The link pulled libstdc++ in statically, or a "
        "translation unit ignored its extern templates: look for -static-libstdc++ in LDFLAGS or "
        "in the Python's LDSHARED (python -c \"import sysconfig; "
        "print(sysconfig.get_config_var('LDSHARED'))\"), and for a libstdc++.so missing beside "
        "the compiler's libstdc++.a (c++ -print-file-name=libstdc++.so)."
    )
