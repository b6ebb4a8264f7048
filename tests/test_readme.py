"""The README keeps its promises: every Python block in it runs as written (each in a fresh process,
from a folder that holds the checkout's docs/, where it writes its files), and every test it names
as the proof of a claim exists."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def python_blocks() -> list[tuple[int, str]]:
    """(line, code) of every ```python block."""
    blocks, lines = [], README.splitlines()
    start = None
    for number, line in enumerate(lines, 1):
        if line.startswith("```python"):
            start = number
        elif line.startswith("```") and start is not None:
            blocks.append((start, "\n".join(lines[start : number - 1])))
            start = None
    return blocks


BLOCKS = python_blocks()


def test_the_readme_has_its_examples():
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("line, code", BLOCKS, ids=[f"line {line}" for line, _ in BLOCKS])
def test_python_block_runs(line, code, tmp_path):
    (tmp_path / "docs").symlink_to(ROOT / "docs")
    script = tmp_path / "block.py"
    script.write_text(code + "\n")
    if "dist.init_process_group" in code:  # the data-parallel example: as the README launches it
        torchrun = Path(sys.executable).with_name("torchrun")
        command = [str(torchrun), "--nproc-per-node", "2", str(script)]
    else:
        command = [sys.executable, "-P", str(script)]
    import roiops

    env = {**os.environ, "PYTHONPATH": str(Path(roiops.__file__).parent.parent)}
    result = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env
    )
    assert result.returncode == 0, f"README line {line}:\n{result.stderr[-3000:]}"


def test_every_test_the_readme_names_exists():
    """`tests/test_x.py::test_y` and bare test_names (with their files) in the README are real."""
    defined: dict[str, set[str]] = {}
    for path in (ROOT / "tests").glob("test_*.py"):
        tree = ast.parse(path.read_text())
        defined[path.name] = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    files = set(re.findall(r"tests/(test_\w+\.py)", README))
    assert files and files <= set(defined), files - set(defined)
    everything = set().union(*defined.values())
    named = set(re.findall(r"\b(test_\w+)\b(?!\.py)", README))
    assert named and named <= everything, sorted(named - everything)
