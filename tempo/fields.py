"""How a request field is declared once: :func:`declare` puts a :class:`FieldSpec`'s attributes in a dataclass
field's metadata; :func:`fields_of` reads them back, in declaration order, for the generators of every
interface (validation, settings validators, CLI flags, app controls, REST body, docs table).

``tempo.request`` declares ``GenerationRequest``'s fields with it; nothing here names one of them, so a copy
of the declaration with one more field (a subclass) goes through the same generators.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, fields
from typing import Any

from tempo.errors import RequestError

MAIN_GROUP = "main"
"""The UI group shown above the accordions."""
OTHER_GROUP = "Other settings"
LIMITS = {"generation.max_tokens_limit": 1024, "mcts.max_depth": 32, "mcts.max_simulations": 1000}
"""Settings that bound a request field (``hi_setting``), with the bound used when no settings are given."""
_PYTHON_TYPES = {"int": int, "float": float, "bool": bool, "str": str}


def limit_arg(setting: str) -> str:
    """The keyword that carries a bounding setting to ``validate`` (``mcts.max_depth`` -> ``mcts_max_depth``)."""
    section, _, key = setting.partition(".")
    return key if section == "generation" else f"{section}_{key}"


@dataclass(frozen=True)
class Flag:
    """One CLI option of a field: its spellings; a ``const`` makes it a store_const (``--use-mcts``)."""

    names: tuple[str, ...]
    const: Any = None
    help: str = ""


@dataclass(frozen=True)
class FieldSpec:
    """Everything the interfaces know about one request field (see :func:`declare` for the meanings)."""

    name: str
    type: type
    default: Any
    help: str = ""
    label: str = ""
    info: str = ""
    doc: str = ""
    group: str | None = OTHER_GROUP
    section: str = "generation"
    key: str = ""
    lo: float | None = None
    hi: float | None = None
    hi_setting: str = ""
    choices: tuple[str, ...] = ()
    lo_excluded: str = ""
    required: bool = False
    ui_range: tuple[Any, Any] | None = None
    ui_step: float | None = None
    slider: bool = True
    ui_before: str = ""
    flags: tuple[Flag, ...] = ()
    checked_last: bool = False
    aliases: tuple[str, ...] = ()

    @property
    def setting(self) -> str:
        """``section.key`` (``mcts.depth``); "" for the prompt, which has no setting."""
        return f"{self.section}.{self.key}" if self.section else ""

    @property
    def limit_arg(self) -> str:
        """The keyword of ``validate`` / ``check`` that carries ``hi_setting`` (``mcts_max_depth``)."""
        return limit_arg(self.hi_setting)

    @property
    def cli(self) -> tuple[Flag, ...]:
        """The CLI options: the declared ones, else ``--field-name`` and ``--alias`` of each alias
        (``--no-field-name`` for a bool that is on)."""
        if self.flags:
            return self.flags
        dashed = self.name.replace("_", "-")
        if self.type is bool and self.default is True:
            return (Flag((f"--no-{dashed}",), const=False, help=self.help),)
        return (Flag((f"--{dashed}", *(f"--{a.replace('_', '-')}" for a in self.aliases)), help=self.help),)

    @property
    def check_phase(self) -> int:
        """Where ``validate`` checks this field: the prompt, then ranges and choices, then booleans, then text,
        then ``checked_last`` ones — today's order, so a request with two errors names the same one first."""
        if self.checked_last:
            return 4
        if self.required:
            return 0
        if self.choices or self.type in (int, float):
            return 1
        return 2 if self.type is bool else 3

    def bounds(self, **limits: Any) -> tuple[Any, Any]:
        """The valid ``(lo, hi)``; ``hi`` from ``limits[limit_arg]`` when a setting bounds the field."""
        if self.hi_setting:
            return self.lo, limits.get(self.limit_arg, LIMITS[self.hi_setting])
        return self.lo, self.hi

    def ui_bounds(self, **limits: Any) -> tuple[Any, Any]:
        """The slider's ``(lo, hi)``: ``ui_range`` (its ends may name a setting, as in ``LIMITS``), else valid."""
        if self.ui_range is None:
            return self.bounds(**limits)
        return tuple(limits.get(limit_arg(end), LIMITS[end]) if isinstance(end, str) else end
                     for end in self.ui_range)

    def check(self, value: Any, **limits: Any) -> None:
        """Raise ``RequestError(name, ...)`` when ``value`` is not valid for this field."""
        if self.choices:
            _choice(self.name, value, self.choices)
        elif self.type is bool:
            if not isinstance(value, bool):
                raise RequestError(self.name, f"must be true or false, got {shown(value)}")
        elif self.type is str:
            if not isinstance(value, str) or (self.required and not value.strip()):
                raise RequestError(self.name, "must be a non-empty string" if self.required else "must be a string")
        elif self.type is int:
            lo, hi = self.bounds(**limits)
            _int_range(self.name, value, lo if lo is not None else -math.inf, hi)
        else:
            lo, hi = self.bounds(**limits)
            _range(self.name, value, lo if lo is not None else -math.inf, hi if hi is not None else math.inf)
            if self.lo_excluded and value == lo:
                raise RequestError(self.name, self.lo_excluded)


def declare(default: Any = dataclasses.MISSING, **spec: Any) -> Any:
    """A ``GenerationRequest`` field with its declaration (any :class:`FieldSpec` attribute but name, type and
    default) in ``metadata["tempo"]``.

    ``help``: the CLI help (``--help``); ``label`` / ``info``: the app control's label and hint; ``doc``: the
    longer note of ``docs/requests.md``; ``group``: the app's group (``None``: no generic control);
    ``section`` / ``key``: where its settings default lives (key: the name without ``section_``);
    ``lo`` / ``hi`` or ``choices``: the valid values, ``hi_setting`` when a setting is the upper bound;
    ``lo_excluded``: the message when the value is ``lo`` (an open interval); ``ui_range`` / ``ui_step`` /
    ``slider``: the app's slider where it differs from the valid range; ``ui_before``: a field whose control
    this one precedes; ``flags``: CLI spellings other than ``--field-name``; ``aliases``: other names of the
    field (the seeds' ``threshold``), accepted wherever a request is built from names (keyword arguments, REST
    bodies, ``gradio_client`` settings dicts: :func:`resolve_aliases`) and as ``--alias`` flags.
    """
    return dataclasses.field(default=default, metadata={"tempo": spec})


@functools.cache
def fields_of(request_type: type) -> dict[str, FieldSpec]:
    """Name -> :class:`FieldSpec` of a request dataclass, in declaration order (a subclass adds its fields).

    The generators of the interfaces take this as an argument, so a copy of the declaration with one more
    field reaches every surface (tests/test_request_fields.py)."""
    specs = {}
    for f in fields(request_type):
        spec = dict(f.metadata.get("tempo", {}))
        kind = _PYTHON_TYPES.get(f.type, f.type) if isinstance(f.type, str) else f.type
        section = spec.pop("section", "generation")
        spec.setdefault("label", f.name.replace("_", " ").capitalize())
        spec.setdefault("key", f.name.removeprefix(f"{section}_") if section else "")
        default = None if f.default is dataclasses.MISSING else f.default
        specs[f.name] = FieldSpec(name=f.name, type=kind, default=default, section=section, **spec)
    return specs


def resolve_aliases(values: dict[str, Any], specs: dict[str, FieldSpec]) -> dict[str, Any]:
    """``values`` with every alias key renamed to its field (``threshold`` -> ``selection_threshold``); a field
    given under two of its names is a ``RequestError`` naming both. ``None`` means "not given", as everywhere."""
    out = dict(values)
    for spec in specs.values():
        for alias in spec.aliases:
            if alias not in out:
                continue
            value = out.pop(alias)
            if value is None:
                continue
            if out.get(spec.name) is not None:
                raise RequestError(spec.name, f"given twice, as {spec.name} and as {alias} (its other name); "
                                              "give one of them")
            out[spec.name] = value
    return out


@functools.cache
def check_order(request_type: type) -> tuple[FieldSpec, ...]:
    """The fields in the order ``validate`` checks them: by ``check_phase``, declaration order within one."""
    return tuple(sorted(fields_of(request_type).values(), key=lambda spec: spec.check_phase))


def shown(value: Any, limit: int = 80) -> str:
    """``repr(value)`` for an error message, cut at ``limit`` characters: a refused value is echoed back, so a
    megabyte string or an integer of 5,000 digits (whose ``repr`` Python refuses) must not make the message."""
    try:
        text = repr(value)
    except ValueError:  # an int past sys.get_int_max_str_digits()
        return f"an integer of {value.bit_length()} bits"
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _range(name: str, value: float, lo: float, hi: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value) or not lo <= value <= hi:
        raise RequestError(name, f"must be in [{lo}, {hi}], got {shown(value)}")


INT64_MAX = 2**63 - 1
"""The bound of an integer field declared without one (``top_k``): the engine hands the values to torch as int64."""


def _int_range(name: str, value: int, lo: int, hi: int | None) -> None:
    top = hi if hi is not None else INT64_MAX
    if not isinstance(value, int) or isinstance(value, bool) or value < lo or value > top:
        unbounded = hi is None and not (isinstance(value, int) and value > top)
        bounds = f">= {lo}" if unbounded else f"in [{lo}, {top}]"
        raise RequestError(name, f"must be an integer {bounds}, got {shown(value)}")


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise RequestError(name, f"must be one of {', '.join(choices)}, got {shown(value)}")
