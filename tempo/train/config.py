"""Training configuration: one flat ``TrainConfig``, model presets, stage presets.

Precedence, lowest first: code defaults < the ``train`` settings section
(``settings.toml`` ``[default.train]`` and ``TEMPO_TRAIN__KEY`` variables) < the
model preset (``model_size``) and the stage preset (``stage``) for the keys they
name < a YAML file (``--config``) < command-line flags. A preset therefore beats the settings section but never
a value the user wrote in the YAML file or on the command line.

The code defaults are declared once: a field that is a ``train`` settings key takes its default
from ``tempo.settings.schema.TrainSettings``; the model dimensions, which are no settings keys,
take theirs from the default ``model_size``'s preset.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from tempo.errors import TempoError
from tempo.settings.schema import TrainSettings


class TrainConfigError(TempoError, ValueError):
    """A training or data option is invalid; the message names the key and what is allowed."""


class TrainDataError(TempoError):
    """Prepared data or a corpus is missing or does not fit the configuration."""


SPECIAL_TOKENS = (
    "<pad>", "<unk>", "<bos>", "<eos>", "<sep>",
    "### Language:", "### Code:", "### End", "<tool_call>", "</tool_call>",
)
"""The seeds' special tokens; their order fixes their ids (pad 0, unk 1, bos 2, eos 3)."""

MODEL_KEYS = ("vocab_size", "d_model", "n_layers", "n_heads", "d_ff", "max_seq_len")

MODEL_PRESETS: dict[str, dict[str, int]] = {
    # The seeds' sizes (~10M / ~150M / ~1.6B / "~7B" in the seeds' table).
    "tiny": dict(vocab_size=32000, d_model=256, n_layers=4, n_heads=4, d_ff=1024, max_seq_len=512),
    "medium": dict(vocab_size=32000, d_model=768, n_layers=12, n_heads=12, d_ff=3072, max_seq_len=1024),
    "large": dict(vocab_size=32000, d_model=1600, n_layers=32, n_heads=25, d_ff=6400, max_seq_len=4096),
    "xlarge": dict(vocab_size=32000, d_model=2048, n_layers=40, n_heads=32, d_ff=8192, max_seq_len=8192),
    # The shipped model: trains ~1.5k tokens/s on one CPU thread, 21 MB in float32.
    "nano": dict(vocab_size=8192, d_model=256, n_layers=4, n_heads=4, d_ff=704, max_seq_len=256),
}

STAGE_PRESETS: dict[str, dict[str, Any]] = {
    # Stage 1 of the seeds: language pretraining from scratch.
    "language": dict(learning_rate=1e-4, warmup_steps=2000, num_epochs=3, weight_decay=0.1),
    # Stage 2 of the seeds: code fine-tuning of a stage-1 model (set init_from), 5e-6 .. 1e-5.
    "code": dict(learning_rate=5e-6, warmup_steps=1000, num_epochs=5, weight_decay=0.1, grad_clip=1.0),
    # Stage 3 of the seeds: supervised fine-tuning on tool calls (sft_file), from init_from.
    # Its own output folder, so that the model it starts from is never overwritten by default.
    "tools": dict(learning_rate=3e-6, warmup_steps=10, num_epochs=3, weight_decay=0.01, grad_clip=1.0,
                  output_dir="~/.cache/tempo/train/tools", model_name="tempo-tools"),
    # Stage 4 of the seeds: RLHF as Direct Preference Optimization (preference_file), from init_from.
    "rlhf": dict(learning_rate=1e-6, warmup_steps=10, num_epochs=1, weight_decay=0.0, grad_clip=1.0,
                 output_dir="~/.cache/tempo/train/rlhf", model_name="tempo-rlhf"),
}
FINETUNE_STAGES = {"tools": "sft_file", "rlhf": "preference_file"}
"""The stages that fine-tune init_from on a JSONL file (tempo/train/finetune.py), and the key naming it."""

_DEFAULTS = TrainSettings()
"""The declared defaults of the ``train`` settings keys, TrainConfig's defaults."""
_SIZE = MODEL_PRESETS[_DEFAULTS.model_size]
"""The default model dimensions: those of the default model_size."""

LR_DECAYS = ("cosine", "linear", "constant")
DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass
class TrainConfig:
    """Every option of ``python -m tempo train`` and ``train prepare``."""

    # --- model -----------------------------------------------------------------
    model_size: str = _DEFAULTS.model_size
    """A preset of MODEL_PRESETS; its dimensions fill the model keys not set in --config or flags."""
    vocab_size: int = _SIZE["vocab_size"]
    d_model: int = _SIZE["d_model"]
    n_layers: int = _SIZE["n_layers"]
    n_heads: int = _SIZE["n_heads"]
    d_ff: int = _SIZE["d_ff"]
    max_seq_len: int = _SIZE["max_seq_len"]
    dropout: float = _DEFAULTS.dropout
    use_rmsnorm: bool = _DEFAULTS.use_rmsnorm
    """With use_rope: Llama. LayerNorm + RoPE: GPT-NeoX. LayerNorm + learned positions: GPT-2."""
    use_rope: bool = _DEFAULTS.use_rope
    tie_embeddings: bool = _DEFAULTS.tie_embeddings
    """Share input embedding and output head (halves the size of small models)."""

    # --- optimisation ------------------------------------------------------------
    stage: str = _DEFAULTS.stage
    """"" (none), language, code, tools or rlhf: the seeds' learning rate, warmup and epochs for that stage."""
    learning_rate: float = _DEFAULTS.learning_rate
    min_lr_ratio: float = _DEFAULTS.min_lr_ratio
    """The decay ends at learning_rate * min_lr_ratio."""
    lr_decay: str = _DEFAULTS.lr_decay
    warmup_steps: int = _DEFAULTS.warmup_steps
    weight_decay: float = _DEFAULTS.weight_decay
    grad_clip: float = _DEFAULTS.grad_clip
    """Clip the gradient norm to this; 0 disables."""
    batch_size: int = _DEFAULTS.batch_size
    grad_accumulation_steps: int = _DEFAULTS.grad_accumulation_steps
    num_epochs: int = _DEFAULTS.num_epochs
    max_steps: int = _DEFAULTS.max_steps
    """Optimizer steps; 0 = num_epochs passes over the training data."""
    use_compile: bool = _DEFAULTS.use_compile
    use_amp: bool = _DEFAULTS.use_amp
    """bfloat16 autocast (float16 with loss scaling on CUDA cards without bfloat16)."""
    gradient_checkpointing: bool = _DEFAULTS.gradient_checkpointing
    seed: int = _DEFAULTS.seed
    num_threads: int = _DEFAULTS.num_threads
    """torch CPU threads; 0 = torch's default."""
    device: str = _DEFAULTS.device

    # --- evaluation, checkpoints, output ------------------------------------------
    eval_interval: int = _DEFAULTS.eval_interval
    """Validation loss every this many steps (and at the end)."""
    eval_batches: int = _DEFAULTS.eval_batches
    checkpoint_interval: int = _DEFAULTS.checkpoint_interval
    resume: bool = _DEFAULTS.resume
    """Continue from checkpoint_dir/last.pt when it exists."""
    init_from: str = _DEFAULTS.init_from
    """A saved model folder to start from (fine-tuning, e.g. the code stage); "" = random init. The tools and
    rlhf stages also take a checkpoint file (checkpoint_dir/last.pt, with the tokenizer of data_dir)."""
    checkpoint_dir: str = _DEFAULTS.checkpoint_dir
    output_dir: str = _DEFAULTS.output_dir
    model_name: str = _DEFAULTS.model_name

    # --- data ----------------------------------------------------------------------
    data_dir: str = _DEFAULTS.data_dir
    """Where ``train prepare`` writes the arrays (data_file, val_file), tokenizer/ and meta.json."""
    data_file: str = _DEFAULTS.data_file
    """The training array: a bare file name lies inside data_dir, anything with a folder is a path."""
    val_file: str = _DEFAULTS.val_file
    """The validation array, named the same way."""
    corpus_dir: str = _DEFAULTS.corpus_dir
    """Folder of text or source files; "" = this interpreter's standard library source."""
    file_patterns: list[str] = field(default_factory=lambda: list(_DEFAULTS.file_patterns))
    exclude_dirs: list[str] = field(default_factory=lambda: list(_DEFAULTS.exclude_dirs))
    val_fraction: float = _DEFAULTS.val_fraction
    seq_length: int = _DEFAULTS.seq_length
    """Tokens a prepared sequence; 0 = max_seq_len."""
    min_frequency: int = _DEFAULTS.min_frequency
    max_files: int = _DEFAULTS.max_files
    """Use at most this many files of the corpus (sorted); 0 = all."""

    # --- stages tools and rlhf ---------------------------------------------------------
    sft_file: str = _DEFAULTS.sft_file
    """Stage tools: JSONL, one {"prompt", "completion"} a line; the loss covers the completion only."""
    preference_file: str = _DEFAULTS.preference_file
    """Stage rlhf: JSONL, one {"prompt", "chosen", "rejected"} a line."""
    dpo_beta: float = _DEFAULTS.dpo_beta
    """Stage rlhf: DPO's beta, the strength of the pull towards the reference model."""

    def validate(self) -> "TrainConfig":
        """Raise TrainConfigError naming the first bad key; return self."""
        _choice("model_size", self.model_size, tuple(MODEL_PRESETS))
        if self.stage:
            _choice("stage", self.stage, tuple(STAGE_PRESETS))
        for key in MODEL_KEYS:
            _int_min(key, getattr(self, key), 1)
        if self.vocab_size < len(SPECIAL_TOKENS) + 256:
            raise TrainConfigError(f"vocab_size must be >= {len(SPECIAL_TOKENS) + 256} "
                                   f"(256 bytes + {len(SPECIAL_TOKENS)} special tokens), got {self.vocab_size}")
        if self.d_model % self.n_heads:
            raise TrainConfigError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.use_rope and (self.d_model // self.n_heads) % 2:
            raise TrainConfigError(f"RoPE needs an even head size; d_model / n_heads = {self.d_model // self.n_heads}")
        if self.use_rmsnorm and not self.use_rope:
            raise TrainConfigError("use_rmsnorm without use_rope is not supported: no standard Hugging Face "
                                   "architecture has RMSNorm with learned positions; turn use_rope on (Llama) "
                                   "or use_rmsnorm off (GPT-2)")
        _range("dropout", self.dropout, 0.0, 0.99)
        if not self.learning_rate > 0 or not math.isfinite(self.learning_rate):
            raise TrainConfigError(f"learning_rate must be > 0, got {self.learning_rate}")
        _range("min_lr_ratio", self.min_lr_ratio, 0.0, 1.0)
        _choice("lr_decay", self.lr_decay, LR_DECAYS)
        _range("weight_decay", self.weight_decay, 0.0, 10.0)
        _range("grad_clip", self.grad_clip, 0.0, 1e6)
        for key in ("batch_size", "grad_accumulation_steps", "num_epochs", "eval_interval", "eval_batches",
                    "checkpoint_interval", "min_frequency"):
            _int_min(key, getattr(self, key), 1)
        for key in ("warmup_steps", "max_steps", "num_threads", "seq_length", "max_files", "seed"):
            _int_min(key, getattr(self, key), 0)
        if self.seq_length > self.max_seq_len:
            raise TrainConfigError(f"seq_length ({self.seq_length}) must be <= max_seq_len ({self.max_seq_len})")
        _choice("device", self.device.split(":")[0], DEVICES)
        if not 0.0 < self.val_fraction < 1.0:
            raise TrainConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if not self.file_patterns:
            raise TrainConfigError("file_patterns must name at least one pattern, e.g. ['*.py']")
        for key in ("output_dir", "checkpoint_dir", "data_dir", "model_name", "data_file", "val_file"):
            if not getattr(self, key):
                raise TrainConfigError(f"{key} must not be empty")
        if not self.dpo_beta > 0 or not math.isfinite(self.dpo_beta):
            raise TrainConfigError(f"dpo_beta must be > 0, got {self.dpo_beta}")
        if self.stage in FINETUNE_STAGES:
            file_key = FINETUNE_STAGES[self.stage]
            if not self.init_from:
                raise TrainConfigError(f"init_from must name a model folder or a checkpoint for stage {self.stage} "
                                       "(it fine-tunes a trained model)")
            if not getattr(self, file_key):
                raise TrainConfigError(f"{file_key} must name a JSONL file for stage {self.stage}")
            if self.path("output_dir").resolve() == self.path("init_from").resolve():
                raise TrainConfigError(f"output_dir must differ from init_from ({self.init_from}): stage "
                                       f"{self.stage} writes a new model folder and keeps the one it starts from")
        return self

    @property
    def sequence_length(self) -> int:
        return self.seq_length or self.max_seq_len

    def path(self, key: str) -> Path:
        """A path option, with ``~`` expanded and a relative path taken from the working directory."""
        return Path(getattr(self, key)).expanduser()

    def model_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in MODEL_KEYS + ("dropout", "use_rmsnorm", "use_rope", "tie_embeddings")}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in fields(TrainConfig)}
ALIASES = {"name": "model_size", "grad_accum": "grad_accumulation_steps", "max_length": "seq_length",
           "epochs": "num_epochs", "lr": "learning_rate"}


def resolve_config(settings_section: Mapping[str, Any] | None = None, yaml_values: Mapping[str, Any] | None = None,
                   cli_values: Mapping[str, Any] | None = None) -> TrainConfig:
    """Layer settings < presets < YAML < flags (see the module docstring) and validate."""
    settings_values = _normalise(settings_section or {}, "settings train section")
    yaml_values = _normalise(yaml_values or {}, "--config")
    cli_values = _normalise({k: v for k, v in (cli_values or {}).items() if v is not None}, "flag")
    explicit = {**yaml_values, **cli_values}
    values = dict(settings_values)
    size = explicit.get("model_size", settings_values.get("model_size", TrainConfig.model_size))
    if size not in MODEL_PRESETS:
        raise TrainConfigError(f"model_size must be one of {', '.join(MODEL_PRESETS)}, got {size!r}")
    values.update(MODEL_PRESETS[size])
    stage = explicit.get("stage", settings_values.get("stage", TrainConfig.stage))
    if stage:
        if stage not in STAGE_PRESETS:
            raise TrainConfigError(f"stage must be one of {', '.join(STAGE_PRESETS)} (or empty), got {stage!r}")
        values.update(STAGE_PRESETS[stage])
    values.update(explicit)
    return TrainConfig(**values).validate()


def load_yaml(path: Path) -> dict[str, Any]:
    """The mapping of a YAML config file; TrainConfigError when it cannot be read or is not a mapping."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise TrainConfigError(f"--config: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise TrainConfigError(f"--config: {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TrainConfigError(f"--config: {path} must hold a mapping of option: value")
    return data


def _normalise(raw: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Lower-case keys, resolve aliases, reject unknown keys, coerce types (YAML reads ``5e-6`` as a string)."""
    out: dict[str, Any] = {}
    for key, value in dict(raw).items():
        name = ALIASES.get(str(key).lower(), str(key).lower())
        if name not in FIELDS:
            raise TrainConfigError(f"{source}: unknown option {key!r}; known: {', '.join(sorted(FIELDS))}")
        out[name] = _coerce(name, value, source)
    return out


def _coerce(name: str, value: Any, source: str) -> Any:
    kind = FIELDS[name].type
    try:
        if kind == "bool":
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "str":
            return str(value)
        if kind == "list[str]":
            return [str(v) for v in value] if isinstance(value, (list, tuple)) else [s.strip() for s in str(value).split(",") if s.strip()]
    except (TypeError, ValueError):
        raise TrainConfigError(f"{source}: {name} must be {kind}, got {value!r}") from None
    return value


def _choice(key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise TrainConfigError(f"{key} must be one of {', '.join(choices)}, got {value!r}")


def _int_min(key: str, value: int, lo: int) -> None:
    if value < lo:
        raise TrainConfigError(f"{key} must be >= {lo}, got {value}")


def _range(key: str, value: float, lo: float, hi: float) -> None:
    if not lo <= value <= hi:
        raise TrainConfigError(f"{key} must be in [{lo}, {hi}], got {value}")
