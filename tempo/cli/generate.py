"""``generate`` and ``compare``: every request field as a flag, the generation, the output."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Mapping

from tempo.errors import TempoError
from tempo.request import FIELDS, FieldSpec

COMMAND_FIELDS = ("prompt", "mode")
"""Fields whose flags each command adds itself: ``--prompt`` (required or from a file), the mode flags
(``generate`` only)."""

log = logging.getLogger("tempo.cli")


def add_generate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate with TEMPO (parallel sets), MCTS or in default mode",
                       description="Generate text and show where the model hesitates. "
                                   "Unset options come from settings.toml / TEMPO_* variables.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="the prompt")
    src.add_argument("--prompts-file", type=Path, help="a file with one prompt a line, generated as one batch")
    add_request_arguments(p)
    add_field_arguments(p, FIELDS["mode"])
    p.add_argument("--json", action="store_true", help="print the result JSON, one object a line per prompt")
    add_dry_run_argument(p)
    add_seed_arguments(p)
    p.set_defaults(handler=run_generate)


def add_compare_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="one prompt in every mode: TEMPO, TEMPO with pruning, MCTS, default greedy",
                       description="Run one prompt in every mode with the same settings, side by side.")
    p.add_argument("--prompt", required=True, help="the prompt")
    add_request_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object: mode -> result")
    add_dry_run_argument(p)
    add_seed_arguments(p)
    p.set_defaults(handler=run_compare)


def add_dry_run_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true",
                   help="validate the settings and every request, load the model, print a summary, generate nothing")




def add_seed_arguments(p: argparse.ArgumentParser) -> None:
    """The seeds' flags that are not request fields: ``--save-visualization`` / ``--output-dir``, and
    ``--use-custom-rope`` (always on: accepted so that their command lines run, and said once at INFO)."""
    from tempo.cli.visualization import add_visualization_arguments

    add_visualization_arguments(p)
    p.add_argument("--use-custom-rope", action="store_true",
                   help="always on (accepted for the seeds' command lines): a parallel set's tokens share one "
                        "position through position ids")


def note_seed_arguments(args: argparse.Namespace) -> None:
    if args.use_custom_rope:
        from tempo.settings.rules import SHARED_POSITIONS

        log.info("--use-custom-rope: always on (the flag changes nothing): %s", SHARED_POSITIONS)


def add_request_arguments(p: argparse.ArgumentParser, fields: Mapping[str, FieldSpec] = FIELDS) -> None:
    """Every request setting as a flag; an unset flag falls through to the settings.

    Generated from the declaration: the ``generation`` fields on the command, the ``pruning`` and ``mcts``
    ones in their groups. ``prompt`` and ``mode`` are left to the command (compare runs every mode)."""
    p.add_argument("--model", help="hub id or local path (default: model.model_id of the settings)")
    for spec in fields.values():
        if spec.section == "generation" and spec.name not in COMMAND_FIELDS:
            add_field_arguments(p, spec)
    add_pruning_arguments(p, fields)
    add_mcts_arguments(p, fields)


def add_field_arguments(p: argparse.ArgumentParser | argparse._ArgumentGroup, spec: FieldSpec) -> None:
    """A field's flags: a ``const`` flag stores it, a bool flag is ``store_true`` with ``None`` left unset (so the
    settings decide), a choice or number flag takes a value of the field's type."""
    for flag in spec.cli:
        options: dict[str, Any] = {"dest": spec.name, "help": flag.help or None}
        if flag.const is not None:
            options.update(action="store_const", const=flag.const)
        elif spec.type is bool:
            options.update(action="store_true", default=None)
        elif spec.choices:
            options["choices"] = spec.choices
        elif spec.type in (int, float):
            options["type"] = spec.type
        p.add_argument(*flag.names, **options)


def add_pruning_arguments(parser: argparse.ArgumentParser, fields: Mapping[str, FieldSpec] = FIELDS) -> None:
    g = parser.add_argument_group("retroactive pruning", "unset options come from the pruning settings section")
    for spec in fields.values():
        if spec.section == "pruning":
            add_field_arguments(g, spec)


def read_prompts(args: argparse.Namespace) -> list[str]:
    if args.prompt is not None:
        return [args.prompt]
    try:
        lines = args.prompts_file.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise TempoError(f"--prompts-file: cannot read {args.prompts_file}: {exc.strerror}") from None
    prompts = [line for line in lines if line.strip()]
    if not prompts:
        raise TempoError(f"--prompts-file: {args.prompts_file} holds no prompt")
    return prompts


def add_mcts_arguments(parser: argparse.ArgumentParser, fields: Mapping[str, FieldSpec] = FIELDS) -> None:
    g = parser.add_argument_group("Monte Carlo tree search", "unset options come from the mcts settings section")
    for spec in fields.values():
        if spec.section == "mcts":
            add_field_arguments(g, spec)


def request_overrides(args: argparse.Namespace, fields: Mapping[str, FieldSpec] = FIELDS) -> dict:
    return {name: getattr(args, name, None) for name in fields if name != "prompt"}


def run_compare(args: argparse.Namespace, settings) -> int:
    from tempo.engine.runner import Tempo, compare_requests
    from tempo.ui.render import terminal_text
    from tempo.request import build_request

    from tempo.cli.visualization import save_compare, wanted

    note_seed_arguments(args)
    overrides = request_overrides(args)
    build_request(args.prompt, settings, **overrides)  # bad input fails before the model loads
    if args.dry_run:  # every request compare will run, so a bad combination shows before the model loads
        checked = list(compare_requests(args.prompt, settings, **overrides).values())
        log.debug("compare: %d requests validated", len(checked))
    engine = Tempo.from_settings(settings, model_id=args.model)
    if args.dry_run:
        return dry_run_summary(engine, checked)
    log.debug("compare: running tempo, tempo with pruning, mcts and default greedy")
    results = engine.compare(args.prompt, **{k: v for k, v in overrides.items() if v is not None})
    if args.json:
        print(json.dumps({mode: result.to_dict() for mode, result in results.items()}, ensure_ascii=False))
    else:
        colour = sys.stdout.isatty()
        for mode, result in results.items():
            print(f"{mode}: {terminal_text(result, colour)}")
    if wanted(args) is not None:
        save_compare(args.prompt, results, wanted(args))
    return 0


def run_generate(args: argparse.Namespace, settings) -> int:
    from tempo.engine.runner import Tempo
    from tempo.ui.render import terminal_text
    from tempo.request import build_request

    from tempo.cli.visualization import save_generate, wanted

    note_seed_arguments(args)
    overrides = request_overrides(args)
    # Validate every request before loading the model: bad input fails fast.
    requests = [build_request(prompt, settings, **overrides) for prompt in read_prompts(args)]
    if log.isEnabledFor(logging.DEBUG):
        for i, request in enumerate(requests):
            log.debug("request %d validated: %s", i, request.to_dict())
    engine = Tempo.from_settings(settings, model_id=args.model)
    if args.dry_run:
        return dry_run_summary(engine, requests)
    results = engine.run(requests)
    colour = sys.stdout.isatty()
    for result in results:
        if args.json:
            print(result.to_json())
        else:
            print(terminal_text(result, colour))
    if wanted(args) is not None:
        save_generate(results, wanted(args))
    return 0


def dry_run_summary(engine, requests: list) -> int:
    """Check the rules that need the model (``Tempo.check``), then print the one line ``--dry-run``
    prints once the requests are valid and the model is loaded."""
    for request in requests:
        engine.check(request)
    loaded = engine.loaded
    info = loaded.info()
    print(f"dry run: model {info['id']} on {info['device']} ({info['dtype']}, {loaded.parameters:,} parameters); "
          f"{len(requests)} request{'s' if len(requests) != 1 else ''} validated; nothing generated")
    return 0
