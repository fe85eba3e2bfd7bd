"""Logging: the ``tempo`` logger's handlers, its level and the per-module debug switches.

``configure_logging(settings)`` reads three sections:

- ``logging``: ``log_level``, ``log_format``, ``console_logging`` (stderr),
  ``enable_file_logging`` (``log_dir/tempo.log``, rotated at
  ``max_log_size_mb``, ``backup_count`` old files kept);
- ``debug``: ``global_debug`` turns DEBUG on for every ``tempo`` logger;
  ``module_debug.<name>`` turns it on for one module only (the others stay at
  ``log_level``);
- nothing else: ``performance.enable_profiling`` is the CLI's (``tempo/cli.py``).

The switch names are the seeds' configuration guide's; each maps to the loggers
of our code that do that job (``MODULE_LOGGERS``):

=====================  ==========================================  =============================================
switch                 loggers                                     what its DEBUG lines say
=====================  ==========================================  =============================================
token_generator        tempo.engine.row, tempo.engine.adapter      every set as it is recorded (ids, probabilities,
                                                                   threshold); each request's end; forward calls
attention_manager      tempo.engine.attention                      which layers return attention, their shapes
rope_modifier          tempo.engine.layout                         position ids: prompt 0..P-1, a step's whole set
                                                                   at P + s (TEMPO's shared position)
model_wrapper          tempo.models.loading                                 device and dtype choice, load details
token_selector         tempo.engine.sampling                       set sizes against the thresholds, top-k / top-p
parallel_generator     tempo.engine.batch, tempo.serve.scheduler         the batch loop: rows joining, stepping, leaving
experiment_runner      tempo.cli.main, tempo.engine.runner                 requests validated, modes run (``compare``)
retroactive_pruner     tempo.engine.pruning                        attention per judged candidate, what was pruned
mcts_generator         tempo.engine.mcts                           simulations, visits and values per step
api                    tempo.serve.rest                                   REST requests in and out
cache_manager          tempo.engine.prompt_cache                   prompt-cache hits, misses, evictions
performance_tracker    tempo.timing                                per-request prefill / decode / pruning seconds
=====================  ==========================================  =============================================

How the levels work: the ``tempo`` logger sits at ``log_level`` (DEBUG with
``global_debug``); a switched logger is set to DEBUG itself; handlers have no
level (NOTSET), so they pass whatever a logger lets through. ``tempo``
does not propagate to the root logger.
"""
from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

from tempo.errors import SettingsError
from tempo.settings.schema import Settings

ROOT = "tempo"
TIMING = "tempo.timing"
"""The performance tracker's logger: per-request timings (``tempo.engine.row``) and profiles (CLI)."""

MODULE_LOGGERS: dict[str, tuple[str, ...]] = {
    "token_generator": ("tempo.engine.row", "tempo.engine.adapter"),
    "attention_manager": ("tempo.engine.attention",),
    "rope_modifier": ("tempo.engine.layout",),
    "model_wrapper": ("tempo.models.loading",),
    "token_selector": ("tempo.engine.sampling",),
    "parallel_generator": ("tempo.engine.batch", "tempo.serve.scheduler"),
    "experiment_runner": ("tempo.cli", "tempo.engine.runner"),
    "retroactive_pruner": ("tempo.engine.pruning",),
    "mcts_generator": ("tempo.engine.mcts",),
    "api": ("tempo.serve.rest",),
    "cache_manager": ("tempo.engine.prompt_cache",),
    "performance_tracker": (TIMING,),
}
"""Debug switch (``debug.module_debug.<name>``) -> the loggers it sets to DEBUG."""

LOG_FILE = "tempo.log"


def debug_switches(settings: Settings) -> tuple[bool, set[str]]:
    """``(global_debug, switched module names)`` of the typed ``debug`` section (an unknown module
    name or a value that is not a boolean stopped the settings from loading)."""
    debug = settings.debug
    return debug.global_debug, {name for name, on in debug.module_debug.as_dict().items() if on}


def configure_logging(settings: Settings, debug_mode: bool = False) -> None:
    """Set up the ``tempo`` logger from the settings; ``debug_mode`` (the CLI's ``--debug-mode``)
    acts as ``debug.global_debug``. Calling it again replaces (and closes) the handlers and
    resets the switches, so it is safe to call once per settings change."""
    section = settings.logging
    level = section.log_level.upper()
    global_debug, switched = debug_switches(settings)
    logger = logging.getLogger(ROOT)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(logging.DEBUG if (global_debug or debug_mode) else level)
    logger.propagate = False
    for name, loggers in MODULE_LOGGERS.items():
        for logger_name in loggers:
            logging.getLogger(logger_name).setLevel(logging.DEBUG if name in switched else logging.NOTSET)
    formatter = logging.Formatter(section.log_format)
    if section.console_logging:
        _add(logger, ConsoleHandler(), formatter)
    if section.enable_file_logging:
        log_dir = Path(str(section.log_dir)).expanduser()
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            handler = logging.handlers.RotatingFileHandler(
                log_dir / LOG_FILE,
                maxBytes=int(section.max_log_size_mb * 1024 * 1024),
                backupCount=section.backup_count,
                encoding="utf-8",
            )
        except OSError as exc:
            raise SettingsError(f"invalid setting: logging.log_dir: cannot write {log_dir / LOG_FILE}: "
                                f"{exc.strerror}") from None
        _add(logger, handler, formatter)
    if switched or global_debug or debug_mode:
        on = "all" if (global_debug or debug_mode) else ", ".join(sorted(switched))
        logger.info("debug logging on: %s", on)


class ConsoleHandler(logging.StreamHandler):
    """Lines to whatever ``sys.stderr`` is when they are written (as logging's last-resort handler
    does), so a replaced or closed stderr (``contextlib.redirect_stderr``, pytest's capture) is followed."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr


def _add(logger: logging.Logger, handler: logging.Handler, formatter: logging.Formatter) -> None:
    handler.setLevel(logging.NOTSET)  # the loggers decide; a switched module's DEBUG lines pass
    handler.setFormatter(formatter)
    logger.addHandler(handler)


