"""``--save-visualization [--output-dir DIR]`` of ``generate`` and ``compare``: a run's files on disk.

One folder per run under ``--output-dir`` (default ``output/``, the seeds' folder), named by the time and a
slug of the prompt (``output/20250101-120000-def-read-config-path/``), holding every plot of the app's Plots
tab as PNG (``tempo.ui.plots.result_figures``, numbered in the tab's order and named by their titles), the
result JSON and the candidates CSV (``tempo.ui.downloads.write_downloads``, the app's download files).
``compare`` saves each mode's files in a subfolder of its run folder (``tempo/``, ``tempo_pruning/``, ...).
"""
from __future__ import annotations

import argparse
import logging
import re
import time
from pathlib import Path
from typing import Iterable, Mapping

from tempo.errors import TempoError
from tempo.result import GenerationResult

log = logging.getLogger("tempo.cli")

DEFAULT_OUTPUT_DIR = Path("output")
SLUG_LENGTH = 40


def add_visualization_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("saved visualization")
    g.add_argument("--save-visualization", action="store_true",
                   help="save every plot of the app's Plots tab as PNG, the result JSON and the candidates CSV, "
                        "in a folder per run (time and prompt) under --output-dir")
    g.add_argument("--output-dir", type=Path, metavar="DIR",
                   help=f"where --save-visualization puts its run folders (implies it; default: {DEFAULT_OUTPUT_DIR}/)")


def wanted(args: argparse.Namespace) -> Path | None:
    """The output folder when the run's files are to be saved, else ``None``."""
    if args.output_dir is not None:
        return args.output_dir.expanduser()
    return DEFAULT_OUTPUT_DIR if args.save_visualization else None


def slug(text: str, limit: int = SLUG_LENGTH) -> str:
    """``"def read_config(path):"`` -> ``"def-read-config-path"``: lower-case letters and digits joined by
    dashes, at most ``limit`` characters; ``"prompt"`` when nothing is left."""
    words = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return words[:limit].rstrip("-") or "prompt"


def run_folder(root: Path, prompt: str, when: float | None = None) -> Path:
    """A new folder ``root/<YYYYmmdd-HHMMSS>-<slug>`` (``-2``, ``-3``, ... when that run's name is taken)."""
    name = f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(when))}-{slug(prompt)}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        for n in range(1, 10_000):
            folder = root / (name if n == 1 else f"{name}-{n}")
            try:
                folder.mkdir()
                return folder
            except FileExistsError:
                continue
    except OSError as exc:
        raise TempoError(f"--output-dir: cannot create a folder in {root}: {exc.strerror}") from None
    raise TempoError(f"--output-dir: too many runs named {name} in {root}")


def plot_name(index: int, figure) -> str:
    """``1-candidates-and-kept-tokens-per-step.png``: the plot's place in the Plots tab and its title."""
    title = figure.axes[0].get_title() if figure.axes else ""
    return f"{index}-{slug(title, 60) if title else 'plot'}.png"


def save_result(result: GenerationResult, folder: Path) -> list[Path]:
    """Every plot of the Plots tab as PNG, the result JSON and the candidates CSV in ``folder`` (made if
    missing). Returns the paths written."""
    from tempo.ui.downloads import write_downloads
    from tempo.ui.plots import result_figures

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for index, figure in enumerate(result_figures(result), start=1):
        path = folder / plot_name(index, figure)
        figure.savefig(path, format="png", dpi=100)
        written.append(path)
    written.extend(write_downloads(result, folder))
    return written


def save_generate(results: Iterable[GenerationResult], root: Path) -> list[Path]:
    """``generate``: a run folder per result (a ``--prompts-file`` batch gives one per prompt)."""
    folders = []
    for result in results:
        folder = run_folder(root, result.prompt)
        files = save_result(result, folder)
        log.info("saved %d plots, the result JSON and the candidates CSV to %s", len(files) - 2, folder)
        folders.append(folder)
    return folders


def save_compare(prompt: str, results: Mapping[str, GenerationResult], root: Path) -> Path:
    """``compare``: one run folder, each mode's files in its subfolder (``tempo/``, ``default/``, ...)."""
    folder = run_folder(root, prompt)
    for mode, result in results.items():
        save_result(result, folder / mode)
    log.info("saved the plots, result JSON and candidates CSV of %s to %s (a subfolder each)",
             ", ".join(results), folder)
    return folder
