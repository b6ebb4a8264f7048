"""How roiops is distributed: the source distribution carries everything its build reads, a built
roiops says which torch it needs and refuses another at import -- with a message, before its op
library is loaded -- rather than crash. (CI also installs the sdist into a fresh environment on
the newest torch and runs the version-sensitive tests there: .ci/run.)"""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch
from inputs import run_fresh_python

import roiops

ROOT = Path(__file__).resolve().parents[1]
BUILD_INPUTS = ["csrc", "build_support", "examples", "roiops"]


def tracked_files(folder: str) -> set[str]:
    listed = subprocess.run(
        ["git", "ls-files", folder], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(listed.stdout.split())


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(),
                    reason="needs the git checkout (the list of its files)")  # fmt: skip
def test_the_sdist_holds_everything_the_build_reads(tmp_path):
    result = subprocess.run(
        [sys.executable, "setup.py", "-q", "sdist", "--dist-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (archive,) = tmp_path.glob("roiops-*.tar.gz")
    with tarfile.open(archive) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
        info = sdist.extractfile(next(n for n in sdist.getnames() if n.endswith("/PKG-INFO")))
        metadata = info.read().decode()
    needed = {"setup.py", "pyproject.toml", "MANIFEST.in", "README.md"}
    for folder in BUILD_INPUTS:
        needed |= tracked_files(folder)
    assert not needed - names, sorted(needed - names)
    assert not {n for n in names if n.endswith((".so", ".pyc"))}
    assert "Requires-Dist: torch>=2.11" in metadata  # a source build takes any supported torch


def installed_distribution() -> importlib.metadata.Distribution:
    """roiops' installed metadata (not a build's roiops.egg-info left in the checkout)."""
    distributions = importlib.metadata.distributions(name="roiops")
    (installed,) = [d for d in distributions if d.read_text("INSTALLER")]  # pip's, say
    return installed


def test_the_installed_roiops_needs_the_torch_minor_release_it_was_built_against():
    requires = installed_distribution().requires or []
    built_with = roiops.build_info()["torch"]
    minor = ".".join(built_with.split(".")[:2])
    assert f"torch=={minor}.*" in requires, requires


def test_a_build_for_another_torch_is_refused_at_import(tmp_path):
    """The installed package copied, its recorded torch changed: importing it raises ImportError
    naming both versions, before the op library is loaded (a library built for another torch can
    crash the process as it loads)."""
    package = Path(roiops.__file__).parent
    copy = tmp_path / "roiops"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    recorded = copy / "_built_with_torch.txt"
    assert recorded.is_file(), "the build records the torch it was built against"
    recorded.write_text("1.99.0\n")
    code = (
        f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n"
        "import torch\n"
        "try:\n    import roiops\n"
        "except ImportError as err:\n    print('refused:', err)\n"
        "print('loaded:', hasattr(torch.ops.roiops, 'roi_align'))\n"
    )
    result = run_fresh_python(code, timeout=120)
    assert result.returncode == 0, result.stderr
    minor = ".".join(torch.__version__.split(".")[:2])
    assert "refused: roiops was built against torch 1.99.0" in result.stdout, result.stdout
    assert "runs with torch 1.99.* only" in result.stdout
    assert f"but torch {torch.__version__} is installed" in result.stdout
    assert "loaded: False" in result.stdout  # refused before loading the library
    recorded.write_text(f"{minor}.99\n")  # another patch release of the same minor: fine
    result = run_fresh_python(code, timeout=120)
    assert "loaded: True" in result.stdout and "refused" not in result.stdout, result.stdout
