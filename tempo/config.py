"""Settings: dynaconf over ``settings.toml``, ``.secrets.toml`` and ``TEMPO_`` variables.

Precedence, highest first (``docs/configuration.md``):

1. argument: a request / CLI argument, or ``--set section.key=value`` of ``python -m tempo config``;
2. environment: ``TEMPO_SECTION__KEY`` (dynaconf's spelling) or ``TEMPO_SECTION_KEY`` (the
   configuration guide's, :mod:`tempo.env_names`); when both name one key the ``__`` one wins;
3. file: the settings file (``--settings`` > ``TEMPO_CONFIG_FILE`` > the project's
   ``settings.toml``) -- its profile table (``TEMPO_PROFILE``), then its ``[default]`` tables --
   and ``.secrets.toml`` above it;
4. default: the ``[default]`` tables of the project's ``settings.toml``, which ship with the code
   and name every key (a file given by ``--settings`` / ``TEMPO_CONFIG_FILE`` is laid over them).

The files are layered here (tables merge, lists and values replace); dynaconf reads the
environment on top of them, and its validators run when settings load, so a bad value stops
the program at start with a message that names the key and the allowed range.
"""
from __future__ import annotations

import copy
import json
import logging
import logging.handlers
import os
import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from dynaconf import Dynaconf, ValidationError, Validator
from dynaconf.utils.parse_conf import parse_conf_data

from tempo.env_names import ALIAS_BY_NAME, ALIASES, ENV_ONLY, PREFIX, is_single_underscore, resolve
from tempo.errors import SettingsError

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROJECT_SETTINGS = PROJECT_ROOT / "settings.toml"
SECRETS_FILE = PROJECT_ROOT / ".secrets.toml"

PROFILES = ("development", "production", "space", "testing")
NEXT_LOGITS_MODES = ("mixture", "top", "last")
SCHEDULES = ("constant", "bezier", "relu")
MODES = ("tempo", "default", "mcts")
COMPLETE_PRUNING_MODES = ("keep_token", "keep_unattended", "remove_position")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DTYPE_NAMES = ("auto", "float32", "float16", "bfloat16")
MODULE_DEBUG_NAMES = (
    "token_generator", "attention_manager", "rope_modifier", "model_wrapper", "token_selector",
    "parallel_generator", "experiment_runner", "retroactive_pruner", "mcts_generator", "api", "cache_manager",
    "performance_tracker",
)
SECRET_KEYS = ("hub.token",)
"""Known keys that are never in settings.toml (they belong in .secrets.toml or the environment)."""


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


def _bool(key: str) -> Validator:
    return Validator(key, is_type_of=bool, messages={"operations": f"{key} must be true or false, got {{value}}"})


def _device(name: Any) -> bool:
    return isinstance(name, str) and (name in ("auto", "cpu", "cuda", "mps") or re.fullmatch(r"cuda:\d+", name))


REJECTED: tuple[tuple[str, Any, str], ...] = (
    # (key, the one accepted value, why no other value is supported here)
    ("model.quantization", "", "4-bit / 8-bit loading needs bitsandbytes and CUDA, not in this build"),
    ("model.low_cpu_mem_usage", True, "transformers 5 always loads weights without a full extra copy in memory"),
    ("model.max_memory", {}, "TEMPO keeps the whole model on one device (model.device); it does not split "
                              "layers over devices"),
    ("model.offload_folder", "", "TEMPO does not offload weights to disk (no device_map)"),
    ("model.offload_state_dict", False, "transformers 5 dropped offload_state_dict and TEMPO does not offload"),
    ("generation.beam_width", 1, "TEMPO does not beam-search; its parallel sets replace beams"),
    ("generation.length_penalty", 1.0, "TEMPO does not beam-search; a length penalty only scores beams"),
    ("generation.early_stopping", True, "a row always stops at EOS (after generation.min_steps); "
                                        "early_stopping = false is a beam-search option"),
    ("generation.use_cache", True, "the parallel sets live in the KV cache; TEMPO cannot run without it"),
    ("api.debug", False, "not wired: the REST routes answer one-line errors and log tracebacks"),
    ("api.api_version", "v2", "TEMPO serves one API version, v2 (the routes of tempo/api.py)"),
    ("api.enable_metrics", False, "no metrics exporter in this build (no prometheus_client)"),
    ("api.metrics_port", 0, "no metrics exporter in this build, so no metrics port"),
    ("api.rate_limit_strategy", "sliding_window",
     "the REST rate limiter keeps each client's request times of the last rate_limit_window seconds "
     "(a sliding-window log); there is no other strategy"),
    ("debug.save_intermediate_states", False, "every result already holds each step's sets, kept and pruned "
                                              "tokens (the result JSON); nothing else is saved"),
    ("debug.log_attention_maps", False, "attention maps are not logged; pruning reads them inside the step"),
    ("debug.profile_memory", False, "no memory profiler in this build (see performance.enable_profiling)"),
    ("debug.trace_execution", False, "no execution tracer in this build; use debug.module_debug for detail"),
    ("performance.memory_efficient_mode", False, "there is no separate low-memory path; memory is bounded by "
                                                 "app.max_batch_size and generation.max_tokens_limit"),
    ("performance.num_workers", 0, "generation reads no dataset and the trainer uses no DataLoader"),
    ("performance.prefetch_factor", 2, "generation reads no dataset and the trainer uses no DataLoader"),
    ("performance.persistent_workers", False, "generation reads no dataset and the trainer uses no DataLoader"),
    ("performance.pin_memory", False, "generation reads no dataset and the trainer uses no DataLoader"),
    ("cache.enable_kv_cache", True, "the parallel sets live in the KV cache; TEMPO cannot run without it"),
    ("cache.kv_cache_implementation", "default", "the engine grows, reorders and trims a DynamicCache; "
                                                 "static, offloaded and quantized caches cannot do that"),
    ("cache.cache_dir", "", "the prompt cache lives in memory; nothing is cached on disk "
                            "(model downloads: model.cache_dir)"),
    ("cache.cache_eviction_policy", "lru", "the prompt cache evicts the least recently used entry"),
    ("experimental.enable_flash_attention", False, "flash-attention kernels take no arbitrary 4D mask, "
                                                   "and TEMPO's parallel sets need one"),
    ("experimental.enable_xformers", False, "xformers is not in this build, and TEMPO's parallel sets need a "
                                            "4D mask (PyTorch SDPA takes one)"),
    ("experimental.enable_torch_compile", False, "rows join and leave the batch and sets change size every "
                                                 "step, so compiled graphs would recompile (train.use_compile "
                                                 "compiles the trainer)"),
    ("experimental.torch_compile_mode", "default", "read only with enable_torch_compile, which is not supported"),
    ("experimental.mixed_precision", "no", "set model.torch_dtype (float16 / bfloat16) for generation and "
                                           "train.use_amp for training"),
)


def _only(key: str, accepted: Any, why: str) -> Validator:
    if isinstance(accepted, dict):
        return Validator(key, condition=lambda v: isinstance(v, Mapping) and not v,
                         messages={"condition": f"{key} = {{value}} is not supported: {why}; leave it empty"})
    return Validator(key, eq=accepted, messages={
        "operations": f"{key} = {{value}} is not supported: {why}; only {json.dumps(accepted)} is accepted"})


VALIDATORS = [
    Validator("model.model_id", must_exist=True, is_type_of=str, len_min=1,
              messages={"must_exist_true": "model.model_id must be set (a hub id or a local path)"}),
    Validator("model.device", condition=_device,
              messages={"condition": "model.device must be auto, cpu, cuda, cuda:N or mps, got {value}"}),
    _choice("model.torch_dtype", DTYPE_NAMES),
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
    _bool("logging.enable_file_logging"),
    _bool("logging.console_logging"),
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
VALIDATORS += [  # keys that another module reads (prompt cache, debug logging, profiling)
    _bool("cache.enable_prompt_cache"),
    Validator("cache.prompt_cache_size", is_type_of=int, gte=0,
              messages={"operations": "cache.prompt_cache_size must be an integer >= 0 (entries), got {value}"}),
    Validator("cache.max_cache_size_gb", is_type_of=(int, float), gt=0,
              messages={"operations": "cache.max_cache_size_gb must be a number > 0 (GB), got {value}"}),
    _bool("debug.global_debug"),
    *[_bool(f"debug.module_debug.{name}") for name in MODULE_DEBUG_NAMES],
    _bool("performance.enable_profiling"),
    Validator("performance.profile_output_dir", is_type_of=str, len_min=1,
              messages={"operations": "performance.profile_output_dir must be a folder, got {value}"}),
    *[_only(key, accepted, why) for key, accepted, why in REJECTED],
]


RANKS = {"default": 0, "file": 1, "environment": 2, "argument": 3}


@dataclass
class LoadedSettings:
    """Settings with what :func:`read_settings` learnt on the way: each key's source, the problems."""

    settings: Dynaconf
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
    return Path(chosen).expanduser()


def active_profile() -> str:
    """``TEMPO_PROFILE`` (empty or ``default``: no profile table); an unknown name is an error."""
    profile = os.environ.get("TEMPO_PROFILE", "").strip().lower() or "default"
    if profile != "default" and profile not in PROFILES:
        raise SettingsError(f"TEMPO_PROFILE must be one of {', '.join(PROFILES)} (or unset), got {profile!r}")
    return profile


def shipped_defaults() -> dict[str, Any]:
    """The ``[default]`` tables of the project's settings.toml: every known key with its default."""
    return _read_file(PROJECT_SETTINGS).get("default", {})


def flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; an empty table is a value of its own."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{str(key).lower()}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


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
            sources.update({key: f"file {file} [{table}]" for key in flatten(layer)})
    settings = Dynaconf(envvar_prefix="TEMPO", environments=False, merge_enabled=False,
                        **{section.upper(): value for section, value in merged.items()})
    loaded = LoadedSettings(settings=settings, profile=profile, file=path, sources=sources)
    environ = {name: value for name, value in os.environ.items() if name.startswith(PREFIX)}
    for name in environ:
        if "__" in name and not name.endswith("_FOR_DYNACONF"):
            loaded.sources[name[len(PREFIX):].lower().replace("__", ".")] = f"environment {name}"
        elif "__" not in name and name[len(PREFIX):] in settings:
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
    return loaded


def load_settings(settings_file: str | Path | None = None, overrides: Mapping[str, Any] | None = None
                  ) -> Dynaconf:
    """Read the settings and validate them; raise SettingsError naming every bad key."""
    loaded = read_settings(settings_file, overrides)
    for problem in loaded.unknown + loaded.notes:
        log.warning("settings: %s", problem)
    if loaded.errors:
        raise SettingsError("invalid setting: " + "; ".join(loaded.errors))
    return loaded.settings


@lru_cache(maxsize=1)
def default_settings() -> Dynaconf:
    """The process-wide settings, read once."""
    return load_settings()


def validation_errors(settings: Dynaconf) -> list[str]:
    """Every failing validator's message (each validator runs on its own, so one bad key hides no other)."""
    errors = []
    for validator in VALIDATORS:
        try:
            validator.validate(settings)
        except ValidationError as exc:
            errors.append(str(exc))
        except TypeError:  # a comparison of the wrong type ("abc" >= 0)
            name = validator.names[0]
            errors.append(f"{name} has the wrong type: {settings.get(name)!r}")
    generation = settings.get("generation", {})
    limit = generation.get("max_tokens_limit", 1024)
    tokens = generation.get("max_tokens", 1)
    if isinstance(tokens, int) and isinstance(limit, int) and tokens > limit:
        errors.append(f"generation.max_tokens must be in [1, {limit}] (generation.max_tokens_limit), got {tokens}")
    for key in flatten(settings.as_dict()):
        if key.endswith(".use_custom_rope") or key == "use_custom_rope":
            errors.append(f"{key} is not supported: TEMPO gives the tokens of one parallel set one position through "
                          "position ids; there is no RoPE modification to switch (remove the key)")
    return errors


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
        if isinstance(value, Mapping) and isinstance(base.get(key), dict) and value:
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)


def _apply_single_underscore(loaded: LoadedSettings, environ: Mapping[str, str], defaults: Mapping[str, Any]
                             ) -> dict[str, tuple[Any, str]]:
    """Set the keys the guide's ``TEMPO_SECTION_KEY`` variables name; return those that name an alias."""
    settings, alias_inputs = loaded.settings, {}
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
    settings = loaded.settings
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
            if not key.endswith("use_custom_rope"):
                unknown.append(f"{key} is not a setting of TEMPO (settings.toml names every key)")
    return unknown


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
