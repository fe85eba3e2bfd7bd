"""Download files of the explore views (forks, layer view): a JSON and a CSV in a fresh ``tempo-result-*``
folder of the temp dir; this module keeps the newest :data:`KEPT_FOLDERS` of its folders and deletes older ones."""
from __future__ import annotations

import json
import shutil
import tempfile
import threading
from collections import deque
from pathlib import Path
from typing import Any

from tempo.ui.downloads import PREFIX

KEPT_FOLDERS = 32
_folders: deque[Path] = deque()
_lock = threading.Lock()


def save(stem: str, payload: dict[str, Any], table: Any) -> tuple[str, str]:
    """``<stem>.json`` (``payload``) and ``<stem>.csv`` (a pandas ``table``); returns their paths."""
    folder = Path(tempfile.mkdtemp(prefix=PREFIX))
    json_path, csv_path = folder / f"{stem}.json", folder / f"{stem}.csv"
    json_path.write_text(json.dumps(payload, ensure_ascii=False, indent=2), encoding="utf-8")
    table.to_csv(csv_path, index=False)
    with _lock:
        _folders.append(folder)
        stale = [_folders.popleft() for _ in range(len(_folders) - KEPT_FOLDERS)]
    for old in stale:
        shutil.rmtree(old, ignore_errors=True)
    return str(json_path), str(csv_path)
