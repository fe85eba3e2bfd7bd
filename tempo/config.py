"""Settings: dynaconf over ``settings.toml``, ``.secrets.toml`` and ``TEMPO_`` variables.

Precedence, highest first: request / CLI argument > environment variable
(``TEMPO_GENERATION__MAX_TOKENS=50``) > ``settings.toml`` (the active profile's
section, then ``[default]``) > the code default of the request field.
Profiles: ``TEMPO_PROFILE=development`` (or ``production``).

Validators run when settings load, so a bad value stops the program at start
with a message that names the key and the allowed range.
"""
from __future__ import annotations

import logging
import logging.handlers
from functools import lru_cache
from pathlib import Path

from dynaconf import Dynaconf, ValidationError, Validator

from tempo.errors import SettingsError

PROJECT_ROOT = Path(__file__).resolve().parent.parent

NEXT_LOGITS_MODES = ("mixture", "top", "last")
SCHEDULES = ("constant", "bezier", "relu")
MODES = ("tempo", "default", "mcts")
COMPLETE_PRUNING_MODES = ("keep_token", "keep_unattended", "remove_position")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _range(key: str, lo: float, hi: float | None = None) -> Validator:
    """A numeric key within [lo, hi] (hi None: no upper bound)."""
    if hi is None:
        return Validator(key, gte=lo, messages={"operations": f"{key} must be >= {lo}, got {{value}}"})
    return Validator(
        key, gte=lo, lte=hi, messages={"operations": f"{key} must be in [{lo}, {hi}], got {{value}}"}
    )


def _choice(key: str, choices: tuple[str, ...]) -> Validator:
    return Validator(
        key, is_in=choices, messages={"operations": f"{key} must be one of {', '.join(choices)}, got {{value}}"}
    )


VALIDATORS = [
    Validator("model.model_id", must_exist=True, is_type_of=str, len_min=1,
              messages={"must_exist_true": "model.model_id must be set (a hub id or a local path)"}),
    _choice("generation.mode", MODES),
    _range("generation.max_tokens_limit", 1),
    _range("generation.max_tokens", 1),
    _range("generation.selection_threshold", 0.0, 1.0),
    _range("generation.selection_final_threshold", 0.0, 1.0),
    _choice("generation.selection_schedule", SCHEDULES),
    _range("generation.bezier_p1", 0.0, 1.0),
    _range("generation.bezier_p2", 0.0, 1.0),
    _range("generation.relu_activation_point", 0.0, 0.999),
    _range("generation.temperature", 0.0, 100.0),
    _range("generation.top_k", 0),
    _range("generation.top_p", 0.0, 1.0),
    _range("generation.repetition_penalty", 0.01, 100.0),
    _range("generation.max_parallel_tokens", 1, 256),
    _range("generation.min_steps", 0),
    _choice("generation.next_logits_mode", NEXT_LOGITS_MODES),
    _range("generation.eos_token_id", -1),
    _range("generation.pad_token_id", -1),
    _range("pruning.attention_threshold", 0.0, 1.0),
    _range("pruning.relative_threshold", 0.0, 1.0),
    _range("pruning.num_layers_to_use", 0),
    _range("pruning.sigmoid_steepness", 0.001, 1000.0),
    _choice("pruning.complete_pruning_mode", COMPLETE_PRUNING_MODES),
    _range("pruning.final_threshold", 0.0, 1.0),
    _range("mcts.simulations", 1),
    _range("mcts.c_puct", 0.0, 100.0),
    _range("mcts.depth", 0),
    _range("mcts.expand", 1, 256),
    _range("mcts.batch", 1, 64),
    _range("mcts.max_depth", 0),
    _range("mcts.max_simulations", 1),
    _choice("logging.log_level", LOG_LEVELS),
    _range("logging.max_log_size_mb", 1),
    _range("logging.backup_count", 0),
    # train: `python -m tempo train` (tempo/train/config.py validates the merged result again)
    _choice("train.model_size", ("tiny", "medium", "large", "xlarge", "nano")),
    _choice("train.stage", ("", "language", "code")),
    _choice("train.lr_decay", ("cosine", "linear", "constant")),
    Validator("train.learning_rate", gt=0, messages={"operations": "train.learning_rate must be > 0, got {value}"}),
    _range("train.min_lr_ratio", 0.0, 1.0),
    _range("train.dropout", 0.0, 0.99),
    _range("train.weight_decay", 0.0, 10.0),
    _range("train.grad_clip", 0.0),
    _range("train.warmup_steps", 0),
    _range("train.batch_size", 1),
    _range("train.grad_accumulation_steps", 1),
    _range("train.num_epochs", 1),
    _range("train.max_steps", 0),
    _range("train.num_threads", 0),
    _range("train.eval_interval", 1),
    _range("train.eval_batches", 1),
    _range("train.checkpoint_interval", 1),
    _range("train.val_fraction", 0.001, 0.999),
    _range("train.seq_length", 0),
    _range("train.min_frequency", 1),
    _range("train.max_files", 0),
    # api / app: the server of app.py (tempo/api.py, tempo/ui.py, tempo/scheduler.py)
    Validator("api.host", is_type_of=str, len_min=1, messages={"operations": "api.host must be a host name, got {value}"}),
    _range("api.port", 0, 65535),
    Validator("api.cors_origins", is_type_of=list,
              messages={"operations": "api.cors_origins must be a list of origins, got {value}"}),
    _range("api.max_concurrent_requests", 1),
    Validator("api.request_timeout", gt=0, messages={"operations": "api.request_timeout must be > 0, got {value}"}),
    _range("api.rate_limit", 0),
    Validator("api.rate_limit_window", gt=0,
              messages={"operations": "api.rate_limit_window must be > 0, got {value}"}),
    _range("app.max_batch_size", 1, 256),
    _range("app.queue_max_size", 1),
    _range("app.concurrency_limit", 1),
    _range("app.stream_interval", 0.0, 10.0),
    _range("app.generate_batch_max_size", 1, 256),
]


def load_settings(settings_file: str | Path | None = None) -> Dynaconf:
    """Read the settings and validate them; raise SettingsError naming the bad key."""
    files = [str(settings_file or PROJECT_ROOT / "settings.toml"), str(PROJECT_ROOT / ".secrets.toml")]
    settings = Dynaconf(
        envvar_prefix="TEMPO",
        settings_files=files,
        environments=True,
        env_switcher="TEMPO_PROFILE",
        env="default",
        merge_enabled=True,
        validators=VALIDATORS,
    )
    try:
        settings.validators.validate_all()
    except ValidationError as exc:
        raise SettingsError(f"invalid setting: {exc}") from None
    generation = settings.get("generation", {})
    limit = generation.get("max_tokens_limit", 1024)
    if generation.get("max_tokens", 1) > limit:
        raise SettingsError(
            f"invalid setting: generation.max_tokens must be in [1, {limit}] "
            f"(generation.max_tokens_limit), got {generation.get('max_tokens')}"
        )
    return settings


@lru_cache(maxsize=1)
def default_settings() -> Dynaconf:
    """The process-wide settings, read once."""
    return load_settings()


def configure_logging(settings: Dynaconf) -> None:
    """Set up the ``tempo`` logger from the ``logging`` section."""
    section = settings.logging
    logger = logging.getLogger("tempo")
    logger.setLevel(section.log_level)
    logger.handlers.clear()
    formatter = logging.Formatter(section.log_format)
    if section.console_logging:
        handler = logging.StreamHandler()
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    if section.enable_file_logging:
        log_dir = Path(section.log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            log_dir / "tempo.log",
            maxBytes=int(section.max_log_size_mb) * 1024 * 1024,
            backupCount=int(section.backup_count),
        )
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    logger.propagate = False
