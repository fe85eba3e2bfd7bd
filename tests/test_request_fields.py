"""Each request field is declared once (tempo/request.py) and every surface is generated from it: validation,
the settings validators, the generate / compare flags, the app's controls, the REST body and docs/requests.md.

Two kinds of check: every declared field reaches every surface; and a copy of the declaration with throwaway
fields (a subclass) goes through the same generators, so a field added in one place reaches them all."""
import argparse
from dataclasses import dataclass
from typing import Optional

import gradio as gr
import pytest
from dynaconf import Dynaconf, ValidationError

from tempo.cli import build_parser
from tempo.cli.generate import add_request_arguments, request_overrides
from tempo.docs import REQUESTS_PAGE, request_table, requests_page
from tempo.errors import RequestError
from tempo.request import FIELDS, GenerationRequest, declare, fields_of
from tempo.serve.rest import request_model
from tempo.settings.rules import request_validators
from tempo.ui import controls

NAMES = list(FIELDS)


def bad_value(spec):
    """A value the field's declaration rejects: off its choices, below its range, of the wrong type."""
    if spec.choices:
        return "no-such-choice"
    if spec.type is bool:
        return "maybe"
    if spec.type is str:
        return "   " if spec.required else 5
    if spec.type is tuple:
        return [[]]
    return spec.lo - (1 if spec.type is int else 0.5)


def subcommand(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices[name]


def test_the_declaration_is_the_dataclass():
    fields = GenerationRequest.__dataclass_fields__
    assert NAMES == GenerationRequest.field_names() and NAMES[0] == "prompt"
    for name, spec in FIELDS.items():
        assert spec.name == name and spec.type.__name__ == fields[name].type
        if name != "prompt":
            assert spec.default == fields[name].default and isinstance(spec.default, spec.type)
            if spec.programmatic:  # only programs set it: no setting, flag or control
                assert (spec.section, spec.setting, spec.group, spec.cli) == ("", "", None, ())
            else:
                assert spec.setting == f"{spec.section}.{spec.key}" and spec.section in ("generation", "pruning", "mcts")
            assert spec.label and (spec.help or spec.info or spec.doc), name


@pytest.mark.parametrize("name", NAMES)
def test_validation_rejects_a_bad_value_naming_the_field(name):
    spec = FIELDS[name]
    values = {"prompt": "p", name: bad_value(spec)}
    with pytest.raises(RequestError) as caught:
        GenerationRequest(**values).validate()
    assert caught.value.field == name and str(caught.value).startswith(f"{name}: must ")
    with pytest.raises(RequestError) as checked:
        spec.check(values[name])
    assert str(checked.value) == str(caught.value)
    GenerationRequest(prompt="p").validate()  # every default is valid


def test_validation_keeps_todays_messages_and_order():
    with pytest.raises(RequestError, match=r"^top_p: must be in \(0, 1\] \(1.0 disables it\), got 0.0$"):
        GenerationRequest(prompt="p", top_p=0.0).validate()
    with pytest.raises(RequestError, match=r"^max_tokens: must be an integer in \[1, 7\], got 8$"):
        GenerationRequest(prompt="p", max_tokens=8).validate(max_tokens_limit=7)
    with pytest.raises(RequestError, match=r"^top_k: must be an integer >= 0, got -1$"):
        GenerationRequest(prompt="p", top_k=-1).validate()
    with pytest.raises(RequestError, match=r"^mcts_depth: must be an integer in \[0, 3\], got 4$"):
        GenerationRequest(prompt="p", mcts_depth=4).validate(mcts_max_depth=3)
    # booleans are checked after every range, and the seed last of all
    with pytest.raises(RequestError, match="^temperature: "):
        GenerationRequest(prompt="p", soft_pruning="x", temperature=-1.0).validate()
    with pytest.raises(RequestError, match="^soft_pruning: "):
        GenerationRequest(prompt="p", soft_pruning="x", seed=-1).validate()


@pytest.mark.parametrize("name", [name for name in NAMES[1:] if not FIELDS[name].programmatic])
def test_the_settings_validators_check_every_request_key(name):
    spec = FIELDS[name]
    validators = [v for v in request_validators() if v.names == (spec.setting,)]
    assert len(validators) == 1, spec.setting
    settings = Dynaconf()
    settings.set(spec.setting, bad_value(spec) if spec.type is not str or spec.choices else 5)
    with pytest.raises((ValidationError, TypeError)) as caught:
        validators[0].validate(settings)
    if caught.type is ValidationError:
        assert str(caught.value).startswith(f"{spec.setting} must ")
    settings.set(spec.setting, spec.default)
    validators[0].validate(settings)


@pytest.mark.parametrize("name", NAMES)
def test_generate_and_compare_have_the_fields_flags(name):
    spec = FIELDS[name]
    for command in ("generate", "compare"):
        if command == "compare" and name == "mode":
            continue  # compare runs every mode
        actions = [a for a in subcommand(command)._actions if a.dest == name]
        assert sorted(s for a in actions for s in a.option_strings) == sorted(n for f in spec.cli for n in f.names)


@pytest.mark.parametrize("name", NAMES)
def test_the_app_has_a_control_for_the_field(name):
    spec = FIELDS[name]
    placed = [n for names in controls.grouped(FIELDS).values() for n in names]
    if name in controls.NOT_CONTROLS:
        assert (name in ("prompt", "mode") or spec.programmatic) and name not in placed
        return
    assert placed.count(name) == 1 and (name in controls.MAIN) == (spec.group == "main")
    with gr.Blocks():
        component = controls.control(name, spec.default, max_tokens_limit=500)
    assert component.elem_id == f"ctl-{name}" and component.label == spec.label
    if isinstance(component, gr.Slider):
        assert (component.minimum, component.maximum) == spec.ui_bounds(max_tokens_limit=500)


@pytest.mark.parametrize("name", NAMES)
def test_the_rest_body_and_the_docs_table_have_the_field(name):
    body = request_model().model_fields
    assert body[name].annotation == (str if name == "prompt" else Optional[FIELDS[name].type])
    assert f"| `{name}` | {FIELDS[name].type.__name__} |" in REQUESTS_PAGE.read_text(encoding="utf-8")


def test_docs_requests_md_is_generated_from_the_declaration():
    assert REQUESTS_PAGE.read_text(encoding="utf-8") == requests_page(), "run: python -m tempo.docs"


@dataclass(frozen=True)
class WiderRequest(GenerationRequest):
    """The declaration with two throwaway fields: a ranged int in Sampling and a bool that is on, no group."""

    zz_knob: int = declare(3, section="generation", group="Sampling", lo=0, hi=9, ui_range=(0, 5),
                           label="Knob", help="a throwaway knob")
    zz_switch: bool = declare(True, section="mcts", label="Switch", help="turn the throwaway switch off")


def test_a_field_added_to_the_declaration_reaches_every_surface():
    fields = fields_of(WiderRequest)
    assert list(fields)[-2:] == ["zz_knob", "zz_switch"] and fields["zz_switch"].key == "zz_switch"
    # validation
    WiderRequest(prompt="p").validate()
    with pytest.raises(RequestError, match=r"^zz_knob: must be an integer in \[0, 9\], got 10$"):
        WiderRequest(prompt="p", zz_knob=10).validate()
    # settings validators
    assert {"generation.zz_knob", "mcts.zz_switch"} <= {v.names[0] for v in request_validators(fields)}
    # CLI: the value flag on the command, the negative flag in the mcts group
    parser = argparse.ArgumentParser()
    add_request_arguments(parser, fields)
    args = parser.parse_args(["--zz-knob", "4", "--no-zz-switch"])
    overrides = request_overrides(args, fields)
    assert overrides["zz_knob"] == 4 and overrides["zz_switch"] is False
    assert request_overrides(parser.parse_args([]), fields)["zz_switch"] is None
    mcts_group = next(g for g in parser._action_groups if g.title == "Monte Carlo tree search")
    assert "--no-zz-switch" in [s for a in mcts_group._group_actions for s in a.option_strings]
    # app: the knob in Sampling with its narrower slider, the switch in "Other settings"
    groups = controls.grouped_fields(fields)
    assert "zz_knob" in groups["Sampling"] and groups["Other settings"] == ["zz_switch"]
    with gr.Blocks():
        knob = controls.control("zz_knob", 3, fields=fields)
        switch = controls.control("zz_switch", True, fields=fields)
    assert isinstance(knob, gr.Slider) and (knob.minimum, knob.maximum) == (0, 5) and knob.elem_id == "ctl-zz_knob"
    assert isinstance(switch, gr.Checkbox) and switch.label == "Switch"
    # REST body and docs table
    body = request_model(fields)
    assert body(prompt="p", zz_knob=2).zz_knob == 2 and "zz_switch" in body.model_fields
    table = request_table(fields)
    assert "| `zz_knob` | int | `3` | [0, 9] | `generation.zz_knob` | `--zz-knob` | Sampling › Knob (slider 0–5) |" \
        in table
    assert "`--no-zz-switch`" in table
