"""From logit rows to the next step's set (TEMPO_SPEC sections 3 and 4). Pure tensor code.

Order, as in Hugging Face: per candidate row, EOS suppression before
``min_steps``, repetition penalty, temperature, softmax; then the rows are
combined into one distribution (mixture / top / last); then top-k, top-p,
renormalisation; then threshold selection. ``distribution`` is that chain up to
top-p, written once for the batch and the tree search; ``draw`` is the one
seeded draw from it (default mode's sampled rows, the tree search's rollouts).

Every function is batched over rows ``B`` with per-row settings as tensors,
so requests with different settings share one pass.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, NamedTuple, Sequence

import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RowSettings:
    """The sampling settings of B rows as tensors ``[B]``, built once per batch layout (or search)."""

    temperature: torch.Tensor
    top_k: torch.Tensor
    top_p: torch.Tensor
    penalty: torch.Tensor
    need: torch.Tensor
    """How many of the highest tokens each row needs at least (its set-size cap; MCTS: ``mcts_expand``)."""
    repetition: bool
    """Some row has a repetition penalty: only then is it applied (and ``seen`` needed)."""
    tempered: bool | None = None
    """Some row's temperature is neither 0 nor 1 (None: read it from ``temperature``, a host sync)."""
    filtering: bool | None = None
    """Some row filters with top-k or top-p (None: read it from the tensors, a host sync)."""
    widest: int | None = None
    """The largest ``need`` (None: read it from ``need``, a host sync)."""

    @classmethod
    def of(cls, requests: Sequence[Any], need: Sequence[int], device: Any) -> "RowSettings":
        """The tensors, and the batch-wide flags as Python values: known once per layout, so a step reads
        none of them back from the device."""
        need = list(need)
        return cls(temperature=torch.tensor([r.temperature for r in requests], device=device),
                   top_k=torch.tensor([r.top_k for r in requests], device=device),
                   top_p=torch.tensor([r.top_p for r in requests], device=device),
                   penalty=torch.tensor([r.repetition_penalty for r in requests], device=device),
                   need=torch.tensor(need, device=device),
                   repetition=any(r.repetition_penalty != 1.0 for r in requests),
                   tempered=any(r.temperature not in (0, 1) for r in requests),
                   filtering=any(r.top_k > 0 or r.top_p < 1.0 for r in requests),
                   widest=max(need))


class Distribution(NamedTuple):
    """The processed next-token distribution of B rows.

    ``sorted_p``/``sorted_ids [B, W]``: the W highest tokens after top-k/top-p, highest first, as
    ``top_k_top_p`` returns them — enough for selection (sets of at most ``need`` tokens) and the
    whole support of every row that filters. ``p [B, V]``: the combined distribution before
    filtering, in vocabulary order: what an unfiltered sampled row draws from (``draw``), so that
    no row pays a full-vocabulary sort for another row's draw (None where nobody draws unfiltered:
    the tree search keeps it only then).
    """

    sorted_p: torch.Tensor
    sorted_ids: torch.Tensor
    p: torch.Tensor | None


def distribution(logits: torch.Tensor, settings: RowSettings, early: list[bool], eos_ids: list[int],
                 seen: torch.Tensor | None = None, weights: torch.Tensor | None = None) -> Distribution:
    """The processed next-token distribution of each row (``Distribution``).

    ``logits [B, K, V]``: the logits after each of a row's K candidates; ``early [B]``: rows before their
    ``min_steps`` (EOS suppressed); ``seen [B, V]``: the tokens the repetition penalty applies to (needed
    when ``settings.repetition``); ``weights [B, K]``: how the K rows combine (``mode_weights``); None
    when K is 1. In order: suppress EOS, repetition penalty, temperature + softmax, combine, top-k/top-p.
    """
    logits = suppress_tokens(logits, early, eos_ids)
    if settings.repetition:
        logits = repetition_penalty(logits, seen, settings.penalty)
    rows = temperature_softmax(logits, settings.temperature, settings.tempered)  # [B, K, V]
    p = rows[:, 0] if weights is None else combine(rows, weights)  # [B, V]
    return Distribution(*top_k_top_p(p, settings.top_k, settings.top_p, settings.need, settings.filtering,
                                     settings.widest), p)


def greedy(logits: torch.Tensor, settings: RowSettings, early: list[bool], eos_ids: list[int],
           seen: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The argmax of each row's distribution, its probability and the distribution, ``([B], [B], [B, V])``:
    ``distribution``'s
    highest token when no row filters (top-k / top-p) and K is 1, without the mixture and the top-k.

    The fast path of rows whose set can only be one token (``Batch.next_sets``). The probability is the
    same float as ``distribution``'s: the same softmax of the same processed logits (a mixture of one
    row with weight 1 is that row). ``logits [B, 1, V]``."""
    logits = suppress_tokens(logits, early, eos_ids)
    if settings.repetition:
        logits = repetition_penalty(logits, seen, settings.penalty)
    p = temperature_softmax(logits, settings.temperature, settings.tempered)[:, 0]  # [B, V]
    probs, ids = p.max(dim=-1)
    return probs, ids, p


def unit_distribution(logits: torch.Tensor, settings: RowSettings, early: list[bool], eos_ids: list[int],
                      seen: torch.Tensor | None = None, weights: torch.Tensor | None = None) -> torch.Tensor:
    """The distribution a set is selected from, at temperature 1 (TEMPO_SPEC section 11): ``distribution``'s
    chain without the temperature and before top-k/top-p. ``[B, V]``; the arguments as ``distribution``'s."""
    logits = suppress_tokens(logits, early, eos_ids)
    if settings.repetition:
        logits = repetition_penalty(logits, seen, settings.penalty)
    rows = torch.softmax(logits, dim=-1)  # [B, K, V]
    return rows[:, 0] if weights is None else combine(rows, weights)


def entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy ``H = -sum p log p`` and varentropy ``sum p (log p + H)^2`` (nats) of each row of ``p [B, V]``:
    ``[B, 2]``. Tokens of probability 0 (a suppressed EOS) add nothing."""
    p = p.double()  # the sums run over the whole vocabulary
    logs = torch.where(p > 0, p.log(), torch.zeros_like(p))  # [B, V]
    h = -(p * logs).sum(-1)  # [B]
    varentropy = (p * (logs + h[:, None]) ** 2).sum(-1)
    return torch.stack([h, varentropy], dim=-1)


def draw(dist: Distribution, row: int, top_k: int, top_p: float, generator: torch.Generator) -> tuple[int, float]:
    """One seeded draw from row ``row``'s whole filtered distribution: ``(token id, probability)``.

    What is drawn from depends on the row alone, never on the batch (its width W), so the same seed gives
    the same tokens alone and in any batch (TEMPO_SPEC invariants 5 and 8). A filtering row draws with
    ``multinomial`` — which consumes one random number per entry, so the width must be the row's own — over
    its support as ``top_k_top_p`` sorted it: its k highest tokens, or with top-p alone the whole sorted
    vocabulary. An unfiltered row draws over the whole vocabulary in its own order (``inverse_cdf``): no
    sort, and one random number instead of V (``multinomial`` over 152k tokens costs ~7 ms on a CPU).
    """
    if top_k > 0 or top_p < 1.0:
        width = dist.sorted_p.shape[-1]  # top-p alone: the whole vocabulary; top-k: at least its k tokens
        width = min(top_k, width) if top_k > 0 else width
        probs, ids = dist.sorted_p[row, :width].cpu(), dist.sorted_ids[row, :width]
        pick = int(torch.multinomial(probs, 1, generator=generator))
        return int(ids[pick]), float(probs[pick])
    token = inverse_cdf(dist.p[row], generator)
    return token, float(dist.p[row, token])


def probabilities_of(dist: Distribution, row: int, token_ids: list[int], settings: RowSettings) -> list[float]:
    """The selection probabilities of ``token_ids`` in row ``row`` of ``dist``: after top-k/top-p (0 outside the
    filtered support) when the row filters, else the combined ``p``. A given set's candidates (``forced_sets``)
    get the probabilities selection would have given them, so a branch weighs its given sets as its parent did."""
    if int(settings.top_k[row]) > 0 or float(settings.top_p[row]) < 1.0:  # the sorted prefix holds its support
        ids = torch.tensor(token_ids, device=dist.sorted_ids.device)
        match = dist.sorted_ids[row][None, :] == ids[:, None]  # [n, W]
        return (match * dist.sorted_p[row][None, :]).sum(-1).tolist()
    return dist.p[row, torch.tensor(token_ids, device=dist.p.device)].tolist()


def inverse_cdf(p: torch.Tensor, generator: torch.Generator) -> int:
    """The index ``i`` with ``cdf[i-1] <= u * total < cdf[i]`` for one uniform ``u`` of ``generator`` (a CPU
    generator, wherever ``p [V]`` lives). Entries of probability 0 are never drawn; float32 rounding moves
    each entry's mass by at most ~1e-7 of the total."""
    u = float(torch.rand((), generator=generator, dtype=torch.float64))
    cdf = p.cumsum(0)  # [V]
    index = int(torch.searchsorted(cdf, cdf[-1:] * u, right=True))
    if index >= p.numel():  # u * total rounded up to the total: the last entry with mass
        index = int(p.nonzero().max())
    return index


def suppress_tokens(logits: torch.Tensor, rows: list[bool], token_ids: list[int]) -> torch.Tensor:
    """Set ``token_ids`` to -inf in the rows where ``rows[b]`` is True. ``logits [B, K, V]``."""
    if not token_ids or not any(rows):
        return logits
    rows = torch.tensor(rows, device=logits.device)
    logits = logits.clone()
    ids = torch.tensor(token_ids, device=logits.device)
    block = logits[:, :, ids]
    logits[:, :, ids] = torch.where(rows[:, None, None], torch.full_like(block, float("-inf")), block)
    return logits


def repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: torch.Tensor) -> torch.Tensor:
    """HF semantics: seen tokens' positive logits divided by the penalty, negative ones multiplied.

    ``logits [B, K, V]``, ``seen [B, V]`` bool, ``penalty [B]``.
    """
    p = penalty[:, None, None]
    penalised = torch.where(logits < 0, logits * p, logits / p)
    return torch.where(seen[:, None, :], penalised, logits)


def temperature_softmax(logits: torch.Tensor, temperature: torch.Tensor, tempered: bool | None = None) -> torch.Tensor:
    """Softmax at each row's temperature; temperature 0 (greedy) keeps the plain softmax. ``tempered``: some
    row's temperature is neither 0 nor 1 (``RowSettings.tempered``; None: read from the tensor)."""
    t = torch.where(temperature > 0, temperature, torch.ones_like(temperature))[:, None, None]
    if tempered is None:
        tempered = bool((t != 1).any())
    return torch.softmax(logits / t if tempered else logits, dim=-1)


def combine(rows: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_i w_i q_i`` with weights normalised per row. ``rows [B, K, V]``, ``weights [B, K]``."""
    w = weights / weights.sum(-1, keepdim=True)
    return torch.einsum("bk,bkv->bv", w, rows)


def mode_weights(probabilities: torch.Tensor, kept: torch.Tensor, modes: list[str]) -> torch.Tensor:
    """Weights over the K rows for each row's ``next_logits_mode``.

    ``probabilities [B, K]``: the candidates' selection probabilities;
    ``kept [B, K]``: which slots hold a kept candidate (set order, highest first).
    ``mixture``: w_i = p(c_i) over kept; ``top``: the highest-probability kept
    candidate alone; ``last``: the last physical kept candidate alone.
    """
    mixture = torch.where(kept, probabilities, torch.zeros_like(probabilities))
    # A given set (a branch) whose candidates all lie outside top-k/top-p has probabilities 0: equal weights.
    unweighted = mixture.sum(-1, keepdim=True) == 0  # [B, 1]
    mixture = torch.where(unweighted, kept.to(mixture.dtype), mixture)
    if all(mode == "mixture" for mode in modes):
        return mixture
    weights = mixture.clone()
    for row, mode in enumerate(modes):
        if mode == "mixture":
            continue
        weights[row] = 0.0
        kept_slots = kept[row].nonzero().flatten()
        if mode == "top":
            weights[row, kept_slots[mixture[row, kept_slots].argmax()]] = 1.0
        else:  # last
            weights[row, kept_slots[-1]] = 1.0
    return weights


def top_k_top_p(p: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor, need: torch.Tensor,
                filtering: bool | None = None, widest: int | None = None):
    """Filter with top-k then top-p (HF semantics; 0 and 1.0 disable) and renormalise.

    ``p [B, V]``; ``need [B]``: how many of the highest tokens the caller needs
    at least (the set-size cap). Returns ``(sorted_probs [B, W], sorted_ids [B, W])``,
    highest first, filtered entries 0: the W highest tokens, where W covers every
    row's top-k (or its whole vocabulary for top-p without top-k). A full sort
    of the vocabulary is paid only when a row asks for top-p without top-k. ``filtering`` and ``widest``
    (``RowSettings``) spare the host syncs that read them from the tensors.
    """
    vocab = p.shape[-1]
    if filtering is None:
        filtering = bool(((top_k > 0) | (top_p < 1.0)).any())
    if not filtering:  # no filter on any row: the top tokens as they are
        return p.topk(min(vocab, int(need.max()) if widest is None else widest), dim=-1)
    k = torch.where(top_k > 0, top_k.clamp(max=vocab), torch.zeros_like(top_k))  # 0: no top-k
    full = bool(((k == 0) & (top_p < 1.0)).any())
    width = vocab if full else int(torch.maximum(k, need).max().clamp(max=vocab))
    if log.isEnabledFor(logging.DEBUG):
        log.debug("top-k/top-p over the %d highest of %d tokens (top_k %s, top_p %s)", width, vocab,
                  top_k.tolist(), [round(v, 3) for v in top_p.tolist()])
    if width == vocab:
        sorted_p, sorted_ids = p.sort(dim=-1, descending=True)
    else:
        sorted_p, sorted_ids = p.topk(width, dim=-1)
    rank = torch.arange(width, device=p.device)[None]  # [1, W]
    in_k = (rank < k[:, None]) | (k[:, None] == 0)
    sorted_p = torch.where(in_k, sorted_p, torch.zeros_like(sorted_p))
    # Rows with top-k hold their whole support in the prefix: renormalise them; others already sum to 1.
    total = torch.where(k > 0, sorted_p.sum(-1), torch.ones_like(sorted_p[:, 0]))
    sorted_p = sorted_p / total[:, None]
    # HF removes a token when the ascending cumulative mass up to it is <= 1 - top_p,
    # i.e. when the mass strictly above it (descending, exclusive) is >= top_p.
    mass_above = sorted_p.cumsum(-1) - sorted_p
    keep = (mass_above < top_p[:, None]) | (rank == 0)
    sorted_p = torch.where(keep, sorted_p, torch.zeros_like(sorted_p))
    total = torch.where(top_p < 1.0, sorted_p.sum(-1), torch.ones_like(sorted_p[:, 0]))
    return sorted_p / total[:, None], sorted_ids


def set_sizes(sorted_p: torch.Tensor, threshold: torch.Tensor, max_parallel: torch.Tensor,
              single: torch.Tensor) -> torch.Tensor:
    """How many of the highest tokens form each row's set: ``[B]``.

    All tokens with ``p >= threshold``, at most ``max_parallel``, at least one
    (the argmax when none passes); exactly one for ``single`` rows (greedy,
    default mode).
    """
    passing = ((sorted_p >= threshold[:, None]) & (sorted_p > 0)).sum(-1)
    sizes = passing.clamp(min=1).minimum(max_parallel)
    sizes = torch.where(single, torch.ones_like(sizes), sizes)
    if log.isEnabledFor(logging.DEBUG):
        log.debug("set sizes %s: %s tokens pass thresholds %s (cap %s; top probabilities %s)", sizes.tolist(),
                  passing.tolist(), [round(t, 4) for t in threshold.tolist()], max_parallel.tolist(),
                  [[round(p, 4) for p in row] for row in sorted_p[:, :4].tolist()])
    return sizes
