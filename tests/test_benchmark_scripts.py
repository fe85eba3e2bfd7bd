"""Every benchmark script starts: its imports resolve and its options parse (``--help``). The figures
themselves live in the README, measured on a quiet machine; this only keeps a refactor of one script from
silently breaking another that imports from it."""
from __future__ import annotations

import subprocess
import sys

import pytest

from helpers import ROOT

SCRIPTS = sorted(p.name for p in (ROOT / "benchmarks").glob("*.py") if p.name != "shapes.py")


@pytest.mark.subprocess
@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_script_starts(script):
    done = subprocess.run([sys.executable, f"benchmarks/{script}", "--help"], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-1500:]
    assert "usage:" in done.stdout
