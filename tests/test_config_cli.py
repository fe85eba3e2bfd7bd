"""``python -m tempo config``: --show (values, sources, masked secrets), --validate (every error), --migrate."""
import json
import tomllib

import pytest

from tempo.cli.config import main
from helpers import run_cli

V1 = {
    "model": {"model_id": "assets/models/tempo-tiny-code", "device": None, "use_rope_modification": True},
    "generation": {"max_length": 200, "temperature": 0.7, "pruning_threshold": 0.05,
                   "use_retroactive_pruning": True},
    "pruning": {"pruning_threshold": 0.02},
    "api": {"port": 8000},
}


pytestmark = pytest.mark.usefixtures("clean_tempo_env")  # no TEMPO_ variable of the caller's shell


def test_validate_ok(capsys):
    assert main(["config", "--validate"]) == 0
    assert "settings OK" in capsys.readouterr().out


def test_validate_lists_every_error(tmp_path, monkeypatch, capsys):
    broken = tmp_path / "broken.toml"
    broken.write_text('[default.generation]\ntop_p = 2.0\nbeam_width = 4\ntemprature = 0.5\n'
                      '[default.model]\nquantization = "3bit"\n[default.experimental]\nenable_flash_attention = true\n')
    monkeypatch.setenv("TEMPO_API_PROT", "1")
    assert main(["--settings", str(broken), "config", "--validate"]) == 1
    out = capsys.readouterr().out
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(errors) == 6, out
    for expected in ("generation.top_p must be in [0.0, 1.0], got 2.0", "generation.beam_width = 4",
                     "model.quantization must be one of", "experimental.enable_flash_attention",
                     "generation.temprature is not a setting", "TEMPO_API_PROT names no setting"):
        assert expected in out


def test_validate_unknown_profile_exits_1(monkeypatch, capsys):
    monkeypatch.setenv("TEMPO_PROFILE", "staging")
    assert main(["config", "--validate"]) == 1
    assert "TEMPO_PROFILE must be one of development, production, space, testing" in capsys.readouterr().err


def test_show_masks_secrets_and_names_sources(tmp_path, monkeypatch, capsys):
    file = tmp_path / "s.toml"
    file.write_text("[default.generation]\ntop_k = 7\n[production.generation]\ntop_p = 0.5\n")
    monkeypatch.setenv("TEMPO_PROFILE", "production")
    monkeypatch.setenv("TEMPO_HUB__TOKEN", "hf_very_secret")
    monkeypatch.setenv("TEMPO_API_PORT", "8081")
    assert main(["--settings", str(file), "config", "--show", "--set", "pruning.attention_threshold=0.3"]) == 0
    out = capsys.readouterr().out
    assert "hf_very_secret" not in out
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert '"****"' in rows["hub.token"] and rows["hub.token"].endswith("environment TEMPO_HUB__TOKEN")
    assert rows["generation.top_k"].endswith(f"file {file} [default]")
    assert rows["generation.top_p"].endswith(f"file {file} [production]")
    assert rows["api.port"].endswith("environment TEMPO_API_PORT")
    assert rows["pruning.attention_threshold"].endswith("argument --set")
    assert rows["generation.temperature"].endswith("default")
    assert "generation.max_tokens" in rows["generation.max_length"]  # an alias names its target
    assert rows["generation.max_tokens"].split()[1] == "100"  # the secret mask spares max_tokens


def test_show_json(monkeypatch, capsys):
    monkeypatch.setenv("TEMPO_HUB__TOKEN", "hf_very_secret")
    assert main(["config", "--show", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["profile"] == "default"
    assert shown["settings"]["hub.token"] == {"value": "****", "source": "environment TEMPO_HUB__TOKEN"}
    assert shown["settings"]["debug.module_debug.api"] == {"value": False, "source": "default"}


def test_bad_set_is_a_usage_error(capsys):
    assert main(["config", "--show", "--set", "top_k"]) == 2
    assert capsys.readouterr().err.strip() == "error: --set: expected SECTION.KEY=VALUE, got 'top_k'"


def test_migrate_v1_json(tmp_path, monkeypatch, capsys):
    old, new = tmp_path / "config-v1.json", tmp_path / "config-v2.json"
    old.write_text(json.dumps(V1))
    assert main(["config", "--migrate", str(old), "--output", str(new)]) == 0
    out = capsys.readouterr().out
    migrated = json.loads(new.read_text())
    assert migrated["generation"]["max_tokens"] == 200 and "max_length" not in migrated["generation"]
    assert migrated["pruning"]["attention_threshold"] == 0.02  # the pruning section's own value stays
    assert "attention_threshold" not in migrated["generation"]
    assert "use_custom_rope" not in migrated["model"] and "use_rope_modification" not in migrated["model"]
    for line in ("renamed generation.max_length -> generation.max_tokens",
                 "renamed model.use_rope_modification -> model.use_custom_rope",
                 "renamed pruning.pruning_threshold -> pruning.attention_threshold",
                 "dropped generation.attention_threshold = 0.05: pruning.attention_threshold is set as well",
                 "dropped model.use_custom_rope = true: TEMPO gives the tokens of one parallel set one position"):
        assert line in out
    monkeypatch.setenv("TEMPO_CONFIG_FILE", str(new))  # the migrated file loads as it is
    assert main(["config", "--validate"]) == 0


def test_migrate_to_toml(tmp_path, capsys):
    old, new = tmp_path / "config-v1.json", tmp_path / "settings.toml"
    old.write_text(json.dumps({"generation": {"max_length": 64, "pruning_threshold": 0.05}, "model": {"device": None}}))
    assert main(["config", "--migrate", str(old), "--to-toml", "--output", str(new)]) == 0
    written = tomllib.loads(new.read_text())
    assert written == {"default": {"generation": {"max_tokens": 64}, "pruning": {"attention_threshold": 0.05},
                                   "model": {}}}
    out = capsys.readouterr().out
    assert "moved generation.attention_threshold -> pruning.attention_threshold" in out
    assert "left out model.device = null" in out
    assert main(["--settings", str(new), "config", "--validate"]) == 0


def test_migrate_reports_what_the_new_file_still_lacks(tmp_path, capsys):
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"experimental": {"enable_flash_attention": True}}))
    assert main(["config", "--migrate", str(old)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"experimental": {"enable_flash_attention": True}}  # the file on stdout
    assert "nothing to rename" in captured.err and "take no arbitrary 4D mask" in captured.err


def test_migrate_missing_file_is_a_usage_error(tmp_path, capsys):
    assert main(["config", "--migrate", str(tmp_path / "nope.json")]) == 2
    assert capsys.readouterr().err.startswith("error: --migrate: cannot read")


@pytest.mark.subprocess
def test_python_m_tempo_config():
    done = run_cli("config", "--validate", clean=True)
    assert done.returncode == 0 and "settings OK" in done.stdout, done.stderr


def test_full_cli_validate_lists_every_error_of_a_broken_file(tmp_path, capsys):
    """Through ``python -m tempo``, whose other commands load the settings first: config reads them itself."""
    from tempo.cli.main import main as tempo_main

    broken = tmp_path / "broken.toml"
    broken.write_text('[default.generation]\ntop_p = 2.0\nbeam_width = 4\n[default.model]\nquantization = "3bit"\n')
    assert tempo_main(["--settings", str(broken), "config", "--validate"]) == 1
    errors = [line for line in capsys.readouterr().out.splitlines() if line.startswith("error: ")]
    assert len(errors) == 3, errors
