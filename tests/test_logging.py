"""Logging: rotation, the per-module debug switches, the device line, and the CLI's --debug-mode,
--profile and --dry-run. Real handlers, real files, the tiny models of conftest.py."""
import json
import logging
import pstats
import time
from pathlib import Path

import pytest

from tempo.settings.loader import load_settings
from tempo.errors import SettingsError
from tempo.settings.logs import LOG_FILE, MODULE_LOGGERS, ROOT, configure_logging
from tempo.models.loading import load_model
from helpers import run_cli

PROMPT = "the cat sat on the"
SETS = {"selection_threshold": 0.05, "temperature": 1.0, "max_tokens": 8, "min_steps": 8}
"""Requests whose sets often hold several tokens, so pruning has sets to judge."""


class Records(logging.Handler):
    """Keeps every record it is handed."""

    def __init__(self):
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)

    def debug_loggers(self) -> set[str]:
        return {r.name for r in self.records if r.levelno == logging.DEBUG}


def configure(monkeypatch, debug_mode=False, **env) -> Records:
    """Configure logging from the settings with ``TEMPO_<KEY>`` variables (no console, no file) and
    attach a handler that records what the ``tempo`` logger passes on."""
    monkeypatch.setenv("TEMPO_LOGGING__CONSOLE_LOGGING", "false")
    monkeypatch.setenv("TEMPO_LOGGING__ENABLE_FILE_LOGGING", "false")
    for key, value in env.items():
        monkeypatch.setenv(f"TEMPO_{key}", value)
    configure_logging(load_settings(), debug_mode=debug_mode)
    records = Records()
    logging.getLogger(ROOT).addHandler(records)
    return records


def test_file_rotates_at_the_configured_size_and_keeps_backup_count(monkeypatch, tmp_path):
    log_dir = tmp_path / "logs"
    configure(monkeypatch, LOGGING__ENABLE_FILE_LOGGING="true", LOGGING__LOG_DIR=str(log_dir),
              LOGGING__MAX_LOG_SIZE_MB="1", LOGGING__BACKUP_COUNT="2")
    line = "x" * 10_000
    log = logging.getLogger("tempo.test")
    for i in range(450):  # ~4.5 MB: three rotations past the two backups
        log.info("record %d: %s", i, line)
    for handler in logging.getLogger(ROOT).handlers:
        handler.flush()
    files = sorted(p.name for p in log_dir.iterdir())
    assert files == [LOG_FILE, f"{LOG_FILE}.1", f"{LOG_FILE}.2"]
    sizes = [(log_dir / name).stat().st_size for name in files]
    assert all(size <= 1024 * 1024 for size in sizes)
    assert all(size > 900 * 1024 for size in sizes[1:])  # the backups were full when they rotated
    assert "record 449:" in (log_dir / LOG_FILE).read_text()
    assert "record 0:" not in "".join((log_dir / name).read_text() for name in files)  # the oldest left


def test_configuring_again_replaces_and_closes_the_handlers(monkeypatch, tmp_path):
    configure(monkeypatch, LOGGING__ENABLE_FILE_LOGGING="true", LOGGING__LOG_DIR=str(tmp_path),
              LOGGING__CONSOLE_LOGGING="true")
    logger = logging.getLogger(ROOT)
    first = [h for h in logger.handlers if not isinstance(h, Records)]
    assert len(first) == 2 and all(h.level == logging.NOTSET for h in first)
    configure_logging(load_settings())
    assert len(logger.handlers) == 2 and not set(first) & set(logger.handlers)
    file_handler = next(h for h in first if isinstance(h, logging.FileHandler))
    assert file_handler.stream is None  # closed


def test_console_lines_follow_the_current_stderr(monkeypatch, capsys):
    configure(monkeypatch, LOGGING__CONSOLE_LOGGING="true")
    logging.getLogger("tempo.test").info("to stderr")
    logging.getLogger("tempo.test").debug("not at INFO")
    err = capsys.readouterr().err
    assert " - tempo.test - INFO - to stderr" in err and "not at INFO" not in err


@pytest.mark.slow
def test_no_switch_no_debug_lines(monkeypatch, engines):
    records = configure(monkeypatch)
    engines["llama"].generate(PROMPT, use_retroactive_pruning=True, **SETS)
    assert records.debug_loggers() == set()
    assert logging.getLogger(ROOT).level == logging.INFO


@pytest.mark.slow
@pytest.mark.parametrize("switch,expected", [
    ("retroactive_pruner", {"tempo.engine.pruning"}),
    ("token_selector", {"tempo.engine.sampling"}),
    ("rope_modifier", {"tempo.engine.layout"}),
])
def test_a_module_switch_turns_on_exactly_that_modules_debug_lines(monkeypatch, engines, switch, expected):
    records = configure(monkeypatch, **{f"DEBUG__MODULE_DEBUG__{switch.upper()}": "true"})
    result = engines["llama"].generate(PROMPT, use_retroactive_pruning=True, **SETS)
    assert any(len(step.candidates) > 1 for step in result.steps)
    assert records.debug_loggers() == expected
    assert logging.getLogger(ROOT).level == logging.INFO  # the others stay at log_level
    if switch == "retroactive_pruner":
        assert any("judges tokens" in r.getMessage() for r in records.records)


@pytest.mark.slow
def test_global_debug_turns_on_every_module(monkeypatch, engines, tiny_model_dir):
    records = configure(monkeypatch, DEBUG__GLOBAL_DEBUG="true")
    load_model(str(tiny_model_dir["llama"]))
    engine = engines["llama"]
    engine.generate(PROMPT, use_retroactive_pruning=True, **SETS)
    engine.generate(PROMPT, mode="mcts", max_tokens=3, mcts_simulations=4)
    assert {"tempo.models.loading", "tempo.engine.row", "tempo.engine.attention", "tempo.engine.layout",
            "tempo.engine.sampling", "tempo.engine.pruning", "tempo.engine.mcts", "tempo.engine.batch",
            "tempo.engine.adapter", "tempo.engine.runner", "tempo.timing"} <= records.debug_loggers()


def test_debug_mode_argument_acts_as_global_debug(monkeypatch, engines):
    records = configure(monkeypatch, debug_mode=True)
    engines["qwen2"].generate(PROMPT, **SETS)
    assert {"tempo.engine.row", "tempo.engine.sampling"} <= records.debug_loggers()


def test_every_switch_has_a_logger_that_speaks(monkeypatch, engines, tiny_model_dir):
    """For each switch of the guide, some logger it turns on writes a DEBUG line during a CLI run, a
    generation (TEMPO with pruning, MCTS), the scheduler and a REST request."""
    from fastapi.testclient import TestClient

    from tempo.serve.rest import create_app
    from tempo.cli.main import main

    records = Records()
    names = {name for loggers in MODULE_LOGGERS.values() for name in loggers}
    for name in names:  # on the loggers themselves: main() below replaces the tempo logger's handlers
        logging.getLogger(name).addHandler(records)
    try:
        configure(monkeypatch, DEBUG__GLOBAL_DEBUG="true")
        assert main(["--debug-mode", "--dry-run", "generate", "--model", str(tiny_model_dir["llama"]),
                     "--prompt", PROMPT]) == 0
        engine = engines["llama"]
        engine.generate(PROMPT, use_retroactive_pruning=True, **SETS)
        engine.generate(PROMPT, mode="mcts", max_tokens=2, mcts_simulations=3)
        settings = load_settings()
        with TestClient(create_app(engine, settings)) as client:
            reply = client.post("/generate", json={"prompt": PROMPT, "max_tokens": 3})
            assert reply.status_code == 200, reply.text
            client.app.state.scheduler.close()
    finally:
        for name in names:
            logging.getLogger(name).removeHandler(records)
    spoke = records.debug_loggers()
    silent = {switch: loggers for switch, loggers in MODULE_LOGGERS.items() if not spoke & set(loggers)}
    # cache_manager speaks when a prompt cache is on (tempo/engine/prompt_cache.py, tested there).
    assert set(silent) <= {"cache_manager"}, silent


@pytest.mark.parametrize("key,value,message", [
    ("DEBUG__MODULE_DEBUG__TOKEN_GENERATR", "true", "debug.module_debug.token_generatr is not a module"),
    ("DEBUG__MODULE_DEBUG__API", "'yes'", "debug.module_debug.api must be true or false"),
    ("DEBUG__GLOBAL_DEBUG", "'on'", "debug.global_debug must be true or false"),
])
def test_bad_debug_settings_name_the_key(monkeypatch, key, value, message):
    with pytest.raises(SettingsError, match=message):
        configure(monkeypatch, **{key: value})


def test_device_choice_is_logged(monkeypatch, tiny_model_dir):
    records = configure(monkeypatch)
    load_model(str(tiny_model_dir["llama"]), device="cpu")
    load_model(str(tiny_model_dir["llama"]))
    lines = [r.getMessage() for r in records.records if r.name == "tempo.models.loading" and r.levelno == logging.INFO]
    assert "Using CPU (model.device = cpu)" in lines
    import torch

    if torch.cuda.is_available():
        assert any(line.startswith("Using CUDA device 0 (") for line in lines)
    else:
        assert any(line.startswith("Using ") and "CUDA not available" in line for line in lines)


# --- the command line -------------------------------------------------------------------------------------


def test_dry_run_loads_the_model_and_generates_nothing(monkeypatch, tiny_model_dir, capsys):
    from tempo.cli.main import main
    from tempo.engine.adapter import ModelAdapter

    calls = []
    monkeypatch.setattr(ModelAdapter, "forward", lambda self, *a, **k: calls.append(1))
    model = str(tiny_model_dir["llama"])
    assert main(["--dry-run", "generate", "--model", model, "--prompt", PROMPT, "--max-tokens", "4"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"dry run: model {model} on cpu (float32, ") and "1 request validated" in out
    assert out.count("\n") == 1 and PROMPT not in out.replace(model, "")
    assert main(["compare", "--dry-run", "--model", model, "--prompt", PROMPT]) == 0
    assert "4 requests validated" in capsys.readouterr().out
    assert calls == []  # no forward: nothing was generated


@pytest.mark.slow
@pytest.mark.subprocess
def test_dry_run_still_rejects_bad_requests_and_other_commands(tiny_model_dir):
    done = run_cli("--dry-run", "generate", "--model", str(tiny_model_dir["llama"]), "--prompt", PROMPT,
               "--selection-threshold", "2")
    assert done.returncode == 2 and "selection_threshold" in done.stderr and done.stdout == ""
    done = run_cli("--dry-run", "generate", "--model", str(tiny_model_dir["llama"]), "--prompt", PROMPT,
               "--use-retroactive-pruning", "--num-layers-to-use", "3")  # a rule that needs the model: 2 layers
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines()[-1] == \
        "error: num_layers_to_use: must be in [0, 2] for this model (0 = all 2 layers), got 3"
    done = run_cli("--dry-run", "train")
    assert done.returncode == 2 and done.stderr.strip().startswith("error: --dry-run: the train command")


@pytest.mark.slow
@pytest.mark.subprocess
def test_debug_mode_flag_writes_debug_lines_to_stderr(tiny_model_dir):
    done = run_cli("--debug-mode", "generate", "--model", str(tiny_model_dir["llama"]), "--prompt", PROMPT,
               "--max-tokens", "3", "--min-steps", "3", "--json")
    assert done.returncode == 0, done.stderr
    debug = [line for line in done.stderr.splitlines() if " - DEBUG - " in line]
    assert any(" - tempo.engine.sampling - " in line for line in debug)
    assert any(" - tempo.cli - DEBUG - request 0 validated" in line for line in debug)
    assert len(json.loads(done.stdout)["steps"]) == 3
    quiet = run_cli("generate", "--model", str(tiny_model_dir["llama"]), "--prompt", PROMPT, "--max-tokens", "3")
    assert " - DEBUG - " not in quiet.stderr


@pytest.mark.slow
@pytest.mark.subprocess
def test_profile_writes_readable_stats(tiny_model_dir, tmp_path):
    out = tmp_path / "run.prof"
    done = run_cli("--profile", "--profile-output", str(out), "generate", "--model", str(tiny_model_dir["llama"]),
               "--prompt", PROMPT, "--max-tokens", "3")
    assert done.returncode == 0, done.stderr
    assert f"profile of generate written to {out}" in done.stderr
    functions = {(Path(file).name, name) for file, _, name in pstats.Stats(str(out)).stats}
    assert ("generate.py", "run_generate") in functions and ("runner.py", "run") in functions


@pytest.mark.slow
@pytest.mark.subprocess
def test_profiling_setting_writes_to_profile_output_dir(tiny_model_dir, tmp_path):
    folder = tmp_path / "profiles"
    start = time.time()
    done = run_cli("generate", "--model", str(tiny_model_dir["llama"]), "--prompt", PROMPT, "--max-tokens", "2",
               env={"TEMPO_PERFORMANCE__ENABLE_PROFILING": "true", "TEMPO_PERFORMANCE__PROFILE_OUTPUT_DIR": str(folder)})
    assert done.returncode == 0, done.stderr
    written = list(folder.glob("tempo-generate-*.prof"))
    assert len(written) == 1 and written[0].stat().st_mtime >= start - 1
    assert pstats.Stats(str(written[0])).total_calls > 0


def test_switch_names_are_the_settings_keys():
    from tempo.settings.loader import MODULE_DEBUG_NAMES

    assert set(MODULE_LOGGERS) == set(MODULE_DEBUG_NAMES)
