"""Every settings key, declared once: its default, type and rule, one frozen dataclass per section.

The loader (:mod:`tempo.settings.loader`) reads the layers with dynaconf and hands code a frozen
:class:`Settings`; code reads attributes (``settings.app.max_batch_size``), never ``.get(key,
default)``, so a default lives here only. The dynaconf validators of these keys are generated from
the rules below (:func:`tempo.settings.rules.schema_validators`); ``settings.toml``'s ``[default]``
tables repeat the defaults for its readers, and a test keeps the two equal.

The ``generation`` / ``pruning`` / ``mcts`` sections are the request's fields: their keys, types and
defaults come from the request's declaration (``tempo.request.FIELDS``), so only the section-only keys
are declared here (the limits take their defaults from ``tempo.request.LIMITS``, which bounds requests
built without settings). Keys accepted at one value only (``rules.REJECTED``) and the
other names of a key (``env_names.ALIASES``) are validated and resolved at load but are no attributes:
no code reads them. This module imports no dynaconf: it is plain data.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field, fields, make_dataclass
from typing import Any, Callable, Mapping

from tempo import forks_request, request

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DTYPE_NAMES = ("auto", "float32", "float16", "bfloat16")
MODULE_DEBUG_NAMES = (
    "token_generator", "attention_manager", "rope_modifier", "model_wrapper", "token_selector",
    "parallel_generator", "experiment_runner", "retroactive_pruner", "mcts_generator", "api", "cache_manager",
    "performance_tracker",
)


@dataclass(frozen=True)
class Rule:
    """What a valid value of one key is; the validator and its message are generated from it.

    The message reads ``KEY must be SAYS, got VALUE``; ``says`` defaults to the range
    (``in [lo, hi]``, ``>= lo``, ``> gt``) or the choices.
    """

    lo: float | None = None
    hi: float | None = None
    gt: float | None = None
    choices: tuple[str, ...] = ()
    kind: type | tuple[type, ...] | None = None
    nonempty: bool = False
    required: bool = False
    condition: Callable[[Any], bool] | None = None
    says: str | None = None

    @property
    def message(self) -> str:
        if self.says is not None:
            return self.says
        if self.choices:
            return f"one of {', '.join(self.choices)}"
        if self.gt is not None:
            return f"> {self.gt}"
        return f"in [{self.lo}, {self.hi}]" if self.hi is not None else f">= {self.lo}"


def key(default: Any, help: str = "", **rule: Any) -> Any:
    """A settings key: its default, what it does, and (keyword arguments of :class:`Rule`) its rule."""
    meta = {"help": help, "rule": Rule(**rule) if rule else None}
    if isinstance(default, dict) and not default:  # a table key (model.max_memory): empty by default
        return field(default_factory=dict, metadata=meta)
    if isinstance(default, (list, dict, set)):
        raise TypeError("settings are frozen: give a tuple, not a mutable default")
    return field(default=default, metadata=meta)


def flag(default: bool, help: str = "") -> Any:
    """A true / false key."""
    return key(default, help, kind=bool, says="true or false")


def is_device(name: Any) -> bool:
    return isinstance(name, str) and (name in ("auto", "cpu", "cuda", "mps") or bool(re.fullmatch(r"cuda:\d+", name)))


DEVICE_MAPS = ("", "auto", "balanced", "balanced_low_0", "sequential")
"""``model.device_map`` by name ("" = the whole model on ``model.device``); a table maps module names to
devices instead (``{ "model.embed_tokens" = 0, "model.layers" = "cpu", lm_head = "disk" }``)."""

QUANTIZATIONS = {
    "": "full-precision weights (model.torch_dtype)",
    "int8": "8-bit integer weights, per-channel scales (torchao weight-only; CPU and CUDA)",
    "int4": "4-bit integer weights in groups of 32 (torchao weight-only; on the CPU the 4-bit values are stored "
            "one per byte, so the memory is int8's)",
    "bnb-8bit": "bitsandbytes LLM.int8() (CUDA only)",
    "bnb-4bit": "bitsandbytes NF4 (CUDA only)",
    "8bit": "the configuration guide's name of bnb-8bit",
    "4bit": "the configuration guide's name of bnb-4bit",
}
"""``model.quantization``: name -> what it loads."""

MEMORY_SIZE = re.compile(r"^\s*\d+(\.\d+)?\s*([KMGT]i?B|B)\s*$", re.IGNORECASE)
TP_PLANS = ("", "auto")


def is_device_map(value: Any) -> bool:
    """A device map name, or a table of module name -> device (int, ``cpu``, ``disk``, ``cuda:N``, ``mps``)."""
    if isinstance(value, str):
        return value in DEVICE_MAPS
    return isinstance(value, Mapping) and bool(value) and all(_is_place(v) for v in value.values())


def is_max_memory(value: Any) -> bool:
    """A table of device -> size (``"20GiB"``, ``"512MiB"`` or bytes); empty: no limits."""
    return isinstance(value, Mapping) and all(
        _is_place(k, disk=False) and (isinstance(v, int) and not isinstance(v, bool) and v > 0
                                       or isinstance(v, str) and bool(MEMORY_SIZE.match(v)))
        for k, v in value.items())


def _is_place(value: Any, disk: bool = True) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return value >= 0
    if not isinstance(value, str):
        return False
    return value.isdigit() or value in ("cpu", "mps") + (("disk",) if disk else ()) or bool(
        re.fullmatch(r"cuda:\d+", value))



class Section:
    """A frozen section of the settings."""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]


@dataclass(frozen=True)
class ModelSettings(Section):
    model_id: str = key("assets/models/tempo-tiny-code", "hub id or local path of a causal LM",
                        kind=str, nonempty=True, required=True, says="set (a hub id or a local path)")
    device: str = key("auto", "auto picks cuda > mps > cpu", condition=is_device, says="auto, cpu, cuda, cuda:N or mps")
    torch_dtype: str = key("auto", "auto: float16 on cuda / mps, float32 on cpu", choices=DTYPE_NAMES)
    trust_remote_code: bool = key(False)
    use_fast_tokenizer: bool = key(True)
    revision: str = key("", "git revision on the hub; empty: the default branch")
    cache_dir: str = key("", "Hugging Face cache folder; empty: the library default (HF_HOME)")
    local_files_only: bool = key(False)
    device_map: Any = key("", "\"\" = the whole model on model.device; auto, balanced, balanced_low_0, sequential "
                              "(accelerate places layers over GPUs, CPU and disk) or a table module -> device",
                          condition=is_device_map,
                          says=f"one of {', '.join(repr(n) for n in DEVICE_MAPS)} or a table of module "
                               "name -> device (0, \"cuda:1\", \"cpu\", \"disk\")")
    max_memory: Any = key({}, "with device_map: memory per device, e.g. { 0 = \"20GiB\", cpu = \"60GiB\" }",
                          condition=is_max_memory,
                          says="a table of device (0, \"cuda:1\", \"cpu\", \"mps\") -> size (\"20GiB\")")
    offload_folder: str = key("", "with device_map: the folder for layers placed on \"disk\"", kind=str)
    quantization: str = key("", "\"\" full precision; int8 / int4 (torchao, CPU and CUDA); bnb-8bit / bnb-4bit "
                                "(bitsandbytes, CUDA; 8bit / 4bit are the guide's names of these)",
                            choices=tuple(QUANTIZATIONS))
    tp_plan: str = key("", "\"auto\": tensor parallelism over the processes of torchrun (docs/scale.md)",
                       choices=TP_PLANS)
    fallback_model_id: str = key("", "the app loads this one instead when model_id cannot be loaded (the hub "
                                 "unreachable) and says so in /health and a banner; empty: no fallback", kind=str,
                                 says="a hub id, a local path or empty")


@dataclass(frozen=True)
class _GenerationOnly(Section):
    max_tokens_limit: int = key(request.LIMITS["generation.max_tokens_limit"], "requests above this are rejected",
                                lo=1)
    max_prompt_tokens: int = key(32768, "prompts of more tokens are refused (422 naming prompt)", lo=1)
    max_context: int = key(0, "positions a request may use (prompt + max_tokens); 0 = the model's "
                              "max_position_embeddings, else the smaller of the two", lo=0)
    eos_token_id: int = key(-1, "-1: the model's generation config / tokenizer", lo=-1)
    pad_token_id: int = key(-1, "-1: the model's generation config / tokenizer", lo=-1)
    max_fork_horizon: int = key(forks_request.MAX_FORK_HORIZON, "forks: rollouts of more tokens (horizon) are refused", lo=1)


@dataclass(frozen=True)
class _PruningOnly(Section):
    pass


@dataclass(frozen=True)
class _MctsOnly(Section):
    max_depth: int = key(request.LIMITS["mcts.max_depth"], "requests with a deeper rollout are rejected", lo=0)
    max_simulations: int = key(request.LIMITS["mcts.max_simulations"], "requests with more simulations are rejected",
                               lo=1)


def request_keys(section: str) -> list[tuple[str, Any, Any, str, str]]:
    """``(key, type, default, help, request field)`` of the request fields whose settings live in ``section``,
    in declaration order: from ``tempo.request.FIELDS`` when it exists, else from the dataclass."""
    specs = getattr(request, "FIELDS", None)
    if specs:
        return [(str(s.key).rsplit(".", 1)[-1], s.type, s.default, s.help or "", s.name)
                for s in specs.values() if s.section == section]
    return [(request.setting_name(f.name), f.type, f.default, "", f.name)
            for f in fields(request.GenerationRequest)
            if f.name != "prompt" and request.section_of(f.name) == section]


def _request_section(name: str, section: str, base: type) -> type:
    """A frozen section made of ``base`` (its own keys) and the request fields of ``section``."""
    made = [(key_, kind, field(default=default, metadata={"help": help_, "rule": None, "request_field": source}))
            for key_, kind, default, help_, source in request_keys(section)]
    made_class = make_dataclass(name, made, bases=(base,), frozen=True)
    made_class.__module__ = __name__
    return made_class


GenerationSettings = _request_section("GenerationSettings", "generation", _GenerationOnly)
PruningSettings = _request_section("PruningSettings", "pruning", _PruningOnly)
MctsSettings = _request_section("MctsSettings", "mcts", _MctsOnly)


@dataclass(frozen=True)
class LoggingSettings(Section):
    log_level: str = key("INFO", choices=LOG_LEVELS)
    console_logging: bool = flag(True, "log to stderr")
    enable_file_logging: bool = flag(False, "log to log_dir/tempo.log")
    log_dir: str = key("logs")
    max_log_size_mb: float = key(100.0, "the log file rotates at this size", lo=1)
    backup_count: int = key(5, "rotated files kept", lo=0)
    log_format: str = key("%(asctime)s - %(name)s - %(levelname)s - %(message)s")


@dataclass(frozen=True)
class TrainSettings(Section):
    """``python -m tempo train``: tempo/train/config.py layers presets, YAML and flags over these."""

    model_size: str = key("nano", choices=("tiny", "medium", "large", "xlarge", "nano"))
    use_rmsnorm: bool = key(True)
    use_rope: bool = key(True)
    dropout: float = key(0.0, lo=0.0, hi=0.99)
    tie_embeddings: bool = key(True)
    stage: str = key("", choices=("", "language", "code", "tools", "rlhf"))
    learning_rate: float = key(1e-4, gt=0)
    min_lr_ratio: float = key(0.1, lo=0.0, hi=1.0)
    lr_decay: str = key("cosine", choices=("cosine", "linear", "constant"))
    warmup_steps: int = key(2000, lo=0)
    weight_decay: float = key(0.1, lo=0.0, hi=10.0)
    grad_clip: float = key(1.0, "0 = off", lo=0.0)
    batch_size: int = key(2, lo=1)
    grad_accumulation_steps: int = key(4, lo=1)
    num_epochs: int = key(3, lo=1)
    max_steps: int = key(0, "0 = num_epochs passes over the data", lo=0)
    use_compile: bool = key(False)
    use_amp: bool = key(False)
    gradient_checkpointing: bool = key(False)
    seed: int = key(1337)
    num_threads: int = key(0, "0 = torch's default", lo=0)
    device: str = key("auto")
    eval_interval: int = key(100, lo=1)
    eval_batches: int = key(20, lo=1)
    checkpoint_interval: int = key(100, lo=1)
    resume: bool = key(False)
    init_from: str = key("")
    checkpoint_dir: str = key("~/.cache/tempo/train/checkpoints")
    output_dir: str = key("assets/models/tempo-tiny-code")
    model_name: str = key("tempo-tiny-code")
    data_dir: str = key("~/.cache/tempo/train/data")
    data_file: str = key("train.npy", "the training array: a file name inside data_dir, or a path",
                         kind=str, nonempty=True, says="a file name or path")
    val_file: str = key("val.npy", "the validation array: a file name inside data_dir, or a path",
                        kind=str, nonempty=True, says="a file name or path")
    corpus_dir: str = key("", "empty: this interpreter's standard library source")
    file_patterns: tuple[str, ...] = key(("*.py",))
    exclude_dirs: tuple[str, ...] = key(("site-packages", "test", "tests", "__pycache__"))
    val_fraction: float = key(0.05, lo=0.001, hi=0.999)
    seq_length: int = key(0, "0 = max_seq_len", lo=0)
    min_frequency: int = key(2, lo=1)
    max_files: int = key(0, "0 = all files", lo=0)
    sft_file: str = key("assets/train/tool_calls.jsonl", "stage tools: JSONL of {prompt, completion}")
    preference_file: str = key("assets/train/preferences.jsonl", "stage rlhf: JSONL of {prompt, chosen, rejected}")
    dpo_beta: float = key(0.1, "stage rlhf: DPO's beta, how far the policy may move from the reference", gt=0)


BUNDLED_MODEL = ModelSettings.model_id
MODEL_ENTRY_KEYS = ("id", "label", "parameters")


def is_model_list(value: Any) -> bool:
    """``app.models``: a list of ``{id, label, parameters}`` tables (id and label non-empty text, parameters a
    count >= 0)."""
    if not isinstance(value, (list, tuple)):
        return False
    for entry in value:
        if not isinstance(entry, Mapping) or sorted(str(k).lower() for k in entry) != sorted(MODEL_ENTRY_KEYS):
            return False
        entry = {str(k).lower(): v for k, v in entry.items()}
        if not (isinstance(entry["id"], str) and entry["id"] and isinstance(entry["label"], str) and entry["label"]
                and isinstance(entry["parameters"], int) and not isinstance(entry["parameters"], bool)
                and entry["parameters"] >= 0):
            return False
    return True


CURATED_MODELS = (
    {"id": BUNDLED_MODEL, "label": "tempo-tiny-code (bundled)", "parameters": 5_310_720},
    {"id": "HuggingFaceTB/SmolLM2-135M-Instruct", "label": "SmolLM2 135M Instruct", "parameters": 135_000_000},
    {"id": "HuggingFaceTB/SmolLM2-360M-Instruct", "label": "SmolLM2 360M Instruct", "parameters": 362_000_000},
    {"id": "Qwen/Qwen2.5-0.5B-Instruct", "label": "Qwen2.5 0.5B Instruct", "parameters": 494_000_000},
)
"""The Model tab's picker: the bundled model first, then small hub models (parameter counts rounded)."""


@dataclass(frozen=True)
class ApiSettings(Section):
    """The server of app.py (tempo/serve/rest.py)."""

    host: str = key("127.0.0.1", "0.0.0.0 listens on every interface", kind=str, nonempty=True, says="a host name")
    port: int = key(7860, lo=0, hi=65535)
    cors_origins: tuple[str, ...] = key(("*",), kind=list, says="a list of origins")
    enable_docs: bool = key(True, "OpenAPI docs at /docs")
    max_concurrent_requests: int = key(5, "REST generations in flight; more answer 503", lo=1)
    request_timeout: float = key(300.0, "seconds; past it the request leaves the batch", gt=0)
    rate_limit: int = key(100, "REST requests per client per rate_limit_window seconds; 0 = off", lo=0)
    rate_limit_window: float = key(60.0, "seconds", gt=0)
    max_body_bytes: int = key(1_048_576, "REST request bodies over this many bytes answer 413", lo=1)
    trust_proxy_headers: bool = flag(False, "rate limit per X-Forwarded-For (its first address): only behind a "
                                      "proxy that sets it, as a Space's; a client could spoof it")
    enable_metrics: bool = flag(False, "Prometheus metrics: GET /metrics (tempo/serve/metrics.py)")
    metrics_port: int = key(0, "with enable_metrics: > 0 serves the metrics on this port of their own (on api.host) "
                               "instead of GET /metrics on the app's port", lo=0, hi=65535)
    admin_token: str = key("", "a secret (.secrets.toml or TEMPO_API__ADMIN_TOKEN, never settings.toml): POST "
                              "/model and the app's switch need it when set", kind=str, says="a string")


@dataclass(frozen=True)
class AppSettings(Section):
    """The Gradio app and the batch queue behind it."""

    max_batch_size: int = key(16, "rows in the running batch; later requests wait in the queue", lo=1, hi=256)
    queue_max_size: int = key(64, "Gradio queue: events waiting beyond this are refused", lo=1)
    concurrency_limit: int = key(32, "Gradio events running at once", lo=1)
    stream_interval: float = key(0.25, "seconds between streamed updates", lo=0.0, hi=10.0)
    generate_batch_max_size: int = key(8, "/generate_batch: calls Gradio groups into one batch", lo=1, hi=256)
    max_result_folders: int = key(32, "tempo-result-* download folders kept in the temp dir; the oldest "
                                  "go first", lo=1)
    download_cache_age: int = key(3600, "seconds Gradio keeps the files it served (a run's downloads) in its "
                                  "cache, checked as often", lo=1)
    models: tuple[dict, ...] = key(CURATED_MODELS, "the Model tab's picker: {id, label, parameters} tables, the "
                                   "bundled model first", condition=is_model_list,
                                   says="a list of tables of id, label and parameters (text, text, a count >= 0)")
    allow_model_switch: bool = flag(False, "POST /model and the Model tab's Switch load another model at run "
                                    "time; off: both refuse (403)")
    model_switch_timeout: float = key(60.0, "seconds running requests may take to finish before a switch "
                                      "cancels them (with a message saying why)", gt=0)
    model_memory_limit_mb: float = key(0.0, "a switch refuses a model whose memory estimate exceeds the memory "
                                       "free on its device, or this many MiB when smaller; 0 = the device's "
                                       "free memory alone", lo=0.0)


@dataclass(frozen=True)
class HubSettings(Section):
    """``python -m tempo deploy``."""

    space_id: str = key("", "OWNER/NAME")
    private: bool = key(False)
    token: str = key("", "a secret: .secrets.toml or TEMPO_HUB__TOKEN, never settings.toml")


ModuleDebug = make_dataclass(
    "ModuleDebug", [(name, bool, flag(False)) for name in MODULE_DEBUG_NAMES], bases=(Section,), frozen=True)
ModuleDebug.__module__ = __name__
ModuleDebug.__doc__ = "``debug.module_debug.<name>``: DEBUG lines of that module (tempo/settings/logs.py)."


@dataclass(frozen=True)
class DebugSettings(Section):
    global_debug: bool = flag(False, "every module at DEBUG")
    module_debug: ModuleDebug = field(default_factory=ModuleDebug)  # type: ignore[valid-type]


@dataclass(frozen=True)
class PerformanceSettings(Section):
    enable_profiling: bool = flag(False, "run each CLI command under cProfile (as --profile)")
    profile_output_dir: str = key("profiles", kind=str, nonempty=True, says="a folder")


@dataclass(frozen=True)
class CacheSettings(Section):
    """The prompt cache (tempo/engine/prompt_cache.py)."""

    enable_prompt_cache: bool = flag(True, "reuse the KV cache of a prompt seen before")
    prompt_cache_size: int = key(16, "entries (whole KV caches)", kind=int, lo=0, says="an integer >= 0 (entries)")
    max_cache_size_gb: float = key(2.0, "bound on the prompt cache's bytes", kind=(int, float), gt=0,
                                   says="a number > 0 (GB)")


@dataclass(frozen=True)
class Settings:
    """The validated settings, frozen: one attribute per section (``settings.app.max_batch_size``).

    ``Settings()`` (or :meth:`defaults`) holds the declared defaults; :func:`tempo.settings.load_settings`
    reads the files and the environment; :meth:`replace` gives a copy with some dotted keys changed.
    """

    model: ModelSettings = field(default_factory=ModelSettings)
    generation: GenerationSettings = field(default_factory=GenerationSettings)  # type: ignore[valid-type]
    pruning: PruningSettings = field(default_factory=PruningSettings)  # type: ignore[valid-type]
    mcts: MctsSettings = field(default_factory=MctsSettings)  # type: ignore[valid-type]
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    app: AppSettings = field(default_factory=AppSettings)
    hub: HubSettings = field(default_factory=HubSettings)
    debug: DebugSettings = field(default_factory=DebugSettings)
    performance: PerformanceSettings = field(default_factory=PerformanceSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)

    @classmethod
    def defaults(cls) -> "Settings":
        return cls()

    @classmethod
    def from_tables(cls, tables: Mapping[str, Any]) -> "Settings":
        """Typed settings from nested tables (the layers as dynaconf merged them); keys that are no
        attribute (aliases, keys accepted at one value) are left out, absent keys take their default."""
        return _build(cls, tables)

    def replace(self, changes: Mapping[str, Any]) -> "Settings":
        """A copy with ``{"section.key": value}`` changed (not validated: for values known to be good,
        such as a test's; :func:`tempo.settings.load_settings` ``overrides=`` validates)."""
        tables = self.as_dict()
        for dotted, value in changes.items():
            *path, last = dotted.lower().split(".")
            table = tables
            for part in path:
                table = table[part]
            if last not in table:
                raise KeyError(f"{dotted} is not a setting")
            table[last] = value
        return _build(Settings, tables)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SECTIONS: dict[str, type] = {f.name: f.default_factory for f in fields(Settings)}  # type: ignore[misc]
"""Section name -> its frozen dataclass, in declaration order."""


def declared(section: type = Settings, prefix: str = "") -> dict[str, dataclasses.Field]:
    """Every declared key, dotted (``debug.module_debug.api``) -> its dataclass field."""
    found: dict[str, dataclasses.Field] = {}
    for f in fields(section):
        inner = _inner(f)
        if inner is not None:
            found.update(declared(inner, f"{prefix}{f.name}."))
        else:
            found[prefix + f.name] = f
    return found


def _inner(f: dataclasses.Field) -> type | None:
    """The section class of a field that holds a section (``Settings.app``, ``debug.module_debug``)."""
    factory = f.default_factory
    return factory if isinstance(factory, type) and dataclasses.is_dataclass(factory) else None


def _build(cls: type, table: Mapping[str, Any]) -> Any:
    table = {str(k).lower(): v for k, v in dict(table or {}).items()}
    values = {}
    for f in fields(cls):
        if f.name in table:
            inner = _inner(f)
            values[f.name] = _build(inner, table[f.name]) if inner is not None else _coerce(f, table[f.name])
    return cls(**values)


def _coerce(f: dataclasses.Field, value: Any) -> Any:
    """Lossless changes to the declared type only (an int for a float, 3.0 for an int, a list for a
    tuple); anything else stays as read: the validators have judged it."""
    kind = getattr(f.type, "__name__", str(f.type))
    if isinstance(value, bool):
        return value
    if kind == "float" and isinstance(value, int):
        return float(value)
    if kind == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind.startswith("tuple") and isinstance(value, (list, tuple)):
        return tuple(value)
    return value
