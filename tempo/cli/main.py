"""The command line: ``python -m tempo [--debug-mode] [--profile] [--dry-run] generate ...``.

Errors a user can fix end the program with one line on stderr and exit code 2.
Global flags go before the command or after it (the seeds' command lines put
them after): ``--settings``, ``--debug-mode`` (DEBUG logging for every
``tempo`` module), ``--profile`` / ``--use-cprofile`` (the command under
cProfile, stats to a ``.prof`` file), ``--profile-output``, ``--dry-run``
(``generate`` / ``compare``: validate, load the model, generate nothing).
docs/logging.md has the details.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from tempo.cli.generate import add_compare_parser, add_generate_parser
from tempo.settings import load_settings
from tempo.errors import TempoError
from tempo.settings.logs import TIMING, configure_logging
from tempo.cli.train import add_train_parser

log = logging.getLogger("tempo.cli")
timing_log = logging.getLogger(TIMING)


def add_global_arguments(parser: argparse.ArgumentParser, after_command: bool = False) -> None:
    """The global flags. ``after_command``: the copy a command's parser gets (the seeds write them after the
    command): its defaults are left out (``SUPPRESS``), so that a flag given before the command stays set, and
    a flag the command has itself (``generate --dry-run``, ``deploy --dry-run``) is not added again."""
    target = parser.add_argument_group("global options (also before the command)") if after_command else parser
    unset = {"default": argparse.SUPPRESS} if after_command else {}
    taken = parser._option_string_actions
    options = [
        (("--settings",), dict(type=Path, help="a settings.toml to use instead of the project's")),
        (("--debug-mode",), dict(action="store_true",
                                 help="DEBUG logging for every tempo module (as debug.global_debug = true)")),
        (("--profile", "--use-cprofile"), dict(action="store_true", help="run the command under cProfile and write "
                                               "the stats (as performance.enable_profiling)")),
        (("--profile-output",), dict(type=Path, metavar="PATH", help="where the profile goes (implies --profile; "
                                     "default: <performance.profile_output_dir>/tempo-<command>-<time>.prof)")),
        (("--dry-run",), dict(action="store_true", dest="global_dry_run",
                              help="generate, compare: validate the settings and every request, load the model, "
                                   "generate nothing (deploy: its own --dry-run)")),
    ]
    for flags, kwargs in options:
        if not any(flag in taken for flag in flags):
            target.add_argument(*flags, **kwargs, **unset)


def _subparsers(parser: argparse.ArgumentParser):
    """Every command's parser, nested ones too (``train prepare``)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                yield child
                yield from _subparsers(child)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tempo", description="TEMPO: see where a language model hesitates.")
    add_global_arguments(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    add_generate_parser(sub)
    add_compare_parser(sub)
    add_train_parser(sub)
    from tempo.cli.deploy import add_deploy_parser; add_deploy_parser(sub)  # noqa: E702 -- the app's deploy (issue 6)
    from tempo.cli.info import add_info_parser; add_info_parser(sub)  # noqa: E702 -- model inspection (issue 8)
    from tempo.cli.config import add_config_parser; add_config_parser(sub)  # noqa: E702 -- issue 8
    from tempo.cli.serve import add_serve_parser; add_serve_parser(sub)  # noqa: E702 -- issue 14
    for command in _subparsers(parser):  # issue 15: the seeds give the global flags after the command
        add_global_arguments(command, after_command=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if not getattr(args, "loads_settings", True):
            # `config` reads the settings itself, so that --validate can list every problem of a broken file.
            if args.global_dry_run:
                raise TempoError(f"--dry-run: the {args.command} command has no dry run (generate, compare, deploy)")
            return args.handler(args, None)
        settings = load_settings(args.settings)
        configure_logging(settings, debug_mode=args.debug_mode)
        _quiet_libraries()
        if args.global_dry_run:
            if not hasattr(args, "dry_run"):
                raise TempoError(f"--dry-run: the {args.command} command has no dry run (generate, compare, deploy)")
            args.dry_run = True
        if args.profile or args.profile_output is not None or _profiling_on(settings):
            return run_profiled(args, settings)
        return args.handler(args, settings)
    except TempoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _profiling_on(settings) -> bool:
    return settings.performance.enable_profiling  # a boolean: checked when the settings load


def profile_path(args: argparse.Namespace, settings) -> Path:
    """``--profile-output``, else ``<performance.profile_output_dir>/tempo-<command>-<time>.prof``."""
    if args.profile_output is not None:
        path, key = args.profile_output.expanduser(), "--profile-output"
    else:
        folder = settings.performance.profile_output_dir  # never empty: checked when the settings load
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path, key = Path(str(folder)).expanduser() / f"tempo-{args.command}-{stamp}.prof", "performance.profile_output_dir"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TempoError(f"{key}: cannot create {path.parent}: {exc.strerror}") from None
    return path


def run_profiled(args: argparse.Namespace, settings) -> int:
    """Run the command's handler under cProfile; the stats go to ``profile_path`` even when it fails."""
    import cProfile

    path = profile_path(args, settings)
    profiler = cProfile.Profile()
    try:
        return profiler.runcall(args.handler, args, settings)
    finally:
        profiler.dump_stats(str(path))
        timing_log.info("profile of %s written to %s (read it: python -m pstats %s)", args.command, path, path)
        if timing_log.isEnabledFor(logging.DEBUG):
            timing_log.debug("top functions by cumulative time:\n%s", _top_functions(profiler))


def _top_functions(profiler, count: int = 15) -> str:
    import io
    import pstats

    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(count)
    return out.getvalue().strip()


def _quiet_libraries() -> None:
    """Hide transformers' progress bars and notices from the command line's output."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
