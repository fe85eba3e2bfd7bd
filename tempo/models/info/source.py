"""Reading a model's config from a local folder or a hub id, and ``inspect_model`` (``python -m tempo info``)."""
from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from tempo.models.info.fields import ModelInspectionError
from tempo.models.info.memory import count_parameters
from tempo.models.info.report import describe

REQUIRED = ("vocab_size", "hidden_size", "num_hidden_layers")


def _check_raw(folder: Path, config_class: Any) -> None:
    """Fields transformers would silently fill with a class default must be in a local config.json."""
    path = folder / "config.json"
    if not path.is_file():
        return
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelInspectionError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ModelInspectionError(f"{path}: not a JSON object")
    scopes = [raw] + [raw[k] for k in ("text_config", "language_config") if isinstance(raw.get(k), dict)]
    aliases = getattr(config_class, "attribute_map", {}) or {}
    for name in REQUIRED:
        keys = {name, aliases.get(name, name)} | {alias for alias, real in aliases.items() if real == name}
        if not any(k in scope for scope in scopes for k in keys):
            raise ModelInspectionError(f"config field {name} is missing from {path}")


def load_config(model_id: str, trust_remote_code: bool = False, local_files_only: bool = False,
                revision: str = "", cache_dir: str = "") -> Any:
    from transformers import AutoConfig

    from tempo.models.loading import resolve_model_path

    path = resolve_model_path(model_id)
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, "local_files_only": local_files_only}
    if revision:
        kwargs["revision"] = revision
    if cache_dir:
        kwargs["cache_dir"] = str(Path(cache_dir).expanduser())
    if model_id.startswith(("/", "./", "../", "~")) and not Path(path).exists():
        raise ModelInspectionError(f"could not read model {model_id!r}: no such folder")
    folder = Path(path)
    if folder.is_dir():
        try:
            model_type = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model_type")
        except (OSError, ValueError, AttributeError):
            model_type = None
        try:
            from transformers import CONFIG_MAPPING
            config_class = CONFIG_MAPPING[model_type] if model_type else None
        except KeyError:
            config_class = None
        _check_raw(folder, config_class)
    try:
        return AutoConfig.from_pretrained(path, **kwargs)
    except Exception as exc:  # noqa: BLE001 -- any library failure becomes one line
        cause = exc.__cause__ if exc.__cause__ is not None and str(exc.__cause__).strip() else exc
        lines = [line.strip() for line in str(cause).strip().splitlines() if line.strip()]
        reason = lines[0] if lines else type(cause).__name__
        raise ModelInspectionError(f"could not read the config of {model_id!r}: {reason}") from None


def inspect_model(model_id: str, dtype: str = "auto", max_seq_len: int | None = None, parallel_tokens: int = 5,
                  quantization: str = "", **load: Any) -> dict[str, Any]:
    """``describe`` for a local folder or hub id; the parameter count from the safetensors headers when the
    weights are local, else estimated from the config (``parameters_source`` says which)."""
    from tempo.models.loading import resolve_model_path

    config = load_config(model_id, **load)
    path = resolve_model_path(model_id)
    try:
        parameters = count_parameters(path)
    except (OSError, ValueError, KeyError, struct.error) as exc:
        raise ModelInspectionError(f"could not read the safetensors header of {model_id!r}: {exc}") from None
    source = "safetensors header" if parameters is not None else None
    try:
        info = describe(config, dtype=dtype, parameters=parameters, max_seq_len=max_seq_len,
                        parallel_tokens=parallel_tokens, parameters_source=source, quantization=quantization)
    except (AttributeError, TypeError, ValueError, ZeroDivisionError) as exc:  # a config shape not foreseen
        raise ModelInspectionError(f"could not describe {model_id!r} from its config: "
                                   f"{type(exc).__name__}: {exc}") from None
    return {"model": model_id, **info}
