"""What a valid setting is: the allowed values of each key, and the keys accepted at one value only.

Each validator names its key and the allowed range; :func:`validation_errors` runs them one by one
so that ``python -m tempo config --validate`` can list every problem at once. ``REJECTED`` holds the
configuration guide's keys that TEMPO accepts at one value only, with the reason
(``docs/configuration.md`` has the table).
"""
from __future__ import annotations

import json
import re
from typing import Any, Mapping

from dynaconf import ValidationError, Validator

from tempo.request import COMPLETE_PRUNING_MODES, MODES, NEXT_LOGITS_MODES, SCHEDULES  # noqa: F401


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
