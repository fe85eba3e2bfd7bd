"""Other names of settings: the guide's single-underscore variables and its v1 / guide-only keys.

Two spellings of an environment variable name a setting:

- ``TEMPO_SECTION__KEY`` (dynaconf's, ``__`` between levels), read by dynaconf itself;
- ``TEMPO_SECTION_KEY`` (the configuration guide's, one ``_`` everywhere). Keys contain
  underscores themselves, so :func:`resolve` matches the longest known section first and then a
  known key of that section (``TEMPO_DEBUG_MODULE_DEBUG_TOKEN_GENERATOR`` ->
  ``debug.module_debug.token_generator``).

An :class:`Alias` is a key of the guide that names a setting TEMPO keeps under another key
(``generation.max_length`` is ``generation.max_tokens``). Setting the alias sets its target,
unless the target was set at the same level or a higher one (then the target wins and the
alias's value is reported as overridden); after loading, the alias shows its target's value.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

PREFIX = "TEMPO_"
RESERVED = ("TEMPO_PROFILE", "TEMPO_CONFIG_FILE")
"""Variables that choose the profile and the settings file: never settings themselves."""


def _same(value: Any, current: Any) -> Any:
    return value


def _identity(value: Any) -> Any:
    return value


def _switch_mode(mode: str) -> Callable[[Any, Any], Any]:
    """A boolean that turns ``generation.mode`` to ``mode`` (true) or away from it (false: ``tempo``)."""
    def to_target(value: Any, current: Any) -> Any:
        if _truthy(value):
            return mode
        return "tempo" if current == mode else current
    return to_target


def _parallel(value: Any, current: Any) -> Any:
    """``use_parallel_generation``: false = default mode; true leaves tempo / mcts, turns default to tempo."""
    if not _truthy(value):
        return "default"
    return "tempo" if current == "default" else current


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


@dataclass(frozen=True)
class Alias:
    name: str
    """The guide's dotted key."""
    target: str
    """The dotted key TEMPO keeps the setting under."""
    why: str
    to_target: Callable[[Any, Any], Any] = _same
    """(alias value, target's current value) -> the target's new value."""
    from_target: Callable[[Any], Any] | None = _identity
    """The alias's shown value from its target's; None: an environment-only spelling, not a key."""
    kind: type = bool

    @property
    def kind_name(self) -> str:
        return {bool: "true or false", int: "an integer", float: "a number"}[self.kind]

    def accepts(self, value: Any) -> bool:
        if self.kind is bool:
            return isinstance(value, bool)
        kinds = (int, float) if self.kind is float else (int,)
        return isinstance(value, kinds) and not isinstance(value, bool)


ALIASES = (
    Alias("generation.max_length", "generation.max_tokens", "the guide's v1 name of max_tokens", kind=int),
    Alias("generation.use_retroactive_pruning", "pruning.use_retroactive_pruning",
          "pruning settings live in the pruning section"),
    Alias("generation.use_dynamic_thresholding", "pruning.dynamic_threshold",
          "the dynamic attention threshold of retroactive pruning"),
    Alias("generation.use_parallel_generation", "generation.mode",
          "false = generation.mode default (one token a step); true keeps tempo / mcts",
          to_target=_parallel, from_target=lambda mode: mode != "default"),
    Alias("performance.batch_size", "app.max_batch_size", "rows generated together in one batch",
          kind=int),
    Alias("experimental.enable_gradient_checkpointing", "train.gradient_checkpointing",
          "only training has gradients"),
)

ENV_ONLY = {
    # The guide's CLI table names these variables; they are not keys of any section.
    "TEMPO_MCTS_ENABLED": Alias("mcts.enabled", "generation.mode", "true = generation.mode mcts",
                                to_target=_switch_mode("mcts"), from_target=None),
    "TEMPO_GENERATION_DEFAULT_MODE": Alias("generation.default_mode", "generation.mode",
                                           "true = generation.mode default",
                                           to_target=_switch_mode("default"), from_target=None),
    "TEMPO_COGITO_THINKING_ENABLED": Alias("cogito.thinking_enabled", "generation.enable_thinking",
                                           "the thinking system message", from_target=None),
    "TEMPO_PRUNING_BEZIER_P1": Alias("pruning.bezier_p1", "generation.bezier_p1",
                                     "one Bezier curve serves selection and pruning", from_target=None,
                                     kind=float),
    "TEMPO_PRUNING_BEZIER_P2": Alias("pruning.bezier_p2", "generation.bezier_p2",
                                     "one Bezier curve serves selection and pruning", from_target=None,
                                     kind=float),
}

ALIAS_BY_NAME = {alias.name: alias for alias in ALIASES}


def is_single_underscore(variable: str) -> bool:
    """A ``TEMPO_`` variable in the guide's spelling (not dynaconf's, not reserved, not dynaconf's own)."""
    return (variable.startswith(PREFIX) and "__" not in variable and variable not in RESERVED
            and not variable.endswith("_FOR_DYNACONF"))


def resolve(variable: str, known: Mapping[str, Any]) -> str | None:
    """The dotted key that a single-underscore ``TEMPO_`` variable names, or None.

    ``known`` is the nested table of known keys (section -> key -> value or sub-table).
    Sections are tried longest first; inside one the longest key that matches wins.
    """
    if variable in ENV_ONLY:
        return ENV_ONLY[variable].name
    name = variable[len(PREFIX):].lower()
    for section in sorted(known, key=len, reverse=True):
        table = known[section]
        if name.startswith(section + "_") and isinstance(table, Mapping):
            key = _match(name[len(section) + 1:], table)
            if key is not None:
                return f"{section}.{key}"
    return None


def _match(rest: str, table: Mapping[str, Any]) -> str | None:
    if rest in table and not (isinstance(table[rest], Mapping) and table[rest]):
        return rest
    for key in sorted(table, key=len, reverse=True):
        sub = table[key]
        if isinstance(sub, Mapping) and sub and rest.startswith(key + "_"):
            found = _match(rest[len(key) + 1:], sub)
            if found is not None:
                return f"{key}.{found}"
    return None
