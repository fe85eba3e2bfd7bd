"""``python -m tempo config``: show the effective settings and their sources, validate, migrate v1 files.

Exit codes: 0 fine; 1 the settings have problems (``--validate``, ``--show``); 2 a usage error
(a bad ``--set``, an unreadable file), always one line on stderr.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from tempo.settings.rules import SHARED_POSITIONS
from tempo.settings.loader import LoadedSettings, flatten, parse_value, read_settings, toml_text
from tempo.errors import SettingsError, TempoError

SECRET_NAME = re.compile(r"(^|_)(token|secret|password|passwd|passphrase|credentials?|key)$")
"""A key whose last part ends like this holds a secret (``hub.token``, ``api_key``); ``max_tokens`` does not."""

RENAMES = {"max_length": "max_tokens", "use_rope_modification": "use_custom_rope",
           "pruning_threshold": "attention_threshold"}
"""The guide's v1 -> v2 renames, applied in whatever table they appear."""
MOVES = {"generation.attention_threshold": "pruning.attention_threshold"}
"""Keys a v1 file kept in another section than TEMPO does."""
DROPPED = {"use_custom_rope": SHARED_POSITIONS}


def add_config_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="show, validate or migrate the settings",
                       description="Show the effective settings and where each value came from, validate them "
                                   "(every error at once), or migrate a v1 JSON configuration.")
    action = p.add_mutually_exclusive_group(required=True)
    action.add_argument("--show", action="store_true", help="every setting, its value and its source")
    action.add_argument("--validate", action="store_true", help="list every problem; exit 1 when there is one")
    action.add_argument("--migrate", type=Path, metavar="OLD.json", help="rename a v1 JSON file's keys to v2")
    p.add_argument("--set", action="append", default=[], dest="set_values", metavar="SECTION.KEY=VALUE",
                   help="an argument-level value (repeatable), above environment and file")
    p.add_argument("--json", action="store_true", help="--show as JSON")
    p.add_argument("--output", type=Path, metavar="NEW", help="--migrate: write here (default: standard output)")
    p.add_argument("--to-toml", action="store_true", help="--migrate: write a settings.toml ([default.*] tables)")
    # The command reads the settings itself, so that --validate can report a file that does not load.
    p.set_defaults(handler=run_config, loads_settings=False)


def main(argv: list[str] | None = None) -> int:
    """``python -m tempo [--settings FILE] config ...`` on its own (``argv`` without the program name)."""
    parser = argparse.ArgumentParser(prog="python -m tempo")
    parser.add_argument("--settings", type=Path, help="a settings file to use instead of the project's")
    sub = parser.add_subparsers(dest="command", required=True)
    add_config_parser(sub)
    args = parser.parse_args(argv)
    return run_config(args)


def run_config(args: argparse.Namespace, settings: Any = None) -> int:
    """The handler; ``settings`` (already loaded by the main CLI, if it did) is not used."""
    try:
        if args.migrate is not None:
            return run_migrate(args)
        overrides = parse_set_values(args.set_values)
    except TempoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        loaded = read_settings(getattr(args, "settings", None), overrides)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1 if args.validate else 2
    if args.validate:
        return report_problems(loaded)
    show(loaded, as_json=args.json)
    for line in loaded.errors:
        print(f"error: {line}", file=sys.stderr)
    return 1 if loaded.errors else 0


def parse_set_values(values: list[str]) -> dict[str, Any]:
    overrides = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or "." not in key.strip() or not key.strip():
            raise TempoError(f"--set: expected SECTION.KEY=VALUE, got {item!r}")
        overrides[key.strip().lower()] = parse_value(value)
    return overrides


def report_problems(loaded: LoadedSettings) -> int:
    """``--validate``: every invalid value and unknown key or variable; exit 1 when there is any."""
    for line in loaded.notes:
        print(f"note: {line}")
    problems = loaded.errors + loaded.unknown
    for line in problems:
        print(f"error: {line}")
    if problems:
        print(f"{len(problems)} problem{'s' if len(problems) > 1 else ''} in the settings "
              f"({loaded.file}, profile {loaded.profile})")
        return 1
    print(f"settings OK ({loaded.file}, profile {loaded.profile})")
    return 0


def is_secret(key: str) -> bool:
    return bool(SECRET_NAME.search(key.rsplit(".", 1)[-1]))


def effective(loaded: LoadedSettings) -> dict[str, dict[str, Any]]:
    """dotted key -> {"value", "source"}, secrets masked."""
    values = flatten(loaded.raw.as_dict())
    rows = {}
    for key, value in values.items():
        if is_secret(key):
            value = "****" if value else ""
        rows[key] = {"value": value, "source": loaded.source(key)}
    return rows


def show(loaded: LoadedSettings, as_json: bool = False) -> None:
    rows = effective(loaded)
    if as_json:
        print(json.dumps({"file": str(loaded.file), "profile": loaded.profile, "settings": rows,
                          "errors": loaded.errors, "unknown": loaded.unknown, "notes": loaded.notes},
                         indent=2, default=str))
        return
    print(f"settings file: {loaded.file}  profile: {loaded.profile}")
    shown = {key: json.dumps(row["value"], default=str) for key, row in rows.items()}
    key_width = max(map(len, rows), default=0)
    value_width = min(max(map(len, shown.values()), default=0), 40)
    for key, row in rows.items():
        print(f"{key:<{key_width}}  {shown[key]:<{value_width}}  {row['source']}")
    for line in loaded.unknown + loaded.notes:
        print(f"warning: {line}")


# ---- --migrate ----

def migrate(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A v1 configuration in v2 names, and one report line per change."""
    report: list[str] = []
    new = _rename(data, "", report)
    for old, target in MOVES.items():
        section, key = old.split(".")
        if key in new.get(section, {}):
            value = new[section].pop(key)
            to_section, to_key = target.split(".")
            if to_key in new.setdefault(to_section, {}):
                report.append(f"dropped {old} = {json.dumps(value)}: {target} is set as well")
            else:
                new[to_section][to_key] = value
                report.append(f"moved {old} -> {target}")
    _drop(new, "", report)
    return new, report


def _rename(table: dict[str, Any], prefix: str, report: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            value = _rename(value, f"{prefix}{key}.", report)
        if key in RENAMES:
            new_key = RENAMES[key]
            if new_key in table:
                report.append(f"dropped {prefix}{key} = {json.dumps(value)}: {prefix}{new_key} is set as well")
                continue
            report.append(f"renamed {prefix}{key} -> {prefix}{new_key}")
            key = new_key
        out[key] = value
    return out


def _drop(table: dict[str, Any], prefix: str, report: list[str]) -> None:
    for key in list(table):
        if isinstance(table[key], dict):
            _drop(table[key], f"{prefix}{key}.", report)
        elif key in DROPPED:
            report.append(f"dropped {prefix}{key} = {json.dumps(table.pop(key))}: {DROPPED[key]}")


def _drop_nulls(table: dict[str, Any], prefix: str, report: list[str]) -> dict[str, Any]:
    out = {}
    for key, value in table.items():
        if value is None:
            report.append(f"left out {prefix}{key} = null: TOML has no null, so the default applies")
        elif isinstance(value, dict):
            out[key] = _drop_nulls(value, f"{prefix}{key}.", report)
        else:
            out[key] = value
    return out


def run_migrate(args: argparse.Namespace) -> int:
    try:
        data = json.loads(args.migrate.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TempoError(f"--migrate: cannot read {args.migrate}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise TempoError(f"--migrate: {args.migrate} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise TempoError(f"--migrate: {args.migrate} must hold a JSON object of sections")
    new, report = migrate(data)
    if args.to_toml:
        new = _drop_nulls(new, "", report)
        text = toml_text({"default": new})
    else:
        text = json.dumps(new, indent=2) + "\n"
    to_stdout = args.output is None
    out = sys.stderr if to_stdout else sys.stdout
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    for line in report or ["nothing to rename"]:
        print(line, file=out)
    for line in _problems_of(text, ".toml" if args.to_toml else ".json"):
        print(f"warning: the migrated settings: {line}", file=out)
    return 0


def _problems_of(text: str, suffix: str) -> list[str]:
    """What ``config --validate`` would say of the migrated file (under the current environment)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"migrated{suffix}"
        path.write_text(text, encoding="utf-8")
        try:
            loaded = read_settings(path)
        except SettingsError as exc:
            return [str(exc)]
    return [line.replace(str(path), "the migrated file") for line in loaded.errors + loaded.unknown]
