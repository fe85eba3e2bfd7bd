"""Reading a transformers config: the text config, fields under their aliases, checked integers, dtypes.

A missing or contradictory config field raises ``ModelInspectionError`` naming the field (one line).
"""
from __future__ import annotations

from typing import Any

from tempo.errors import TempoError

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "float8_e4m3fn": 1, "float8_e5m2": 1}
SSM_STATE_BYTES = 4
"""transformers 5.23 keeps the recurrent (SSM) state in float32 whatever the model's dtype; the conv state
is in the model's dtype."""


class ModelInspectionError(TempoError):
    """A model's config is missing a field or contradicts itself."""


def text_config(config: Any) -> Any:
    getter = getattr(config, "get_text_config", None)
    return getter() if callable(getter) else config


def first_field(config: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return default


def need(config: Any, name: str, *aliases: str) -> Any:
    value = first_field(config, name, *aliases)
    if value is None:
        raise ModelInspectionError(f"config field {name} is missing")
    return value


def positive_int(config: Any, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ModelInspectionError(f"config field {name} must be a positive integer, got {value!r}")
    return value


def kv_heads(cfg: Any) -> int | None:
    """Key/value heads: ``num_key_value_heads`` (or Falcon's ``num_kv_heads`` / ``multi_query``), else the heads."""
    heads = first_field(cfg, "num_attention_heads")
    if getattr(cfg, "multi_query", False) is True and not getattr(cfg, "new_decoder_architecture", False):
        return 1
    return first_field(cfg, "num_key_value_heads", "num_kv_heads", default=heads)


def dtype_name(config: Any, dtype: Any = None) -> str:
    """``dtype`` (``auto``/None: the config's ``dtype``, else float32) as a name of DTYPE_BYTES."""
    if dtype in (None, "", "auto"):
        dtype = (first_field(config, "dtype", "torch_dtype") or first_field(text_config(config), "dtype", "torch_dtype")
                 or "float32")
    name = str(dtype).replace("torch.", "")
    if name not in DTYPE_BYTES:
        raise ModelInspectionError(f"dtype must be auto or one of {', '.join(DTYPE_BYTES)}, got {name!r}")
    return name
