"""The app's settings controls: one Gradio component per ``GenerationRequest`` field, named after it.

Everything here is generated from the field declarations (``tempo.request.FIELDS``): the label, the hint,
the group (main controls, then one accordion per group), the component kind (choices: radio, bool:
checkbox, number with a range: slider, else a number or text box) and the slider's range, which a
declaration narrows with ``ui_range`` where the valid range is too wide to slide. A new field therefore
appears in the app as it lands ("Other settings" when it names no group). Defaults are the effective
ones: settings.toml, then code.
"""
from __future__ import annotations

from typing import Any, Mapping

import gradio as gr

from tempo.request import FIELDS, MAIN_GROUP, OTHER_GROUP, UI_GROUPS, FieldSpec


def ui_order(fields: Mapping[str, FieldSpec] = FIELDS) -> list[str]:
    """The fields in screen order: declaration order, each ``ui_before`` field moved before its target."""
    order = [name for name in fields if not fields[name].ui_before]
    for name, spec in fields.items():
        if spec.ui_before:
            order.insert(order.index(spec.ui_before) if spec.ui_before in order else len(order), name)
    return order


def grouped(fields: Mapping[str, FieldSpec] = FIELDS) -> dict[str, list[str]]:
    """Group title -> its fields in screen order, main group first, then ``UI_GROUPS``, others, "Other settings"."""
    groups: dict[str, list[str]] = {}
    for name in ui_order(fields):
        if fields[name].group is not None:
            groups.setdefault(fields[name].group, []).append(name)
    known = [g for g in UI_GROUPS if g in groups]
    rest = [g for g in groups if g not in UI_GROUPS and g != OTHER_GROUP]
    return {g: groups[g] for g in known + rest + ([OTHER_GROUP] if OTHER_GROUP in groups else [])}


MAIN = tuple(grouped().get(MAIN_GROUP, ()))
NOT_CONTROLS = tuple(name for name, spec in FIELDS.items() if spec.group is None)
"""Fields the app lays out itself: the prompt box and the mode radio."""


def grouped_fields(fields: Mapping[str, FieldSpec] = FIELDS) -> dict[str, list[str]]:
    """Accordion title -> the fields it shows (the main group is not an accordion)."""
    return {title: names for title, names in grouped(fields).items() if title != MAIN_GROUP}


def control(name: str, default: Any, max_tokens_limit: int = 1024,
            fields: Mapping[str, FieldSpec] = FIELDS) -> gr.components.Component:
    """The component for one request field, its value the effective default."""
    spec = fields[name]
    common: dict[str, Any] = {"label": spec.label, "info": spec.info or None, "elem_id": f"ctl-{name}"}
    if spec.choices:
        return gr.Radio(list(spec.choices), value=default, **common)
    if spec.type is bool:
        return gr.Checkbox(value=bool(default), **common)
    if spec.type in (int, float):
        lo, hi = spec.ui_bounds(max_tokens_limit=max_tokens_limit)
        if spec.slider and lo is not None and hi is not None:
            step = spec.ui_step or (1 if spec.type is int else 0.01)
            return gr.Slider(min(lo, default), max(hi, default), value=default, step=step, **common)
        return gr.Number(value=default, precision=0 if spec.type is int else None, **common)
    return gr.Textbox(value="" if default is None else str(default), **common)


def to_overrides(names: list[str], values: tuple[Any, ...],
                 fields: Mapping[str, FieldSpec] = FIELDS) -> dict[str, Any]:
    """The controls' values as ``build_request`` overrides (ints from sliders made ints)."""
    out = {}
    for name, value in zip(names, values):
        if fields[name].type is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        out[name] = value
    return out
