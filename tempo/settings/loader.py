"""Settings: dynaconf over ``settings.toml``, ``.secrets.toml`` and ``TEMPO_`` variables.

Precedence, highest first (``docs/configuration.md``):

1. argument: a request / CLI argument, or ``--set section.key=value`` of ``python -m tempo config``;
2. environment: ``TEMPO_SECTION__KEY`` (dynaconf's spelling) or ``TEMPO_SECTION_KEY`` (the
   configuration guide's, :mod:`tempo.settings.env_names`); when both name one key the ``__`` one wins;
3. file: the settings file (``--settings`` > ``TEMPO_CONFIG_FILE`` > the project's
   ``settings.toml``) -- its profile table (``TEMPO_PROFILE``), then its ``[default]`` tables --
   and ``.secrets.toml`` above it;
4. default: the ``[default]`` tables of the project's ``settings.toml``, which ship with the code
   and name every key (a file given by ``--settings`` / ``TEMPO_CONFIG_FILE`` is laid over them).

The files are layered here (tables merge, lists and values replace); dynaconf reads the
environment on top of them, and its validators run when settings load, so a bad value stops
the program at start with a message that names the key and the allowed range. Code gets the
result as a frozen :class:`~tempo.settings.schema.Settings` (``settings.app.max_batch_size``),
each key declared once in :mod:`tempo.settings.schema`; dynaconf stays inside this package.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from dynaconf import Dynaconf
from dynaconf.utils.parse_conf import parse_conf_data

from tempo.settings.rules import (  # noqa: F401 -- the value lists are part of this module's interface
    COMPLETE_PRUNING_MODES, DTYPE_NAMES, LOG_LEVELS, MODES, MODULE_DEBUG_NAMES, NEXT_LOGITS_MODES, REJECTED,
    SCHEDULES, SECRET_KEYS, VALIDATORS, flatten, validation_errors,
)
from tempo.settings.schema import Settings
from tempo.settings.env_names import ALIAS_BY_NAME, ALIASES, ENV_ONLY, PREFIX, is_single_underscore, resolve
from tempo.errors import SettingsError

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROJECT_SETTINGS = PROJECT_ROOT / "settings.toml"
SECRETS_FILE = PROJECT_ROOT / ".secrets.toml"
PROFILES = ("development", "production", "space", "testing")

RANKS = {"default": 0, "file": 1, "environment": 2, "argument": 3}


@dataclass
class LoadedSettings:
    """Settings with what :func:`read_settings` learnt on the way: each key's source, the problems."""

    raw: Dynaconf
    """Every key as read, aliases and keys accepted at one value included (``config --show``)."""
    profile: str
    file: Path
    sources: dict[str, str] = field(default_factory=dict)
    """dotted key -> ``default`` | ``file PATH [table]`` | ``environment VARIABLE`` | ``argument --set``."""
    errors: list[str] = field(default_factory=list)
    """Invalid values: loading fails on these."""
    unknown: list[str] = field(default_factory=list)
    """Keys and variables that name no setting: a warning at load, an error for ``config --validate``."""
    notes: list[str] = field(default_factory=list)
    """Values overridden by another name of the same setting (aliases)."""
    settings: Settings = field(default_factory=Settings)
    """The typed settings that code reads (meaningful when ``errors`` is empty)."""

    def source(self, key: str) -> str:
        """Where a dotted key's value came from (the nearest set parent for keys inside a table)."""
        parts = key.split(".")
        for end in range(len(parts), 0, -1):
            if ".".join(parts[:end]) in self.sources:
                return self.sources[".".join(parts[:end])]
        return "default"


def settings_path(settings_file: str | Path | None = None) -> Path:
    """The settings file: the argument (``--settings``) > ``TEMPO_CONFIG_FILE`` > the project's."""
    chosen = settings_file or os.environ.get("TEMPO_CONFIG_FILE") or PROJECT_SETTINGS
    return Path(chosen).expanduser().resolve()


def active_profile() -> str:
    """``TEMPO_PROFILE`` (empty or ``default``: no profile table); an unknown name is an error.
    Unset on a Hugging Face Space (which sets ``SPACE_ID``), the profile is ``space``."""
    profile = os.environ.get("TEMPO_PROFILE", "").strip().lower()
    if not profile and "TEMPO_PROFILE" not in os.environ and os.environ.get("SPACE_ID"):
        profile = "space"
    profile = profile or "default"
    if profile != "default" and profile not in PROFILES:
        raise SettingsError(f"TEMPO_PROFILE must be one of {', '.join(PROFILES)} (or unset), got {profile!r}")
    return profile


def shipped_defaults() -> dict[str, Any]:
    """The ``[default]`` tables of the project's settings.toml: every known key with its default."""
    return _read_file(PROJECT_SETTINGS).get("default", {})


def read_settings(settings_file: str | Path | None = None, overrides: Mapping[str, Any] | None = None
                  ) -> LoadedSettings:
    """Load every layer and run every validator, collecting all problems instead of raising on them.

    ``overrides`` are ``{"section.key": value}`` arguments, the highest layer. Raises SettingsError
    only when nothing can be loaded (unknown profile, missing or unreadable file).
    """
    profile = active_profile()
    path = settings_path(settings_file)
    if not path.is_file():
        raise SettingsError(f"settings file {path} not found (--settings / TEMPO_CONFIG_FILE)")
    defaults = shipped_defaults()
    merged = copy.deepcopy(defaults)
    sources = {key: "default" for key in flatten(defaults)}
    tables = [(path, "default"), (path, profile), (SECRETS_FILE, "default"), (SECRETS_FILE, profile)]
    for file, table in dict.fromkeys(tables):  # the project's [default] is the defaults themselves
        if file.is_file() and (file, table) != (PROJECT_SETTINGS, "default"):
            layer = _read_file(file).get(table, {})
            _merge(merged, layer)
            sources.update({key: f"file {file} [{table}]" for key, value in flatten(layer).items()
                            if value != {} or key in sources})  # an empty table sets nothing but max_memory
    settings = Dynaconf(envvar_prefix="TEMPO", environments=False, merge_enabled=False,
                        **{section.upper(): value for section, value in merged.items()})
    loaded = LoadedSettings(raw=settings, profile=profile, file=path, sources=sources)
    environ = {name: value for name, value in os.environ.items() if name.startswith(PREFIX)}
    for name in environ:
        if "__" in name and not name.endswith("_FOR_DYNACONF"):
            loaded.sources[name[len(PREFIX):].lower().replace("__", ".")] = f"environment {name}"
        elif "__" not in name and name[len(PREFIX):].lower() not in defaults and name[len(PREFIX):] in settings:
            settings.unset(name[len(PREFIX):])  # dynaconf read TEMPO_MODEL_DEVICE as a key MODEL_DEVICE
    alias_inputs = _apply_single_underscore(loaded, environ, defaults)
    for key, value in (overrides or {}).items():
        key = key.lower()
        if key in ALIAS_BY_NAME:
            alias_inputs[key] = (value, "argument --set")
        else:
            settings.set(key, value)
            loaded.sources[key] = "argument --set"
    _resolve_aliases(loaded, alias_inputs)
    loaded.unknown += _unknown_keys(settings, defaults)
    loaded.errors += validation_errors(settings)
    loaded.settings = Settings.from_tables({str(k).lower(): v for k, v in settings.as_dict().items()})
    return loaded


def load_settings(settings_file: str | Path | None = None, overrides: Mapping[str, Any] | None = None
                  ) -> Settings:
    """Read the settings and validate them; raise SettingsError naming every bad key.

    Tests that need other values pass ``overrides`` (``{"app.stream_interval": 0.0}``), the highest
    layer, so they are validated like any other."""
    loaded = read_settings(settings_file, overrides)
    for problem in loaded.unknown + loaded.notes:
        log.warning("settings: %s", problem)
    if loaded.errors:
        raise SettingsError("invalid setting: " + "; ".join(loaded.errors))
    return loaded.settings


def parse_value(text: str) -> Any:
    """A value spelled as in a ``TEMPO_`` variable (``true``, ``42``, ``0.5``, ``["a"]``, else a string),
    parsed as dynaconf parses the environment (``config --set``)."""
    return parse_conf_data(text, tomlfy=True)


def toml_text(tables: Mapping[str, Any]) -> str:
    """Nested tables as TOML text (``config --migrate --to-toml``)."""
    from dynaconf.vendor import toml

    return toml.dumps(dict(tables))


@lru_cache(maxsize=1)
def default_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()


def _read_file(path: Path) -> dict[str, Any]:
    """A settings file as nested tables; a JSON file without a ``default`` table is all default."""
    try:
        if path.suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise SettingsError(f"{path}: a settings file must hold an object")
            data = data if "default" in data else {"default": data}
            return _drop_nulls(data)
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise SettingsError(f"{path}: not valid {path.suffix.lstrip('.').upper() or 'TOML'}: {exc}") from None
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read it: {exc.strerror}") from None


def _drop_nulls(table: Any) -> Any:
    """JSON null means "not set" (TOML has no null): such keys keep their default."""
    if isinstance(table, dict):
        return {key: _drop_nulls(value) for key, value in table.items() if value is not None}
    return table


def _merge(base: dict[str, Any], layer: Mapping[str, Any]) -> None:
    """Lay ``layer`` over ``base``: tables merge key by key; values and lists replace."""
    for key, value in layer.items():
        key = str(key).lower()
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)  # an empty table ([default.model] alone) changes nothing
        else:
            base[key] = copy.deepcopy(value)


def _apply_single_underscore(loaded: LoadedSettings, environ: Mapping[str, str], defaults: Mapping[str, Any]
                             ) -> dict[str, tuple[Any, str]]:
    """Set the keys the guide's ``TEMPO_SECTION_KEY`` variables name; return those that name an alias."""
    settings, alias_inputs = loaded.raw, {}
    for name in sorted(environ):
        if not is_single_underscore(name):
            continue
        key = resolve(name, defaults)
        if key is None:
            loaded.unknown.append(f"{name} names no setting (spell TEMPO_SECTION_KEY or TEMPO_SECTION__KEY with "
                                  f"a key of settings.toml)")
            continue
        value = parse_conf_data(environ[name], tomlfy=True, box_settings=settings)
        if key in ALIAS_BY_NAME or name in ENV_ONLY:
            alias_inputs.setdefault(key, (value, f"environment {name}"))
            continue
        if loaded.source(key).startswith("environment"):  # TEMPO_SECTION__KEY wins over TEMPO_SECTION_KEY
            loaded.notes.append(f"{name} is overridden by {loaded.source(key).split()[1]}")
            continue
        settings.set(key, value)
        loaded.sources[key] = f"environment {name}"
    return alias_inputs


def _resolve_aliases(loaded: LoadedSettings, inputs: dict[str, tuple[Any, str]]) -> None:
    """Carry each alias's value to its target when set at a higher level; then mirror targets into aliases."""
    settings = loaded.raw
    for alias in ALIASES:  # set in a file or as TEMPO_SECTION__ALIAS: read from the settings
        source = loaded.source(alias.name)
        if source != "default" and alias.name not in inputs:
            inputs[alias.name] = (settings.get(alias.name), source)
    specs = {**ALIAS_BY_NAME, **{alias.name: alias for alias in ENV_ONLY.values()}}
    for name, (value, source) in inputs.items():
        alias = specs[name]
        if not alias.accepts(value):
            loaded.errors.append(f"{name} ({alias.why}) must be {alias.kind_name}, got {value!r}")
            continue
        target_source = loaded.source(alias.target)
        new = alias.to_target(value, settings.get(alias.target))
        if RANKS[source.split()[0]] > RANKS[target_source.split()[0]]:
            settings.set(alias.target, new)
            loaded.sources[alias.target] = f"{source} (as {name})"
        elif new != settings.get(alias.target):
            loaded.notes.append(f"{name} = {value!r} ({source}) is overridden by {alias.target} ({target_source})")
    for alias in ALIASES:
        settings.set(alias.name, alias.from_target(settings.get(alias.target)))
        loaded.sources[alias.name] = f"alias of {alias.target}"


def _unknown_keys(settings: Dynaconf, defaults: Mapping[str, Any]) -> list[str]:
    known = set(flatten(defaults)) | set(SECRET_KEYS)
    unknown = []
    for key in flatten({str(k).lower(): v for k, v in settings.as_dict().items()}):
        parts = key.split(".")
        if not any(".".join(parts[:end]) in known for end in range(1, len(parts) + 1)):
            if not key.endswith("use_custom_rope") and not key.startswith("debug.module_debug."):  # errors
                unknown.append(f"{key} is not a setting of TEMPO (settings.toml names every key)")
    return unknown

