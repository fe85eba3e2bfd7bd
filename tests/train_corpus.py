"""A small synthetic Python corpus for the trainer's tests (written into tmp_path, no network)."""
from __future__ import annotations

from pathlib import Path

SMALL_MODEL = dict(vocab_size=320, d_model=32, n_layers=1, n_heads=2, d_ff=64, max_seq_len=32, min_frequency=1,
                   num_threads=1)
"""A model that trains in a second on one CPU thread."""

TEMPLATE = '''"""Module {i}."""
import os


def read_{name}(path):
    with open(path) as f:
        return f.read()


def write_{name}(path, value):
    with open(path, "w") as f:
        f.write(str(value))


class {cls}:
    def __init__(self, value={i}):
        self.value = value

    def get(self):
        return self.value
'''
NAMES = ["config", "data", "file", "value", "item", "line", "text", "table", "entry", "record", "block", "chunk"]


def write_corpus(root: Path) -> Path:
    """Twelve small modules (one more in an excluded folder)."""
    root.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(NAMES):
        folder = root / ("pkg" if i % 2 else "")
        folder.mkdir(exist_ok=True)
        (folder / f"mod_{name}.py").write_text(TEMPLATE.format(i=i, name=name, cls=name.title() + "Store"))
    (root / "skipped").mkdir(exist_ok=True)
    (root / "skipped" / "ignored.py").write_text("x = 1\n")
    return root
