"""The layer view (logit lens; TEMPO_SPEC section 12): what each layer would predict if the model stopped there.

For a context position and each layer ``l = 1 ... L``: the top-k tokens of ``softmax(head(norm(h_l)))``, with
``h_l`` the residual stream after layer ``l`` and ``norm`` the model's final norm (layer ``L`` is the model's own
output distribution). ``exit_layer``: the smallest ``l`` whose top-1 token, and that of every layer after it,
equals the final top-1 — where the model could have exited early.

The contexts: for a prompt, its last position; for step ``s`` of a result, each kept candidate of step ``s - 1``
after the prompt and the clean path before it (step 0: the prompt's end). They have one length, so one
forward serves them all. The norm and the head come from ``adapter.final_norm_and_head``.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import torch

from tempo.engine.adapter import final_norm_and_head, layer_states
from tempo.engine.output import token_text
from tempo.errors import RequestError
from tempo.result import GenerationResult

log = logging.getLogger(__name__)

MAX_TOP_K = 100


# --- the math ---------------------------------------------------------------------------------------------------

def layer_probabilities(states: Sequence[torch.Tensor], final: torch.Tensor, norm: Any, head: Any) -> torch.Tensor:
    """``[L, N, V]``: ``softmax(head(norm(h_l)))`` for the ``L - 1`` states ``[N, H]`` after layers 1 ... L-1,
    then ``softmax(head(final))`` for ``final`` = ``norm(h_L)`` (the model's own output)."""
    rows = [_apply(head, _apply(norm, h)) for h in states] + [_apply(head, final)]
    return torch.softmax(torch.stack([row.float().cpu() for row in rows]), dim=-1)


def _apply(module: Any, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` on the module's device (a model placed over devices keeps its layers apart)."""
    weight = next(module.parameters(), None)
    return module(x if weight is None else x.to(weight.device))


def exit_layer(top1: Sequence[int]) -> int:
    """The smallest layer ``l`` (1-based) such that the top-1 token of every layer from ``l`` to ``L`` equals
    the final one (``top1[L - 1]``)."""
    final, layer = top1[-1], len(top1)
    while layer > 1 and top1[layer - 2] == final:
        layer -= 1
    return layer


# --- the view ---------------------------------------------------------------------------------------------------

@dataclass
class LensView:
    """One context position's layers: ``[{"layer", "top": [{"token_id", "text", "probability"}]}]``."""

    layers: list[dict[str, Any]]
    exit_layer: int
    token_id: int | None = None
    """The kept candidate of the step before whose position this is; None: the prompt's end."""
    text: str = ""


@dataclass
class LensResult:
    """The layer view of a prompt (``step`` None), or of step ``step`` of a result: ``views`` holds one
    :class:`LensView` per context (the kept candidates of the step before, in set order)."""

    step: int | None
    views: list[LensView] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """``{"layers", "exit_layer"}`` of the first context (the prompt's end or the top candidate), ``step``,
        and ``candidates``: every context's view with its ``token_id`` and ``text`` (empty for the prompt)."""
        first = self.views[0]
        candidates = [asdict(v) for v in self.views if v.token_id is not None]
        return {"step": self.step, "layers": first.layers, "exit_layer": first.exit_layer, "candidates": candidates}


def contexts(prompt_ids: list[int], result: GenerationResult | None, step: int | None) -> list[tuple[int | None, list[int]]]:
    """``(candidate token or None, context ids)`` of each position the view reads."""
    if result is None or step is None or step == 0:
        return [(None, list(prompt_ids))]
    if not 0 <= step < len(result.steps):
        raise RequestError("step", f"must be in [0, {len(result.steps) - 1}] for this result, got {step}")
    path = [s.kept[0].token_id for s in result.steps[:step - 1] if s.kept]
    before = result.steps[step - 1]
    if not before.kept:
        raise RequestError("step", f"step {step - 1}, the step before {step}, has no kept candidate (removed)")
    return [(c.token_id, list(prompt_ids) + path + [c.token_id]) for c in before.kept]


def check_top_k(top_k: Any) -> int:
    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= MAX_TOP_K:
        raise RequestError("top_k", f"must be an integer in [1, {MAX_TOP_K}], got {top_k!r}")
    return top_k


def layer_view(model: Any, tokenizer: Any, positions: list[tuple[int | None, list[int]]], top_k: int,
               step: int | None, device: Any = "cpu") -> LensResult:
    """Run one forward over the contexts (one length) and read every layer at their last position."""
    norm, head = final_norm_and_head(model)
    ids = torch.tensor([context for _, context in positions], device=device)  # [N, T]
    with torch.inference_mode():
        states, final = layer_states(model, ids)
        probs = layer_probabilities([h[:, -1] for h in states], final[:, -1], norm, head)  # [L, N, V]
        values, tokens = probs.topk(min(top_k, probs.shape[-1]), dim=-1)  # [L, N, k]
    names: dict[int, str] = {}
    result = LensResult(step)
    for n, (candidate, context) in enumerate(positions):
        layers = []
        for layer in range(probs.shape[0]):
            top = []
            for p, t in zip(values[layer, n].tolist(), tokens[layer, n].tolist()):
                if t not in names:
                    names[t] = token_text(tokenizer, [], t)
                top.append({"token_id": t, "text": names[t], "probability": p})
            layers.append({"layer": layer + 1, "top": top})
        text = "" if candidate is None else token_text(tokenizer, context[:-1], candidate)
        result.views.append(LensView(layers, exit_layer(tokens[:, n, 0].tolist()), candidate, text))
    log.debug("layer view: %d contexts of %d tokens, %d layers, top %d", len(positions), ids.shape[1],
              probs.shape[0], top_k)
    return result
