"""What a valid setting is: the allowed values of each key, and the keys accepted at one value only.

Each validator names its key and the allowed range; :func:`validation_errors` runs them one by one
so that ``python -m tempo config --validate`` can list every problem at once. ``REJECTED`` holds the
configuration guide's keys that TEMPO accepts at one value only, with the reason
(``docs/configuration.md`` has the table).
"""
from __future__ import annotations

import json
from typing import Any, Mapping

from dynaconf import Dynaconf, ValidationError, Validator

from tempo.request import COMPLETE_PRUNING_MODES, MODES, NEXT_LOGITS_MODES, SCHEDULES  # noqa: F401
from tempo.request import FIELDS, FieldSpec
from tempo.settings.schema import (  # noqa: F401 -- the value lists are part of this module's interface
    DTYPE_NAMES, LOG_LEVELS, MODULE_DEBUG_NAMES, Rule, declared,
)


SECRET_KEYS = ("hub.token", "api.admin_token")
SHARED_POSITIONS = ("TEMPO gives the tokens of one parallel set one position through position ids; "
                    "there is no RoPE modification to switch")
"""Why ``use_custom_rope`` is refused in a settings file and ``--use-custom-rope`` changes nothing (always on)."""
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


def request_validators(fields: Mapping[str, FieldSpec] = FIELDS) -> list[Validator]:
    """A validator for the settings key of every request field, from its declaration: its choices, its
    [lo, hi] (lo alone where a setting is the upper bound, such as generation.max_tokens_limit), true or false."""
    validators = []
    for spec in fields.values():
        if not spec.section:
            continue
        if spec.choices:
            validators.append(_choice(spec.setting, spec.choices))
        elif spec.type is bool:
            validators.append(_bool(spec.setting))
        elif spec.type is str:
            validators.append(Validator(spec.setting, is_type_of=str,
                                        messages={"operations": f"{spec.setting} must be a string, got {{value}}"}))
        elif spec.lo is not None:
            validators.append(_range(spec.setting, spec.lo, spec.hi))
    return validators


REJECTED: tuple[tuple[str, Any, str], ...] = (
    # (key, the one accepted value, why no other value is supported here)
    ("model.low_cpu_mem_usage", True, "transformers 5 always loads weights without a full extra copy in memory"),
    ("model.offload_state_dict", False, "transformers 5 dropped offload_state_dict; model.offload_folder serves its purpose"),
    ("generation.beam_width", 1, "TEMPO does not beam-search; its parallel sets replace beams"),
    ("generation.length_penalty", 1.0, "TEMPO does not beam-search; a length penalty only scores beams"),
    ("generation.early_stopping", True, "a row always stops at EOS (after generation.min_steps); "
                                        "early_stopping = false is a beam-search option"),
    ("generation.use_cache", True, "the parallel sets live in the KV cache; TEMPO cannot run without it"),
    ("api.debug", False, "not wired: the REST routes answer one-line errors and log tracebacks"),
    ("api.api_version", "v2", "TEMPO serves one API version, v2 (the routes of tempo/api.py)"),
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


def schema_validator(key: str, rule: Rule) -> Validator:
    """The validator of one declared key (tempo/settings/schema.py): ``KEY must be SAYS, got VALUE``."""
    checks: dict[str, Any] = {}
    if rule.choices:
        checks["is_in"] = rule.choices
    if rule.kind is not None:
        checks["is_type_of"] = rule.kind
    if rule.nonempty:
        checks["len_min"] = 1
    if rule.lo is not None:
        checks["gte"] = rule.lo
    if rule.hi is not None:
        checks["lte"] = rule.hi
    if rule.gt is not None:
        checks["gt"] = rule.gt
    if rule.required:
        return Validator(key, must_exist=True, **checks,
                         messages={"must_exist_true": f"{key} must be {rule.message}"})
    if rule.condition is not None:
        return Validator(key, condition=rule.condition,
                         messages={"condition": f"{key} must be {rule.message}, got {{value}}"})
    return Validator(key, **checks, messages={"operations": f"{key} must be {rule.message}, got {{value}}"})


def schema_validators(*sections: str) -> list[Validator]:
    """The validators of the keys the schema declares with a rule, in declaration order (the request
    fields' keys carry none there: their validators are the request lines of ``VALIDATORS``)."""
    return [schema_validator(key, f.metadata["rule"]) for key, f in declared().items()
            if key.split(".")[0] in sections and f.metadata.get("rule") is not None]


VALIDATORS = [
    *schema_validators("model"),
    *request_validators(),  # the request fields' keys, from their declaration (tempo.request.FIELDS)
    *schema_validators("generation", "pruning", "mcts"),  # the section-only keys: limits, special ids
    *schema_validators("logging", "train", "api", "app", "cache", "debug", "performance"),
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
    limit, tokens = settings.generation.max_tokens_limit, settings.generation.max_tokens  # the defaults name both
    if isinstance(tokens, int) and isinstance(limit, int) and tokens > limit:
        errors.append(f"generation.max_tokens must be in [1, {limit}] (generation.max_tokens_limit), got {tokens}")
    switches = settings.debug.module_debug  # a name that is no module: an error, not only an unknown key
    for name in [str(n).lower() for n in switches] if isinstance(switches, Mapping) else ():
        if name not in MODULE_DEBUG_NAMES:
            errors.append(f"debug.module_debug.{name} is not a module; one of {', '.join(MODULE_DEBUG_NAMES)}")
    for key in flatten(settings.as_dict()):
        if key.endswith(".use_custom_rope") or key == "use_custom_rope":
            errors.append(f"{key} is not supported: {SHARED_POSITIONS} (remove the key)")
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
