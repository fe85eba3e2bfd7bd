"""Where a model's weights live and in what form: one device, a device map over GPUs / CPU / disk
(accelerate), tensor parallelism (``tp_plan``, under ``torchrun``), and quantized weights.

``placement_arguments`` turns the ``model`` section into ``from_pretrained`` keyword arguments (refusing,
before any download, what this machine or this build cannot do); ``execution_device`` is the device a
placed model takes its inputs on; ``weight_bytes`` counts what the weights really hold (quantized tensors
count their integer data and scales, offloaded ones nothing in memory).
"""
from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from typing import Any, Mapping

import torch

from tempo.errors import ModelLoadError
from tempo.settings.schema import QUANTIZATIONS

log = logging.getLogger(__name__)
SEEDS_NAMES = {"8bit": "bnb-8bit", "4bit": "bnb-4bit"}
"""The configuration guide's quantization names."""


@dataclass(frozen=True)
class Placement:
    """The ``model`` section's placement keys, as ``load_model`` takes them."""

    device_map: str | Mapping[str, Any] = ""
    max_memory: Mapping[str, Any] | None = None
    offload_folder: str = ""
    quantization: str = ""
    tp_plan: str = ""

    @property
    def placed(self) -> bool:
        """Does transformers / accelerate place the weights (rather than one ``.to(device)``)?"""
        return bool(self.device_map) or bool(self.tp_plan)

    def describe(self) -> dict[str, Any]:
        return {"device_map": _plain(self.device_map) or None, "max_memory": _plain(self.max_memory) or None,
                "offload_folder": self.offload_folder or None, "quantization": self.quantization or None,
                "tp_plan": self.tp_plan or None}


def placement_arguments(placement: Placement, target: torch.device) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments for ``placement`` on ``target``; ModelLoadError for what
    this machine or build cannot do, naming the setting."""
    kwargs: dict[str, Any] = {}
    if placement.tp_plan:
        if placement.device_map:
            raise ModelLoadError("model.tp_plan and model.device_map exclude each other: tensor parallelism "
                                 "places every layer on every process")
        if int(os.environ.get("WORLD_SIZE", "1")) < 2:
            raise ModelLoadError("model.tp_plan = \"auto\" needs several processes: start TEMPO under torchrun "
                                 "(torchrun --nproc-per-node N -m tempo serve ...; docs/scale.md)")
        from transformers.distributed import DistributedConfig

        kwargs["distributed_config"] = DistributedConfig(tp_plan=placement.tp_plan)
    if placement.device_map:
        _require("accelerate", "model.device_map")
        device_map = _plain(placement.device_map)
        kwargs["device_map"] = {k: _device(v) for k, v in device_map.items()} if isinstance(device_map, dict) \
            else device_map
    elif placement.max_memory or placement.offload_folder:
        raise ModelLoadError("model.max_memory and model.offload_folder need model.device_map (e.g. \"auto\")")
    if placement.max_memory:
        kwargs["max_memory"] = {_device(k): v for k, v in _plain(placement.max_memory).items()}
    if placement.offload_folder:
        kwargs["offload_folder"] = os.path.expanduser(placement.offload_folder)
    config = quantization_config(placement.quantization, target)
    if config is not None:
        kwargs["quantization_config"] = config
    return kwargs


def quantization_config(name: str, target: torch.device) -> Any:
    """The transformers quantization config of ``model.quantization`` (None for full precision)."""
    if name not in QUANTIZATIONS:
        raise ModelLoadError(f"model.quantization must be one of {', '.join(repr(q) for q in QUANTIZATIONS)}, "
                             f"got {name!r}")
    name = SEEDS_NAMES.get(name, name)
    if not name:
        return None
    if name.startswith("bnb-"):
        if target.type != "cuda":
            raise ModelLoadError(f"model.quantization = {name!r} needs a CUDA device (bitsandbytes); on "
                                 f"{target.type} use \"int8\" or \"int4\" (torchao)")
        _require("bitsandbytes", f"model.quantization = {name!r}")
        from transformers import BitsAndBytesConfig

        return BitsAndBytesConfig(load_in_8bit=True) if name == "bnb-8bit" else BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16)
    _require("torchao", f"model.quantization = {name!r}")
    from transformers import TorchAoConfig
    from torchao.quantization import Int4WeightOnlyConfig, Int8WeightOnlyConfig, IntxWeightOnlyConfig
    from torchao.quantization.granularity import PerGroup

    if name == "int8":
        return TorchAoConfig(Int8WeightOnlyConfig())
    if target.type == "cuda":
        return TorchAoConfig(Int4WeightOnlyConfig(group_size=128))
    return TorchAoConfig(IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(32)))


def _require(package: str, setting: str) -> None:
    if importlib.util.find_spec(package) is None:
        raise ModelLoadError(f"{setting} needs the {package} package, which is not installed "
                             f"(pip install {package})")


def _device(value: Any) -> Any:
    """TOML keys are strings: ``"0"`` means CUDA device 0."""
    return int(value) if isinstance(value, str) and value.isdigit() else value


def _plain(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else value


def execution_device(model: Any, fallback: torch.device) -> torch.device:
    """The device a placed model takes its inputs on: the first accelerator of its device map, else the
    CPU (accelerate streams CPU- and disk-offloaded layers to it); ``fallback`` for a model on one device."""
    device_map = getattr(model, "hf_device_map", None)
    if not device_map:
        first = next(model.parameters(), None)
        return first.device if first is not None and first.device.type != "meta" else fallback
    for place in device_map.values():
        if isinstance(place, int):
            return torch.device("cuda", place)
        if isinstance(place, (str, torch.device)) and str(place) not in ("cpu", "disk"):
            return torch.device(place)
    return torch.device("cpu")


def weight_bytes(model: Any) -> dict[str, int]:
    """Bytes of the model's parameters by where they are: ``memory`` (on a device or the CPU; a quantized
    tensor counts its integer data and scales) and ``offloaded`` (on disk or elsewhere, meta here)."""
    memory = offloaded = 0
    for parameter in model.parameters():
        n = tensor_bytes(parameter)
        if parameter.device.type == "meta":
            offloaded += n
        else:
            memory += n
    return {"memory": memory, "offloaded": offloaded}


def tensor_bytes(tensor: torch.Tensor) -> int:
    """What a tensor holds: its storage, or for a tensor subclass (torchao's quantized weights) the sum of
    its inner tensors."""
    flatten = getattr(type(tensor), "__tensor_flatten__", None)
    if flatten is not None and type(tensor) not in (torch.Tensor, torch.nn.Parameter):
        names, _ = tensor.__tensor_flatten__()
        return sum(tensor_bytes(getattr(tensor, name)) for name in names)
    return tensor.numel() * tensor.element_size()
