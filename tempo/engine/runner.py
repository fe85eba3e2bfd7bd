"""The Python API: a ``Tempo`` object owns a loaded model and turns requests into results.

    >>> import tempo
    >>> result = tempo.generate("def read_config(path):", max_tokens=20)
    >>> print(result.text)

Every other interface reaches the engine through ``Tempo``: the CLI and Python through ``run`` /
``compare``, the scheduler (Gradio, ``gradio_client``, REST) through ``new_batch``, ``run`` (tree
searches), ``stream_steps`` and ``result``; ``check`` holds the rules that need the model.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Iterable

from tempo.settings.loader import default_settings
from tempo.settings.schema import Settings
from tempo.engine.adapter import ModelAdapter
from tempo.engine.mcts import MctsSearch
from tempo.engine.prompt_cache import PromptCache, supports
from tempo.engine.row import Row, build_result, stream_steps
from tempo.engine.batch import Batch, StepCallback, check_for_model
from tempo.engine.prompting import PromptLimits, prompt_row
from tempo.models.loading import LoadedModel, load_from_settings
from tempo.request import GenerationRequest, build_request
from tempo.result import GenerationResult, Step

log = logging.getLogger(__name__)


def special_ids(loaded: LoadedModel, settings: Settings) -> tuple[list[int], int]:
    """EOS ids and the pad id: the settings' override (>= 0), else the model's generation config / tokenizer."""
    eos_override = settings.generation.eos_token_id
    pad_override = settings.generation.pad_token_id
    if eos_override >= 0:
        eos = [eos_override]
    else:
        configured = getattr(getattr(loaded.model, "generation_config", None), "eos_token_id", None)
        if configured is None:
            configured = loaded.tokenizer.eos_token_id
        eos = [] if configured is None else ([configured] if isinstance(configured, int) else list(configured))
    if pad_override >= 0:
        pad = pad_override
    elif loaded.tokenizer.pad_token_id is not None:
        pad = loaded.tokenizer.pad_token_id
    else:
        pad = eos[0] if eos else 0
    return eos, pad


COMPARE_MODES = {
    "tempo": {"mode": "tempo", "use_retroactive_pruning": False},
    "tempo_pruning": {"mode": "tempo", "use_retroactive_pruning": True},
    "mcts": {"mode": "mcts", "use_pruning": False},  # strategy pruning refines parallel sets; a search has none
    "default": {"mode": "default", "temperature": 0.0},
}
"""The runs of ``compare``: what each sets over the given settings."""


def compare_requests(prompt: str, settings: Any, **overrides: Any) -> dict[str, GenerationRequest]:
    """The validated requests of ``compare``, by mode name (no model needed: the CLI checks them first)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    return {name: build_request(prompt, settings, **{**given, **mode}) for name, mode in COMPARE_MODES.items()}


class Tempo:
    """A model plus settings; thread-safe: one generation batch runs at a time."""

    def __init__(self, loaded: LoadedModel, settings: Settings | None = None):
        self.loaded = loaded
        self.settings = settings if settings is not None else Settings.defaults()
        """The typed settings; an engine built without any takes the declared defaults."""
        self.adapter = ModelAdapter(loaded.model)
        self.eos_ids, self.pad_id = special_ids(loaded, self.settings)
        self.limits = PromptLimits.of(self.adapter.context, self.settings)
        """Prompt tokens at most, and the context a prompt plus its steps must fit (TEMPO_SPEC section 13)."""
        self._lock = threading.Lock()
        # An engine built bare (no settings, as in the tests) prefills every time: no prompt cache.
        self.prompt_cache = PromptCache.from_settings(settings) if settings is not None else None
        """Prefills by prompt token ids, shared by every batch and search on this model; None: off."""
        if self.prompt_cache is not None and not supports(self.adapter):
            log.debug("prompt cache off: %s keeps more than plain keys and values per slot",
                      type(loaded.model).__name__)
            self.prompt_cache = None

    @classmethod
    def from_settings(cls, settings: Settings | None = None, model_id: str | None = None) -> "Tempo":
        settings = settings if settings is not None else default_settings()
        return cls(load_from_settings(settings, model_id=model_id), settings)

    def request(self, prompt: str, **overrides: Any) -> GenerationRequest:
        """A validated request: overrides > settings > code defaults."""
        return build_request(prompt, self.settings, **overrides)

    def check(self, request: GenerationRequest) -> None:
        """Raise ``RequestError`` when ``request`` breaks a rule of this model (the others hold in
        ``build_request``): ``num_layers_to_use`` beyond its layers, a prompt over ``max_prompt_tokens`` or
        one that does not fit the context with ``max_tokens`` (unless ``truncate_prompt = "left"``)."""
        check_for_model(request, self.adapter)
        prompt_row(None, request, self.loaded.tokenizer, self.limits)

    def new_batch(self, on_step: StepCallback | None = None) -> Batch:
        """An empty batch on this model for a caller that drives it step by step (the scheduler):
        ``add`` requests at any step boundary, ``step``, ``cancel``; rows leave into ``finished``.
        ``on_step(row)`` runs after each row's new set. It does not take the lock of ``run``."""
        return Batch(self.adapter, self.loaded.tokenizer, self.eos_ids, self.pad_id, on_step, self.prompt_cache,
                     self.limits)

    def new_search(self, request: GenerationRequest, key: Any = 0, on_step: StepCallback | None = None) -> MctsSearch:
        """A tree search (MCTS) of ``request`` on this model; ``run()`` returns its row."""
        return MctsSearch(self.adapter, self.loaded.tokenizer, self.eos_ids, self.pad_id, request, key, on_step,
                          self.prompt_cache, self.limits)

    def stream_steps(self, row: Row) -> list[Step]:
        """The steps a stream sends after ``row``'s newest set, built as the result builds them."""
        return stream_steps(row, self.loaded.tokenizer)

    def result(self, row: Row) -> GenerationResult:
        """The result (TEMPO_SPEC section 8) of a row from ``new_batch`` or a search."""
        return build_result(row, self.loaded.tokenizer, self.loaded.info())

    def run(self, requests: list[GenerationRequest], on_step: StepCallback | None = None) -> list[GenerationResult]:
        """Generate every request in one batch; results in the order of ``requests``."""
        if not requests:
            return []
        batched = [i for i, r in enumerate(requests) if r.mode != "mcts"]
        log.debug("run: %d requests, %d in one batch, %d tree searches", len(requests), len(batched),
                  len(requests) - len(batched))
        rows: dict[int, Row] = {}
        with self._lock:
            if batched:
                rows.update(zip(batched, self.new_batch(on_step).run([requests[i] for i in batched])))
            for i, request in enumerate(requests):  # tree searches run one at a time
                if request.mode == "mcts":
                    rows[i] = self.new_search(request, i, on_step).run()
        return [self.result(rows[i]) for i in range(len(requests))]

    def compare(self, prompt: str, **settings: Any) -> dict[str, GenerationResult]:
        """One prompt in every mode, for side-by-side views: TEMPO, TEMPO with pruning, MCTS and
        default greedy. ``settings`` apply to all (``mode``, ``use_retroactive_pruning`` and, for the
        greedy run, ``temperature`` are set per mode). With the prompt cache the prompt is prefilled once."""
        requests = compare_requests(prompt, self.settings, **settings)
        log.debug("compare: modes %s on a prompt of %d characters", list(requests), len(prompt))
        return dict(zip(requests, self.run(list(requests.values()))))

    def generate(self, prompt: str, **settings: Any) -> GenerationResult:
        return self.run([self.request(prompt, **settings)])[0]

    def generate_batch(self, prompts: Iterable[str], **settings: Any) -> list[GenerationResult]:
        return self.run([self.request(p, **settings) for p in prompts])


_default: Tempo | None = None
_default_lock = threading.Lock()


def default_tempo() -> Tempo:
    """The process-wide engine on the settings' model, loaded on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Tempo.from_settings()
        return _default


def generate(prompt: str, **settings: Any) -> GenerationResult:
    """Generate with the default model; keyword arguments override the settings."""
    return default_tempo().generate(prompt, **settings)


def generate_batch(prompts: Iterable[str], **settings: Any) -> list[GenerationResult]:
    """Generate several prompts as one batch with the default model."""
    return default_tempo().generate_batch(prompts, **settings)
