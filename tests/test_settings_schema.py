"""Typed settings: each key declared once (tempo/settings/schema.py), settings.toml agrees, code reads attributes."""
import dataclasses
import os
import re
from pathlib import Path

import pytest

from tempo.errors import SettingsError
from tempo.request import FIELDS
from tempo.settings import Settings, load_settings, read_settings, shipped_defaults
from tempo.settings.env_names import ALIASES
from tempo.settings.rules import REJECTED, SECRET_KEYS, flatten
from tempo.settings.schema import declared

PACKAGE = Path(__file__).resolve().parents[1] / "tempo"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in list(os.environ):
        if name.startswith("TEMPO_"):
            monkeypatch.delenv(name)


def expected_default_tables() -> dict:
    """What settings.toml's [default] tables must hold: the declared defaults, the one accepted value of
    each rejected key, and each alias showing its target's default."""
    keys = {k: list(v) if isinstance(v, tuple) else v for k, v in flatten(Settings().as_dict()).items()
            if k not in SECRET_KEYS}
    keys.update({key: accepted for key, accepted, _ in REJECTED})
    keys.update({alias.name: alias.from_target(keys[alias.target]) for alias in ALIASES})
    return keys


def test_settings_toml_defaults_equal_the_declaration():
    shipped, declared_keys = flatten(shipped_defaults()), expected_default_tables()
    assert sorted(shipped) == sorted(declared_keys)  # same keys: settings.toml names every key
    for key, value in declared_keys.items():
        assert shipped[key] == value and type(shipped[key]) in (type(value), int), key  # 300 for 300.0


def test_load_returns_frozen_typed_sections():
    settings = load_settings()
    assert isinstance(settings, Settings) and settings == Settings.defaults()  # no layer above the defaults
    assert settings.app.max_batch_size == 16 and settings.api.request_timeout == 300.0
    assert isinstance(settings.api.request_timeout, float) and settings.api.cors_origins == ("*",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.app.max_batch_size = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.app = settings.app  # type: ignore[misc]


def test_request_sections_come_from_the_request_declaration():
    defaults = Settings.defaults()
    for spec in FIELDS.values():
        if spec.section:
            assert getattr(getattr(defaults, spec.section), spec.key) == spec.default, spec.name
    assert defaults.generation.max_tokens_limit == 1024 and defaults.mcts.max_depth == 32


def test_rejected_keys_and_aliases_are_no_attributes():
    defaults = Settings.defaults()
    for key in [k for k, _, _ in REJECTED] + [alias.name for alias in ALIASES]:
        section, name = key.split(".")
        assert not hasattr(getattr(defaults, section, None), name), key
    assert load_settings(overrides={"performance.batch_size": 5}).app.max_batch_size == 5  # resolved at load


@pytest.mark.parametrize("key,value,message", [
    ("app.max_batch_size", 0, "app.max_batch_size must be in [1, 256], got 0"),
    ("app.stream_interval", 11.0, "app.stream_interval must be in [0.0, 10.0], got 11.0"),
    ("api.request_timeout", 0, "api.request_timeout must be > 0, got 0"),
    ("api.host", "", "api.host must be a host name"),
    ("model.device", "tpu", "model.device must be auto, cpu, cuda, cuda:N or mps, got tpu"),
    ("logging.log_level", "LOUD", "logging.log_level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ("cache.prompt_cache_size", -1, "cache.prompt_cache_size must be an integer >= 0 (entries), got -1"),
    ("generation.max_tokens_limit", 0, "generation.max_tokens_limit must be >= 1, got 0"),
    ("mcts.max_simulations", 0, "mcts.max_simulations must be >= 1, got 0"),
    ("debug.module_debug.api", "on", "debug.module_debug.api must be true or false"),
    ("train.learning_rate", 0, "train.learning_rate must be > 0, got 0"),
])
def test_declared_rules_make_the_validators(key, value, message):
    assert any(message in error for error in read_settings(overrides={key: value}).errors), message
    with pytest.raises(SettingsError, match=re.escape(message)):
        load_settings(overrides={key: value})


def test_every_declared_key_with_a_rule_has_a_validator():
    from tempo.settings.rules import VALIDATORS

    validated = {name for validator in VALIDATORS for name in validator.names}
    ruled = {key for key, f in declared().items() if f.metadata.get("rule") is not None}
    assert ruled <= validated


def test_replace_gives_a_changed_copy():
    settings = Settings.defaults()
    changed = settings.replace({"app.stream_interval": 0.0, "debug.module_debug.api": True})
    assert changed.app.stream_interval == 0.0 and changed.debug.module_debug.api is True
    assert settings.app.stream_interval == 0.25  # the original is unchanged
    with pytest.raises(KeyError):
        settings.replace({"app.no_such_key": 1})


def test_only_the_settings_package_reads_dynaconf_and_code_reads_attributes():
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        inside = path.relative_to(PACKAGE).parts[0] == "settings"
        assert inside or not re.search(r"^\s*(from|import) dynaconf", text, re.M), path
        assert inside or not re.search(r"settings\.get\(|section\.get\(", text), path
