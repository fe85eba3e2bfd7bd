"""Documentation generated from declarations: the request field table of ``docs/requests.md``.

    python -m tempo.docs            # rewrite docs/requests.md from tempo.request.FIELDS
    python -m tempo.docs --check    # exit 1 when the file and the declaration differ

``tests/test_request_fields.py`` keeps the file equal to :func:`requests_page`, so the table cannot drift
from the fields it describes.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Mapping

from tempo.request import FIELDS, MAIN_GROUP, FieldSpec

log = logging.getLogger("tempo.docs")

REQUESTS_PAGE = Path(__file__).resolve().parent.parent / "docs" / "requests.md"
HEADER = """# Request fields

Every field of a generation request, as `tempo/request.py` declares it once. Validation, the settings
validators, the `generate` / `compare` flags, the app's controls, the REST body of `POST /generate` and this
table are generated from that declaration (regenerate this file with `python -m tempo.docs`).

A field's default comes from its settings key (`settings.toml`, `TEMPO_SECTION__KEY`) when set, else from
the code default below; an explicit argument (flag, control, JSON field) wins over both. "≤ setting" means a
setting is the upper bound. The app's slider is narrower than the valid range where the "app" column says so.
A field's alias (the seeds' `threshold` for `selection_threshold`) is accepted wherever the field is: keyword
arguments, the REST body, `gradio_client` settings dicts and as a CLI flag; a field given under both names is
refused, naming both.

"""
COLUMNS = ("field", "type", "default", "valid values", "settings key", "CLI flag", "app", "meaning")


def valid_values(spec: FieldSpec) -> str:
    """``[0.0, 1.0]``, ``>= 0``, ``[1, ≤ generation.max_tokens_limit]``, ``(0.0, 1.0]`` or the choices."""
    if spec.choices:
        return ", ".join(f"`{c}`" for c in spec.choices)
    if spec.required:
        return "non-empty text"
    if spec.lo is None:
        return {bool: "true / false", str: "text"}.get(spec.type, "")
    hi = f"≤ `{spec.hi_setting}`" if spec.hi_setting else spec.hi
    if hi is None:
        return f">= {spec.lo}"
    return f"{'(' if spec.lo_excluded else '['}{spec.lo}, {hi}]"


def cli_flags(spec: FieldSpec) -> str:
    """``--selection-threshold`` / ``--threshold``; a flag that sets a value of its own shows it (``= mcts``)."""
    shown = []
    for flag in spec.cli:
        names = " / ".join(f"`{name}`" for name in flag.names)
        shown.append(f"{names} (= {flag.const})" if isinstance(flag.const, str) else names)
    return ", ".join(shown)


def app_control(spec: FieldSpec) -> str:
    """``Sampling › Temperature (slider 0–2)``: where the control is and, if narrower, its slider range."""
    where = spec.label if spec.group in (None, MAIN_GROUP) else f"{spec.group} › {spec.label}"
    if spec.ui_range is not None and spec.type in (int, float) and spec.slider:
        lo, hi = spec.ui_range
        where += f" (slider {lo}–{hi})"
    return where


def field_row(spec: FieldSpec) -> list[str]:
    default = "required" if spec.required else f"`{json.dumps(spec.default)}`"
    setting = f"`{spec.setting}`" if spec.setting else ""
    negative = any(flag.const is False for flag in spec.cli)  # its help says what --no-... does, not the field
    meaning = spec.doc or (spec.info if negative else "") or spec.help or spec.info
    meaning += "".join(f" (also named `{alias}`)" for alias in spec.aliases)
    return [f"`{spec.name}`", spec.type.__name__, default, valid_values(spec), setting, cli_flags(spec),
            app_control(spec), meaning]


def request_table(fields: Mapping[str, FieldSpec] = FIELDS) -> str:
    """The markdown table: one row per field, in declaration order."""
    rows = [COLUMNS, ("---",) * len(COLUMNS), *(field_row(spec) for spec in fields.values())]
    return "\n".join("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows) + "\n"


def requests_page(fields: Mapping[str, FieldSpec] = FIELDS) -> str:
    return HEADER + request_table(fields)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tempo.docs", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/requests.md is out of date")
    args = parser.parse_args(argv)
    page = requests_page()
    if args.check:
        current = REQUESTS_PAGE.read_text(encoding="utf-8") if REQUESTS_PAGE.exists() else ""
        if current != page:
            log.error("%s differs from the request declaration: run python -m tempo.docs", REQUESTS_PAGE)
            return 1
        return 0
    REQUESTS_PAGE.write_text(page, encoding="utf-8")
    log.info("wrote %s (%d fields)", REQUESTS_PAGE, len(FIELDS))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sys.exit(main())
