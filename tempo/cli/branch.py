"""``branch``: a result's branch at a step with another token (TEMPO_SPEC section 12).

    python -m tempo generate --prompt "the cat" --json > parent.json
    python -m tempo branch --from parent.json --step 3 --token-id 17 [any generate flag] [--json]

The parent's settings carry over; a flag given here overrides one. The model is ``--model``, else the parent's.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from pathlib import Path

from tempo.cli.generate import add_dry_run_argument, add_field_arguments, add_request_arguments, dry_run_summary, \
    request_overrides
from tempo.errors import RequestError, TempoError
from tempo.request import FIELDS

log = logging.getLogger("tempo.cli")


def add_branch_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("branch", help="branch a result at a step with another token",
                       description="Give a result's first STEP sets as they were, TOKEN_ID alone at STEP, and "
                                   "generate on from there with the parent's settings (any flag overrides one).")
    p.add_argument("--from", dest="parent", type=Path, required=True, metavar="RESULT.json",
                   help="the parent result (the JSON of generate --json)")
    p.add_argument("--step", type=int, required=True, help="the step to branch at (0 = the first)")
    p.add_argument("--token-id", type=int, required=True, help="the token alone at that step (any id)")
    add_request_arguments(p)
    add_field_arguments(p, FIELDS["mode"])
    p.add_argument("--json", action="store_true", help="print the branch's result JSON")
    add_dry_run_argument(p)
    p.set_defaults(handler=run_branch)


def read_parent(path: Path) -> dict:
    """The one result JSON of ``path``; ``TempoError`` naming ``--from`` for an unreadable file or other JSON."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TempoError(f"--from: cannot read {path}: {exc.strerror}") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and all(line.lstrip().startswith("{") for line in lines):
        try:
            values = [json.loads(line) for line in lines]
        except json.JSONDecodeError:
            values = None  # one object over several lines (indented JSON)
        if values is not None:
            raise TempoError(f"--from: {path} holds {len(values)} results (one a line); branch needs one")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise TempoError(f"--from: {path} is not JSON: {exc}") from None


def run_branch(args: argparse.Namespace, settings) -> int:
    from tempo.engine.branch import branch_request, parent_result
    from tempo.engine.runner import Tempo
    from tempo.ui.render import terminal_text

    with flag_names():
        parent = parent_result(read_parent(args.parent))
    overrides = request_overrides(args)
    with flag_names():
        request, _ = branch_request(parent, args.step, args.token_id, settings, **overrides)  # fails before loading
    model = args.model or parent.model.id
    log.debug("branch of %s at step %d with token %d on %s", args.parent, args.step, args.token_id, model)
    engine = Tempo.from_settings(settings, model_id=model)
    if args.dry_run:
        return dry_run_summary(engine, [request])
    with flag_names():  # the vocabulary is known now
        result = engine.branch(parent, args.step, args.token_id, **overrides)
    print(result.to_json() if args.json else terminal_text(result, sys.stdout.isatty()))
    return 0


@contextlib.contextmanager
def flag_names():
    """A bad ``step`` / ``token_id`` / ``parent`` is named by its flag (``--step: must be ...``)."""
    try:
        yield
    except RequestError as exc:
        flag = FLAGS.get(exc.field)
        if flag is None:
            raise
        raise TempoError(f"{flag}: {str(exc).split(': ', 1)[1]}") from None


FLAGS = {"step": "--step", "token_id": "--token-id", "parent": "--from"}
