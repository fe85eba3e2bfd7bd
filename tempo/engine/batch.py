"""The batched TEMPO loop: layout -> mask + positions -> forward -> distributions -> selection -> append.

A ``Batch`` holds B rows (requests) over one KV cache, left-padded. Each step
every row appends K = the largest set size of the batch; a row with a smaller
set fills the rest with filler slots nobody attends to. Rows leave the batch
(``index_select`` on the cache) as soon as they finish, and the leading slots no
staying row may attend leave with them (``_trim``), so a batch that never empties
stays as wide as its rows need. A single request is a
batch of one. Default mode is a row whose set is always one token.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterable

import torch

from tempo.engine import layout, prefill, prompt_cache, pruning, sampling
from tempo.engine.adapter import ModelAdapter
from tempo.engine.attention import capture
from tempo.engine.prompt_cache import PromptCache
from tempo.engine.prompting import PromptLimits, prompt_row
from tempo.engine.row import Row, SetRecord
from tempo.errors import RequestError
from tempo.request import GenerationRequest

log = logging.getLogger(__name__)


StepCallback = Callable[[Row], None]

STATE = ("visible", "key_bias", "prompt_len", "seen", "logits", "set_probs", "kept")
"""Per-row tensors (batch dimension first) that travel with the rows."""


def check_for_model(request: GenerationRequest, adapter: ModelAdapter) -> None:
    """The request rules that depend on the loaded model (the others hold in ``build_request``; the prompt's
    length in ``prompting.prompt_row``)."""
    if request.use_retroactive_pruning and adapter.tensor_parallel:
        raise RequestError("use_retroactive_pruning", "must be false under tensor parallelism (model.tp_plan): "
                           "each process sees only its own heads' attention, so their pruning would differ")
    if request.use_retroactive_pruning and request.num_layers_to_use > adapter.num_layers:
        raise RequestError("num_layers_to_use", f"must be in [0, {adapter.num_layers}] for this model "
                           f"(0 = all {adapter.num_layers} layers), got {request.num_layers_to_use}")


class Batch:
    """Rows generating together over one KV cache.

    ``add`` prefills new requests and merges them in (at a step boundary), taking the prompts that
    ``prompt_cache`` holds from it (engine/prompt_cache.py) and prefilling each distinct other prompt once;
    ``step`` advances every row by one logical step; finished and cancelled
    rows leave. ``run`` drives a fixed list of requests to the end.
    """

    def __init__(self, adapter: ModelAdapter, tokenizer: Any, eos_ids: Iterable[int], pad_id: int,
                 on_step: StepCallback | None = None, prompt_cache: PromptCache | None = None,
                 limits: PromptLimits | None = None):
        self.adapter = adapter
        self.limits = limits if limits is not None else PromptLimits.of(adapter.context)
        """How long a prompt may be: refused (or truncated) in ``add``, before any forward."""
        self.prompt_cache = prompt_cache
        self.tokenizer = tokenizer
        self.eos_ids = sorted(set(eos_ids))
        self.pad_id = pad_id
        self.on_step = on_step
        self.rows: list[Row] = []
        self.finished: list[Row] = []
        self.cache: Any = None

    # --- per-row settings as tensors, rebuilt when rows join or leave -----------------------
    def _settings(self) -> None:
        dev = self.adapter.device
        req = [row.request for row in self.rows]
        self.sampling = sampling.RowSettings.of(req, [r.max_parallel_tokens for r in req], dev)
        self.single = torch.tensor([row.single for row in self.rows], device=dev)
        self.intraset = torch.tensor([r.allow_intraset_token_visibility for r in req], device=dev)
        self.modes = [r.next_logits_mode for r in req]
        self.soft = any(r.use_retroactive_pruning and r.soft_pruning for r in req)
        n_layers = self.adapter.num_layers
        self.plans = [pruning.layer_plan(n_layers, r.num_layers_to_use, r.multi_scale_attention)
                      if r.use_retroactive_pruning else None for r in req]

    def add(self, requests: list[GenerationRequest], keys: list[Any] | None = None) -> list[Row]:
        """Prefill ``requests`` (one forward over their prompts, or over those the prompt cache does not
        hold) and merge them into the batch."""
        keys = list(range(len(requests))) if keys is None else keys
        for request in requests:
            check_for_model(request, self.adapter)
        rows = [prompt_row(key, r, self.tokenizer, self.limits) for key, r in zip(keys, requests)]
        for row in rows:
            if row.request.mode == "default" and row.request.temperature > 0:
                row.generator = torch.Generator().manual_seed(row.request.seed)
        start = time.perf_counter()
        dev = self.adapter.device
        _, visible, _ = layout.left_pad([r.prompt_ids for r in rows], self.pad_id, dev)
        logits, cache = self._prefill([row.prompt_ids for row in rows])
        vocab = logits.shape[-1]
        seen = torch.zeros(len(rows), vocab, dtype=torch.bool, device=dev)  # [B, V]
        for b, row in enumerate(rows):
            seen[b, torch.tensor(row.prompt_ids, device=dev).clamp(max=vocab - 1)] = True
        state = {
            "visible": visible,  # [B, T] may later queries attend this slot?
            "key_bias": torch.zeros(visible.shape, device=dev),  # [B, T] soft pruning's log(sigma) per slot
            "prompt_len": visible.sum(-1),  # [B]
            "seen": seen,  # [B, V] tokens the repetition penalty applies to
            "logits": logits,  # [B, K, V] rows of the newest set (K = 1 after prefill)
            "set_probs": torch.ones(len(rows), 1, device=dev),  # [B, K]
            "kept": torch.ones(len(rows), 1, dtype=torch.bool, device=dev),  # [B, K]
        }
        now = time.perf_counter()
        for row in rows:
            row.prefill_s, row.decode_start = now - start, now
        log.debug("rows joining: %s (prompts of %s tokens) beside %d running, prefill %.3f s",
                  [row.key for row in rows], [len(row.prompt_ids) for row in rows], len(self.rows), now - start)
        if not self.rows:
            self.rows, self.cache = rows, cache
            for name in STATE:
                setattr(self, name, state[name])
        else:
            self._merge(rows, cache, state)
        self._settings()
        return rows

    def _prefill(self, prompts: list[list[int]]) -> tuple[torch.Tensor, Any]:
        """The last logits ``[B, 1, V]`` and the left-padded cache of ``prompts``: one forward over them,
        or, with a prompt cache, one forward over the distinct prompts it does not hold."""
        if self.prompt_cache is None:
            return self._forward_prompts(prompts)
        distinct = list(dict.fromkeys(tuple(ids) for ids in prompts))
        entries = {ids: self.prompt_cache.get(ids) for ids in distinct}
        missing = [ids for ids in distinct if entries[ids] is None]
        if len(missing) == len(prompts):  # every row a distinct miss: the forward's cache is the batch's
            logits, cache = self._forward_prompts(prompts)
            self._store(missing, logits, cache)
            return logits, cache
        if missing:
            logits, cache = self._forward_prompts([list(ids) for ids in missing])
            stored = self._store(missing, logits, cache)
            if stored is None:
                return self._forward_prompts(prompts)
            entries.update(stored)
        return prompt_cache.build_cache([entries[tuple(ids)] for ids in prompts], self.adapter)

    def _forward_prompts(self, prompts: list[list[int]]) -> tuple[torch.Tensor, Any]:
        """One forward over the left-padded ``prompts``: last logits ``[B, 1, V]`` and the cache."""
        return prefill.prefill(self.adapter, prompts, self.pad_id)  # no [P, P] mask for a long prompt

    def _store(self, prompts: list[tuple[int, ...]], logits: torch.Tensor, cache: Any) -> dict | None:
        """Put every row of a prefill into the prompt cache; the entries by prompt. A cache that is not
        plain keys and values turns the prompt cache off for this batch (None)."""
        if not prompt_cache.plain(cache):
            log.warning("prompt cache off: the model's cache is a %s, not plain keys and values", type(cache).__name__)
            self.prompt_cache = None
            return None
        entries = {}
        for b, ids in enumerate(prompts):
            entries[ids] = self.prompt_cache.put_row(ids, cache, b, logits[b])
        return entries

    def _merge(self, rows: list[Row], cache: Any, state: dict[str, torch.Tensor]) -> None:
        """Append rows to the batch: the shorter cache is left-padded with invisible slots,
        the shorter set dimension with filler slots."""
        t_old, t_new = self.visible.shape[1], state["visible"].shape[1]
        width = max(t_old, t_new)
        self.cache = self.adapter.concat_rows(self.cache, width - t_old, cache, width - t_new)
        for name in ("visible", "key_bias"):
            setattr(self, name, torch.cat([_left_pad(getattr(self, name), width), _left_pad(state[name], width)]))
        for shift, group in ((width - t_old, self.rows), (width - t_new, rows)):
            for row in group:
                for record in row.sets:
                    record.slots = [slot + shift for slot in record.slots]
        k = max(self.logits.shape[1], state["logits"].shape[1])
        for name in ("logits", "set_probs", "kept"):
            setattr(self, name, torch.cat([_pad_sets(getattr(self, name), k), _pad_sets(state[name], k)]))
        self.prompt_len = torch.cat([self.prompt_len, state["prompt_len"]])
        self.seen = torch.cat([self.seen, state["seen"]])
        self.rows = self.rows + rows

    def cancel(self, key: Any) -> bool:
        """Mark the row of ``key`` cancelled; it leaves at the next step boundary. False if not here."""
        for row in self.rows:
            if row.key == key and row.stop_reason is None:
                row.stop_reason, row.finished_at = "cancelled", time.perf_counter()
                return True
        return False

    def next_sets(self, thresholds: list[float]) -> tuple[list[list[int]], list[list[float]]]:
        """The next step's set of every row (token ids and probabilities, highest first)."""
        early = [len(row.sets) < row.request.min_steps for row in self.rows]
        weights = sampling.mode_weights(self.set_probs, self.kept, self.modes)  # [B, K]
        dist = sampling.distribution(self.logits, self.sampling, early, self.eos_ids, self.seen, weights)
        sorted_p, sorted_ids = dist.sorted_p, dist.sorted_ids
        threshold = torch.tensor(thresholds, device=sorted_p.device)
        sizes = sampling.set_sizes(sorted_p, threshold, self.sampling.need, self.single)
        width = int(sizes.max())
        ids, probs, sizes = sorted_ids[:, :width].tolist(), sorted_p[:, :width].tolist(), sizes.tolist()
        sets_ids, sets_probs = [], []
        for b, row in enumerate(self.rows):
            if row.generator is not None:  # default mode, sampled: one draw from the whole filtered p
                token, prob = sampling.draw(dist, b, row.request.top_k, row.request.top_p, row.generator)
                sets_ids.append([token])
                sets_probs.append([prob])
            else:
                sets_ids.append(ids[b][: sizes[b]])
                sets_probs.append(probs[b][: sizes[b]])
        return sets_ids, sets_probs

    def _leave(self, judged_last: list[Row] = ()) -> None:
        """Move finished and cancelled rows out of the batch and its cache, but for ``judged_last``."""
        last = {id(row) for row in judged_last}
        staying = [b for b, row in enumerate(self.rows) if row.stop_reason is None or id(row) in last]
        if len(staying) == len(self.rows):
            return
        self.finished.extend(row for b, row in enumerate(self.rows) if b not in staying)
        if not staying:
            self.rows, self.cache = [], None
            return
        if log.isEnabledFor(logging.DEBUG):
            log.debug("rows leaving: %s; %d stay", ", ".join(f"{row.key} ({row.stop_reason}, {len(row.sets)} steps)"
                      for b, row in enumerate(self.rows) if b not in staying), len(staying))
        index = torch.tensor(staying, device=self.adapter.device)
        self.adapter.select_rows(self.cache, index)
        self.rows = [self.rows[i] for i in staying]
        for name in STATE:
            setattr(self, name, getattr(self, name).index_select(0, index))
        self._trim()
        self._settings()

    def _trim(self) -> None:
        """Drop the leading slots that no staying row may attend: the slots of rows gone and the padding
        before the oldest staying row's prompt. Without this a batch that never empties (a server under
        steady load) keeps every slot any row ever had, and its cache grows step after step."""
        seen_by_any = self.visible.any(dim=0)  # [T]
        if not bool(seen_by_any.any()):
            return
        cut = int(seen_by_any.to(torch.int8).argmax())  # the first slot some row may attend
        if cut == 0:
            return
        self.adapter.trim_left(self.cache, cut)
        self.visible = self.visible[:, cut:].contiguous()
        self.key_bias = self.key_bias[:, cut:].contiguous()
        for row in self.rows:
            for record in row.sets:
                record.slots = [slot - cut for slot in record.slots]

    def step(self) -> None:
        """One logical step for every row: select each set, let finished rows leave, run the forward.

        A pruning row that reaches ``max_tokens`` stays for one last forward over its last set, whose
        queries judge the set before it (TEMPO_SPEC section 6; without it that set is never judged); it
        needs no logits, and rows that do not prune never pay it. A row that stops at EOS needs none:
        its last set's forward already ran (it produced the EOS)."""
        self._leave()  # rows cancelled since the last step
        if not self.rows:
            return
        thresholds = [row.selection_threshold(len(row.sets)) for row in self.rows]
        sets_ids, sets_probs = self.next_sets(thresholds)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("step: %d rows, set sizes %s", len(self.rows), [len(ids) for ids in sets_ids])
        now = time.perf_counter()
        judged_last: list[Row] = []  # finished pruning rows that stay for the forward over their last set
        for b, row in enumerate(self.rows):
            ids, probs = sets_ids[b], sets_probs[b]
            if ids[0] in self.eos_ids:
                row.stop_reason, row.finished_at = "eos", now
                continue
            keep = [i for i, t in enumerate(ids) if t not in self.eos_ids]
            row.sets.append(SetRecord([ids[i] for i in keep], [probs[i] for i in keep], thresholds[b]))
            if len(row.sets) >= row.request.max_tokens:
                row.stop_reason, row.finished_at = "max_tokens", now
                if row.request.use_retroactive_pruning:
                    judged_last.append(row)
                    continue  # its update follows the last judgement
            if self.on_step is not None:
                self.on_step(row)
        self._leave(judged_last)
        if self.rows:
            self._forward(judged_last)
        if judged_last:
            self._leave()
            now = time.perf_counter()
            for row in judged_last:
                row.finished_at = now
                if self.on_step is not None:
                    self.on_step(row)

    def _forward(self, judged_last: list[Row] = ()) -> None:
        """Append every row's newest set at position ``P + s``, run the model over it, then prune.

        ``judged_last``: finished rows here only to be pruned; their slots skip the output head."""
        dev = self.adapter.device
        last = {id(row) for row in judged_last}
        k = max(len(row.sets[-1].tokens) for row in self.rows)
        width = self.visible.shape[1]
        input_ids = torch.full((len(self.rows), k), self.pad_id, dtype=torch.long)
        probs = torch.zeros(len(self.rows), k)
        real = torch.zeros(len(self.rows), k, dtype=torch.bool)
        head = torch.tensor([id(row) not in last for row in self.rows])  # [B] rows whose logits are read
        for b, row in enumerate(self.rows):
            record = row.sets[-1]
            n = len(record.tokens)
            record.slots = list(range(width, width + n))
            input_ids[b, :n] = torch.tensor(record.tokens)
            probs[b, :n] = torch.tensor(record.probs)
            real[b, :n] = True
        input_ids, probs, real, head = input_ids.to(dev), probs.to(dev), real.to(dev), head.to(dev)
        steps = torch.tensor([len(row.sets) - 1 for row in self.rows], device=dev)
        positions = layout.step_positions(self.prompt_len, steps, k)  # [B, K]
        if k == 1 and not self.soft and bool(self.visible.all()):
            mask = None  # one new token that may see everything: the library's causal path is exact
        else:
            mask = layout.step_mask(self.visible, real, self.intraset, self.adapter.dtype,
                                    self.key_bias if self.soft else None)  # [B, 1, K, T+K]
        layers = {layer for plan in self.plans if plan is not None for layer in plan[0]}
        with capture(layers) as self.attention:  # empty set: every layer stays on SDPA
            self.logits, self.cache = self.adapter.forward(input_ids, positions, mask, self.cache,
                                                          needed=real & head[:, None])  # [B, K, V]
        self.visible = torch.cat([self.visible, real], dim=-1)
        self.key_bias = torch.cat([self.key_bias, torch.zeros(real.shape, device=dev)], dim=-1)
        self.set_probs, self.kept = probs, real
        if self.sampling.repetition:
            # scatter_add, not scatter: filler slots repeat the pad id and must not unset it.
            added = torch.zeros_like(self.seen, dtype=torch.long).scatter_add_(1, input_ids, real.long())
            self.seen |= added > 0
        if layers:
            self._prune(self.attention, probs)

    def _prune(self, attention: dict[int, torch.Tensor], query_weights: torch.Tensor) -> None:
        """Retroactive pruning of every pruning row from this step's attention (TEMPO_SPEC section 6)."""
        start = time.perf_counter()
        pruning_rows = [b for b, plan in enumerate(self.plans) if plan is not None]
        for b in pruning_rows:
            row, (layers, layer_weights) = self.rows[b], self.plans[b]
            per_layer = torch.stack([attention[layer][b] for layer in layers])  # [L, K, T]
            signal = pruning.attention_signal(per_layer, layer_weights, query_weights[b]).cpu()  # [T]
            step = len(row.sets) - 1
            threshold = row.attention_threshold(step)
            row.sets[-1].attention_threshold = threshold
            change = pruning.prune_sets(row.sets, signal, step, threshold, row.request)
            if change.hidden:
                self.visible[b, change.hidden] = False
                if row.request.repetition_penalty != 1.0:
                    self._recount_seen(b, row)
            for slot, bias in change.biases.items():
                self.key_bias[b, slot] = bias
        elapsed = time.perf_counter() - start
        for b in pruning_rows:
            self.rows[b].pruning_s += elapsed

    def _recount_seen(self, b: int, row: Row) -> None:
        """The repetition penalty covers the prompt and the generated tokens still kept."""
        ids = row.prompt_ids + [t for record in row.sets for t, status in zip(record.tokens, record.status)
                                if status == "kept"]
        self.seen[b] = False
        self.seen[b, torch.tensor(ids, device=self.seen.device).clamp(max=self.seen.shape[1] - 1)] = True

    def run(self, requests: list[GenerationRequest]) -> list[Row]:
        """Generate ``requests`` as one batch to the end; rows in request order."""
        self.add(requests)
        while self.rows:
            self.step()
        return sorted(self.finished, key=lambda row: row.key)


def _left_pad(visible: torch.Tensor, width: int) -> torch.Tensor:
    """``[B, T]`` -> ``[B, width]`` with invisible slots on the left."""
    pad = torch.zeros(visible.shape[0], width - visible.shape[1], dtype=visible.dtype, device=visible.device)
    return torch.cat([pad, visible], dim=1)


def _pad_sets(tensor: torch.Tensor, k: int) -> torch.Tensor:
    """Pad the set dimension (dim 1) to ``k`` with zeros / False: filler slots."""
    missing = k - tensor.shape[1]
    if missing == 0:
        return tensor
    shape = (tensor.shape[0], missing, *tensor.shape[2:])
    return torch.cat([tensor, torch.zeros(shape, dtype=tensor.dtype, device=tensor.device)], dim=1)
