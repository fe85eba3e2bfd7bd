"""``python -m tempo deploy --space-id OWNER/NAME``: push what the app needs to a Hugging Face Space.

The Space is created (gradio SDK) when missing. Only the files a Space runs are
uploaded (``SPACE_FILES``): app, package, settings, requirements, README (its
front matter configures the Space) and the bundled model under ``assets/``.
The token comes from ``hub.token`` (``.secrets.toml``), ``TEMPO_HUB__TOKEN`` or
``HF_TOKEN``; it is never printed or logged.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
from pathlib import Path
from typing import Any

from tempo.settings.loader import PROJECT_ROOT
from tempo.errors import TempoError

log = logging.getLogger(__name__)

SPACE_FILES = ["app.py", "requirements.txt", "README.md", "settings.toml", "tempo/**", "assets/**"]
NEVER = ["**/__pycache__/**", "**/*.pyc", ".secrets.toml", "**/.secrets.toml", "tempo/train/**"]


class DeployError(TempoError):
    """The Space could not be created or updated."""


def add_deploy_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deploy", help="push the app to a Hugging Face Space",
                       description="Create the Space (gradio SDK) if missing and upload the files the app needs. "
                                   "Needs a token: hub.token in .secrets.toml, TEMPO_HUB__TOKEN or HF_TOKEN.")
    p.add_argument("--space-id", help="OWNER/NAME (default: hub.space_id of the settings)")
    p.add_argument("--private", action="store_true", default=None, help="create the Space private")
    p.add_argument("--dry-run", action="store_true", help="list the files that would be uploaded, upload nothing")
    p.set_defaults(handler=run_deploy)


def hub_token(settings: Any) -> str | None:
    """The token from the settings (``.secrets.toml`` / ``TEMPO_HUB__TOKEN``), else ``HF_TOKEN``."""
    token = settings.hub.token or os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    return str(token) if token else None


def space_files(root: Path = PROJECT_ROOT) -> list[str]:
    """The paths (relative, sorted) that ``deploy`` uploads."""
    from fnmatch import fnmatch

    found = []
    for pattern in SPACE_FILES:  # walk only the folders the patterns name, not the whole tree (.venv)
        top = root / pattern.split("/")[0]
        paths = top.rglob("*") if pattern.endswith("/**") and top.is_dir() else [top]
        for path in paths:
            rel = path.relative_to(root).as_posix()
            if path.is_file() and fnmatch(rel, pattern) and not any(fnmatch(rel, p) or fnmatch("/" + rel, p)
                                                                     for p in NEVER):
                found.append(rel)
    return sorted(found)


def deploy(space_id: str, token: str, private: bool = False, root: Path = PROJECT_ROOT) -> str:
    """Create the Space if missing, upload ``space_files``; return the Space's URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.utils import get_session

    # The hub's HTTP client (httpx or its fork httpx2) raises TransportError without a network.
    transport_error = getattr(importlib.import_module(type(get_session()).__module__.split(".")[0]),
                              "TransportError", OSError)

    api = HfApi(token=token)
    try:
        url = api.create_repo(space_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
        api.upload_folder(repo_id=space_id, repo_type="space", folder_path=str(root),
                          allow_patterns=SPACE_FILES, ignore_patterns=NEVER,
                          commit_message="Deploy TEMPO with python -m tempo deploy")
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        hint = " (is the token valid, with write access to that owner?)" if status in (401, 403) else ""
        raise DeployError(f"deploy to Space {space_id!r} failed: HTTP {status}{hint}") from None
    except (OSError, transport_error) as exc:
        raise DeployError(f"deploy to Space {space_id!r} failed: cannot reach the Hugging Face Hub "
                          f"({type(exc).__name__})") from None
    return str(url)


def run_deploy(args: argparse.Namespace, settings: Any) -> int:
    hub = settings.hub
    space_id = args.space_id or hub.space_id
    if not space_id or space_id.count("/") != 1 or not all(space_id.split("/")):
        raise DeployError(f"--space-id must be OWNER/NAME, got {space_id!r}")
    files = space_files()
    if args.dry_run:
        print("\n".join(files))
        return 0
    token = hub_token(settings)
    if not token:
        raise DeployError("no Hugging Face token: set hub.token in .secrets.toml, or TEMPO_HUB__TOKEN / HF_TOKEN")
    private = hub.private if args.private is None else args.private
    url = deploy(space_id, token, private=private)
    print(f"deployed {len(files)} files to {url}")
    return 0
