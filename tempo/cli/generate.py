"""``generate`` and ``compare``: every request field as a flag, the generation, the output."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from tempo.errors import TempoError
from tempo.request import COMPLETE_PRUNING_MODES, NEXT_LOGITS_MODES, SCHEDULES

log = logging.getLogger("tempo.cli")


def add_generate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate with TEMPO (parallel sets), MCTS or in default mode",
                       description="Generate text and show where the model hesitates. "
                                   "Unset options come from settings.toml / TEMPO_* variables.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="the prompt")
    src.add_argument("--prompts-file", type=Path, help="a file with one prompt a line, generated as one batch")
    add_request_arguments(p)
    p.add_argument("--default-mode", action="store_const", const="default", dest="mode",
                   help="ordinary generation, one token a step (greedy, or sampled with --seed)")
    p.add_argument("--use-mcts", action="store_const", const="mcts", dest="mode",
                   help="Monte Carlo tree search generation")
    p.add_argument("--json", action="store_true", help="print the result JSON, one object a line per prompt")
    add_dry_run_argument(p)
    p.set_defaults(handler=run_generate)


def add_compare_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="one prompt in every mode: TEMPO, TEMPO with pruning, MCTS, default greedy",
                       description="Run one prompt in every mode with the same settings, side by side.")
    p.add_argument("--prompt", required=True, help="the prompt")
    add_request_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object: mode -> result")
    add_dry_run_argument(p)
    p.set_defaults(handler=run_compare)


def add_dry_run_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true",
                   help="validate the settings and every request, load the model, print a summary, generate nothing")


def add_request_arguments(p: argparse.ArgumentParser) -> None:
    """Every request setting as a flag; an unset flag falls through to the settings."""
    p.add_argument("--model", help="hub id or local path (default: model.model_id of the settings)")
    p.add_argument("--max-tokens", type=int, help="logical steps at most")
    p.add_argument("--selection-threshold", "--threshold", type=float, dest="selection_threshold",
                   help="tokens with probability >= this join a step's set, in [0, 1]")
    p.add_argument("--selection-schedule", choices=SCHEDULES, help="how the selection threshold moves over the steps")
    p.add_argument("--selection-final-threshold", type=float, help="the scheduled threshold's final value")
    p.add_argument("--bezier-p1", type=float, help="first Bezier control value (shared with pruning)")
    p.add_argument("--bezier-p2", type=float, help="second Bezier control value (shared with pruning)")
    p.add_argument("--relu-activation-point", type=float, help="progress where the ReLU schedule starts moving")
    p.add_argument("--temperature", type=float, help="0 = greedy")
    p.add_argument("--top-k", type=int, help="0 disables")
    p.add_argument("--top-p", type=float, help="1.0 disables")
    p.add_argument("--repetition-penalty", type=float)
    p.add_argument("--max-parallel-tokens", type=int, help="largest set size")
    p.add_argument("--min-steps", type=int, help="EOS is suppressed before this many steps")
    p.add_argument("--next-logits-mode", choices=NEXT_LOGITS_MODES, help="how a set's rows make the next distribution")
    p.add_argument("--allow-intraset-token-visibility", action="store_true", default=None,
                   help="candidates of one set see each other")
    p.add_argument("--enable-thinking", action="store_true", default=None,
                   help="add the thinking system message through the chat template")
    p.add_argument("--system-content", help="a system message (overrides the thinking message)")
    p.add_argument("--seed", type=int)
    add_pruning_arguments(p)
    add_mcts_arguments(p)


def add_pruning_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("retroactive pruning", "unset options come from the pruning settings section")
    g.add_argument("--use-retroactive-pruning", action="store_true", default=None,
                   help="prune alternatives that later tokens do not attend")
    g.add_argument("--attention-threshold", type=float, help="attention a token needs to stay, in [0, 1]")
    g.add_argument("--relative-threshold", type=float, help="fraction of its set's most attended token, in [0, 1]")
    g.add_argument("--no-relative-attention", action="store_const", const=False, dest="relative_attention",
                   help="skip the relative test")
    g.add_argument("--no-multi-scale-attention", action="store_const", const=False, dest="multi_scale_attention",
                   help="plain mean of the last 3 layers instead of linspace(0.2, 1) weights")
    g.add_argument("--num-layers-to-use", type=int, help="last layers read (0 = all)")
    g.add_argument("--no-sigmoid-threshold", action="store_const", const=False, dest="sigmoid_threshold",
                   help="hard test a >= threshold instead of the sigmoid")
    g.add_argument("--sigmoid-steepness", type=float)
    g.add_argument("--complete-pruning-mode", choices=COMPLETE_PRUNING_MODES,
                   help="what happens when a whole set fails")
    g.add_argument("--no-preserve-isolated-tokens", action="store_const", const=False,
                   dest="preserve_isolated_tokens", help="judge single-token steps too")
    g.add_argument("--soft-pruning", action="store_true", default=None,
                   help="fade weakly attended tokens with a log(sigmoid) bias instead of cutting them")
    g.add_argument("--dynamic-threshold", action="store_true", default=None,
                   help="move the attention threshold to --final-threshold over the steps (Bezier)")
    g.add_argument("--use-relu", action="store_true", default=None, help="ReLU instead of Bezier for the schedule")
    g.add_argument("--final-threshold", type=float, help="the dynamic attention threshold's final value")


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


def add_mcts_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("Monte Carlo tree search", "unset options come from the mcts settings section")
    g.add_argument("--mcts-simulations", type=int, help="simulations per step")
    g.add_argument("--mcts-c-puct", type=float, help="exploration constant of PUCT")
    g.add_argument("--mcts-depth", type=int, help="rollout tokens after the leaf")
    g.add_argument("--mcts-expand", type=int, help="children per node: the top tokens of its distribution")
    g.add_argument("--mcts-batch", type=int, help="simulations evaluated together in one batched forward")


def request_overrides(args: argparse.Namespace) -> dict:
    from tempo.request import GenerationRequest

    return {name: getattr(args, name, None) for name in GenerationRequest.field_names() if name != "prompt"}


def run_compare(args: argparse.Namespace, settings) -> int:
    from tempo.engine.runner import Tempo, compare_requests
    from tempo.ui.render import terminal_text
    from tempo.request import build_request

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
    return 0


def run_generate(args: argparse.Namespace, settings) -> int:
    from tempo.engine.runner import Tempo
    from tempo.ui.render import terminal_text
    from tempo.request import build_request

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
    return 0


def dry_run_summary(engine, requests: list) -> int:
    """Check the rules that need the model (``check_for_model``), then print the one line ``--dry-run``
    prints once the requests are valid and the model is loaded."""
    from tempo.engine.batch import check_for_model

    for request in requests:
        check_for_model(request, engine.adapter)
    loaded = engine.loaded
    info = loaded.info()
    print(f"dry run: model {info['id']} on {info['device']} ({info['dtype']}, {loaded.parameters:,} parameters); "
          f"{len(requests)} request{'s' if len(requests) != 1 else ''} validated; nothing generated")
    return 0
