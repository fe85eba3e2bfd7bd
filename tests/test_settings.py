"""Settings: settings.toml defaults, TEMPO_ overrides, profiles, validators, precedence."""
import pytest

from tempo.settings.loader import load_settings
from tempo.errors import SettingsError
from tempo.request import GenerationRequest, build_request


def test_defaults_from_settings_toml():
    settings = load_settings()
    assert settings.generation.selection_threshold == 0.1
    assert settings.generation.next_logits_mode == "mixture"
    assert settings.model.trust_remote_code is False
    assert settings.logging.log_level == "INFO"


def test_precedence_argument_over_environment_over_file(monkeypatch):
    monkeypatch.setenv("TEMPO_GENERATION__TOP_K", "7")
    settings = load_settings()
    assert build_request("x", settings).top_k == 7  # environment over the file's 50
    assert build_request("x", settings, top_k=3).top_k == 3  # argument over environment
    assert build_request("x", settings, top_k=None).top_k == 7  # None = not given


def test_code_default_when_no_setting(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text('[default.model]\nmodel_id = "m"\n[default.generation]\ntop_k = 9\n')
    settings = load_settings(path)
    request = build_request("x", settings)
    assert request.top_k == 9
    assert request.top_p == GenerationRequest.__dataclass_fields__["top_p"].default


def test_profiles(monkeypatch):
    monkeypatch.setenv("TEMPO_PROFILE", "production")
    assert load_settings().logging.log_level == "WARNING"
    monkeypatch.setenv("TEMPO_PROFILE", "development")
    settings = load_settings()
    assert settings.logging.log_level == "DEBUG" and settings.generation.top_k == 50  # inherits [default]


@pytest.mark.parametrize("key,value,message", [
    ("GENERATION__SELECTION_THRESHOLD", "1.5", "generation.selection_threshold must be in [0.0, 1.0], got 1.5"),
    ("GENERATION__NEXT_LOGITS_MODE", "avg", "generation.next_logits_mode must be one of mixture, top, last"),
    ("GENERATION__MAX_TOKENS", "2000", "generation.max_tokens must be in [1, 1024]"),
    ("LOGGING__LOG_LEVEL", "LOUD", "logging.log_level must be one of DEBUG"),
])
def test_validators_name_key_and_range(monkeypatch, key, value, message):
    monkeypatch.setenv(f"TEMPO_{key}", value)
    with pytest.raises(SettingsError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        load_settings()


def test_file_logging_writes_to_log_dir(monkeypatch, tmp_path):
    import logging

    from tempo.settings.logs import configure_logging

    monkeypatch.setenv("TEMPO_LOGGING__ENABLE_FILE_LOGGING", "true")
    monkeypatch.setenv("TEMPO_LOGGING__LOG_DIR", str(tmp_path / "logs"))
    configure_logging(load_settings())
    logging.getLogger("tempo.test").info("hello file")
    for handler in logging.getLogger("tempo").handlers:
        handler.flush()
    assert "hello file" in (tmp_path / "logs" / "tempo.log").read_text()
    monkeypatch.delenv("TEMPO_LOGGING__ENABLE_FILE_LOGGING")
    configure_logging(load_settings())
