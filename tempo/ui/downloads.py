"""The result's download files (JSON, candidates CSV), one ``tempo-result-*`` folder of the temp dir per run.

Gradio copies a returned file into its own cache before it serves it, so a folder is needed only until
the run's outputs are sent; :class:`ResultFolders` keeps the newest ``max_result_folders`` of them and
deletes the oldest, so a long-running app does not fill the temp dir.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections import deque
from pathlib import Path

from tempo.result import GenerationResult
from tempo.ui.render import candidates_table

log = logging.getLogger(__name__)

PREFIX = "tempo-result-"
JSON_NAME, CSV_NAME = "tempo_result.json", "tempo_candidates.csv"


def write_downloads(result: GenerationResult, folder: Path) -> tuple[Path, Path]:
    """The result as JSON and as the candidates CSV (one row per candidate) in ``folder``: the app's downloads
    and the files of ``--save-visualization``. Returns the two paths."""
    json_path, csv_path = folder / JSON_NAME, folder / CSV_NAME
    json_path.write_text(result.to_json(indent=2), encoding="utf-8")
    candidates_table(result).to_csv(csv_path, index=False)
    return json_path, csv_path


class ResultFolders:
    """The download folders this app made, oldest first: at most ``limit`` of them stay on disk."""

    def __init__(self, limit: int):
        if limit < 1:
            raise ValueError(f"max_result_folders must be >= 1, got {limit}")
        self.limit = limit
        self.folders: deque[Path] = deque()
        self.lock = threading.Lock()  # handlers of concurrent users save at once

    def save(self, result: GenerationResult) -> tuple[str, str]:
        """The result as JSON and as the candidates CSV, in a fresh folder; the oldest folders past the
        limit are deleted. Returns the two paths."""
        folder = Path(tempfile.mkdtemp(prefix=PREFIX))
        json_path, csv_path = write_downloads(result, folder)
        with self.lock:
            self.folders.append(folder)
            stale = [self.folders.popleft() for _ in range(len(self.folders) - self.limit)]
        for old in stale:
            shutil.rmtree(old, ignore_errors=True)  # already gone (a temp-dir cleaner) is as good
            log.debug("deleted the result folder %s (max_result_folders = %d)", old, self.limit)
        return str(json_path), str(csv_path)
