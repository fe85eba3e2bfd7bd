"""``lens`` and ``forks``: the layer view and the forks analysis of TEMPO_SPEC section 12 on the command line.

    python -m tempo lens --prompt "the cat" --top-k 5 --json
    python -m tempo lens --from result.json --step 3 --json
    python -m tempo forks --prompt "the cat" --max-tokens 30 --samples 8 --horizon 16 --json
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from tempo.cli.generate import add_field_arguments, add_request_arguments, request_overrides
from tempo.errors import TempoError
from tempo.forks_request import FORKS_FIELDS, build_forks
from tempo.request import FIELDS

log = logging.getLogger("tempo.cli")


def add_lens_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lens", help="the layer view (logit lens): each layer's top tokens at a position",
                       description="What each layer would predict at the prompt's end, or before a step of a result "
                                   "(per kept candidate of the step before).")
    p.add_argument("--prompt", help="the prompt (its last position); with --from, the result's prompt is used")
    p.add_argument("--from", dest="source", type=Path, metavar="RESULT.json",
                   help="a result JSON (generate --json, or a forks / branch output holding one)")
    p.add_argument("--step", type=int, help="a step of the --from result (0: the prompt's end)")
    p.add_argument("--top-k", type=int, default=5, help="tokens per layer, in [1, 100] (default 5)")
    p.add_argument("--model", help="hub id or local path (default: model.model_id of the settings)")
    p.add_argument("--json", action="store_true", help="print the view as one JSON object")
    p.set_defaults(handler=run_lens)


def add_forks_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("forks", help="which hesitations change the outcome: rollouts from every candidate of every set",
                       description="Generate (or read --from), then draw --samples continuations of at most --horizon "
                                   "tokens from each candidate of each set, batched, and score each step's fork.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="the prompt")
    src.add_argument("--from", dest="source", type=Path, metavar="RESULT.json", help="a result JSON to analyse")
    add_request_arguments(p)
    add_field_arguments(p, FIELDS["mode"])
    g = p.add_argument_group("forks", "the analysis (tempo/forks_request.py)")
    for spec in FORKS_FIELDS.values():
        add_field_arguments(g, spec)
    p.add_argument("--json", action="store_true", help='print {"result": ..., "forks": [...]} as one JSON object')
    p.set_defaults(handler=run_forks)


def read_result(path: Path) -> dict[str, Any]:
    """The result JSON in ``path``: a result, or an object holding one under ``result`` (forks, branch)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TempoError(f"--from: cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(text.strip().splitlines()[0] if text.strip() else "")
    except (json.JSONDecodeError, IndexError):
        raise TempoError(f"--from: {path} holds no result JSON") from None
    data = data.get("result", data) if isinstance(data, dict) else data
    if not isinstance(data, dict) or "steps" not in data or "settings" not in data:
        raise TempoError(f"--from: {path} holds no result JSON (no steps and settings)")
    return data


def run_lens(args: argparse.Namespace, settings) -> int:
    from tempo.engine.lens import check_top_k
    from tempo.engine.runner import Tempo
    from tempo.request import build_request
    from tempo.result import GenerationResult

    check_top_k(args.top_k)
    result = GenerationResult.from_dict(read_result(args.source)) if args.source is not None else None
    if result is None:
        if args.prompt is None:
            raise TempoError("lens: give --prompt or --from RESULT.json")
        if args.step is not None:
            raise TempoError("--step: needs --from RESULT.json (a step is a step of a result)")
        build_request(args.prompt, settings)  # bad input fails before the model loads
    engine = Tempo.from_settings(settings, model_id=args.model)
    view = engine.lens(args.prompt, result, args.step, args.top_k).to_dict()
    if args.json:
        print(json.dumps(view, ensure_ascii=False))
        return 0
    for context in view["candidates"] or [{"text": "(prompt's end)", **view}]:
        print(f"after {context['text']!r}: exit layer {context['exit_layer']}")
        for layer in context["layers"]:
            tops = ", ".join(f"{t['text']!r} {t['probability']:.3f}" for t in layer["top"])
            print(f"  layer {layer['layer']:>3}: {tops}")
    return 0


def run_forks(args: argparse.Namespace, settings) -> int:
    from tempo.engine.runner import Tempo
    from tempo.request import build_request
    from tempo.result import GenerationResult

    options = build_forks(settings, **{name: getattr(args, name, None) for name in FORKS_FIELDS})
    if args.source is not None:
        target: Any = GenerationResult.from_dict(read_result(args.source))
    else:
        target = build_request(args.prompt, settings, **request_overrides(args))
    engine = Tempo.from_settings(settings, model_id=args.model)
    if not isinstance(target, GenerationResult):
        engine.check(target)

    def progress(done: int, total: int) -> None:
        log.info("forks: %d / %d rollouts", done, total)

    found = engine.forks(target, progress=progress, **options.to_dict())
    if args.json:
        print(json.dumps(found.to_dict(), ensure_ascii=False))
        return 0
    print(found.result.text)
    for fork in found.forks:
        mark = "FORK" if fork.fork else "    "
        sets = "/".join(c.text for c in fork.candidates)
        print(f"{mark} step {fork.step:>3} score {fork.score:.3f} [{sets}]")
    return 0
