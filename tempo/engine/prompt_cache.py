"""The prompt cache: a prompt's keys, values and last logits, kept so that running it again skips the prefill.

Re-running a prompt with other thresholds (or in another mode: ``Tempo.compare``) starts from the
same prefill, since the prefill depends on the prompt's token ids alone. An entry holds, for one
prompt without padding, every layer's keys and values ``[1, H, P, D]`` and the logits of the last
position ``[1, 1, V]`` (float32). Entries are keyed by the token-id tuple (the ids already reflect
the chat template, ``enable_thinking`` and ``system_content``), kept in least-recently-used order
and evicted past ``size`` entries or ``max_bytes`` bytes. One cache per model (``Tempo``): the
batches of ``Tempo.run``, the scheduler's batch and the tree search share it.

Stored tensors are private copies and never handed out: ``build_cache`` copies them into a fresh
``DynamicCache``, so the in-place cache operations of the loops (``concat_rows``, ``select_rows``,
``truncate``) cannot change an entry. Only caches whose layers are all plain ``DynamicLayer`` are
cached (the engine keeps one for sliding-window models too; state-space and hybrid caches keep more
than keys and values per slot); ``supports`` says whether a model's are. The cache assumes fixed weights: ``clear`` it after
changing them.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

from tempo.engine.adapter import left_pad_seq

log = logging.getLogger(__name__)

GIB = 1024 ** 3


@dataclass(frozen=True)
class Entry:
    """One prompt's prefill: per-layer keys and values ``[1, H, P, D]`` and last logits ``[1, 1, V]``."""

    keys: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]
    logits: torch.Tensor
    nbytes: int

    @property
    def length(self) -> int:
        return self.keys[0].shape[2]


class PromptCache:
    """Least-recently-used map from a prompt's token ids to its ``Entry``; thread-safe.

    ``size`` bounds the entries (0: nothing is kept), ``max_bytes`` the bytes of all kept tensors.
    """

    def __init__(self, size: int = 16, max_bytes: float = 2 * GIB):
        if size < 0 or max_bytes < 0:
            raise ValueError(f"size and max_bytes must be >= 0, got {size} and {max_bytes}")
        self.size = int(size)
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[tuple[int, ...], Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = self.evictions = 0
        self.bytes = 0

    @classmethod
    def from_settings(cls, settings: Any) -> "PromptCache | None":
        """The prompt cache of the typed settings' ``cache`` section, or None when ``enable_prompt_cache``
        is false or the size is 0. Only ``"lru"`` eviction exists (``cache.cache_eviction_policy`` is
        accepted at that value only, checked when the settings load)."""
        cache = settings.cache
        if not cache.enable_prompt_cache or cache.prompt_cache_size == 0:
            return None
        return cls(cache.prompt_cache_size, cache.max_cache_size_gb * GIB)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, ids: Any) -> bool:
        return tuple(ids) in self._entries

    def get(self, ids: Any) -> Entry | None:
        """The entry of these prompt ids (now the most recently used), or None; counts a hit or a miss."""
        key = tuple(ids)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
            else:
                self.hits += 1
                self._entries.move_to_end(key)
        log.debug("prompt cache %s: %d tokens (%d entries, %.1f MiB)", "hit" if entry else "miss", len(key),
                  len(self._entries), self.bytes / 2 ** 20)
        return entry

    def put(self, ids: Any, keys: list[torch.Tensor], values: list[torch.Tensor], logits: torch.Tensor) -> Entry:
        """Store copies of one prompt's per-layer ``keys``/``values`` ``[1, H, P, D]`` and ``logits [1, 1, V]``;
        return the entry (also when it is not kept: no room, or larger than ``max_bytes``)."""
        keys = tuple(k.detach().clone() for k in keys)
        values = tuple(v.detach().clone() for v in values)
        logits = logits.detach().clone()
        nbytes = sum(t.numel() * t.element_size() for t in (*keys, *values, logits))
        entry = Entry(keys, values, logits, nbytes)
        key = tuple(ids)
        if self.size == 0 or nbytes > self.max_bytes:
            log.debug("prompt cache: %d tokens not kept (%.1f MiB; bound %d entries, %.1f MiB)", len(key),
                      nbytes / 2 ** 20, self.size, self.max_bytes / 2 ** 20)
            return entry
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= old.nbytes
            self._entries[key] = entry
            self.bytes += nbytes
            while len(self._entries) > self.size or self.bytes > self.max_bytes:
                evicted_key, evicted = self._entries.popitem(last=False)
                self.bytes -= evicted.nbytes
                self.evictions += 1
                log.debug("prompt cache evict: %d tokens (%.1f MiB)", len(evicted_key), evicted.nbytes / 2 ** 20)
        log.debug("prompt cache store: %d tokens (%.1f MiB; now %d entries, %.1f MiB)", len(key), nbytes / 2 ** 20,
                  len(self._entries), self.bytes / 2 ** 20)
        return entry

    def put_row(self, ids: Any, cache: Any, row: int, logits: torch.Tensor) -> Entry:
        """Store row ``row`` of a left-padded prefill: its last ``len(ids)`` slots of every layer of
        ``cache`` and its last logits ``[1, V]`` or ``[1, 1, V]``."""
        n = len(ids)
        keys = [layer.keys[row:row + 1, :, layer.keys.shape[2] - n:] for layer in cache.layers]
        values = [layer.values[row:row + 1, :, layer.values.shape[2] - n:] for layer in cache.layers]
        return self.put(ids, keys, values, logits.reshape(1, 1, -1))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.bytes = 0

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"entries": len(self._entries), "bytes": self.bytes, "hits": self.hits, "misses": self.misses,
                    "evictions": self.evictions, "size": self.size, "max_bytes": self.max_bytes}


def plain(cache: Any) -> bool:
    """Is ``cache`` a ``DynamicCache`` whose layers all hold plain keys and values?"""
    return type(cache) is DynamicCache and bool(cache.layers) and all(type(layer) is DynamicLayer
                                                                      for layer in cache.layers)


def supports(adapter: Any) -> bool:
    """Does the engine keep a plain cache for this model? Sliding-window models do (the adapter applies
    the window in its mask over a full cache); state-space and other hybrid caches do not."""
    if getattr(adapter, "windows", None):
        return True
    try:
        return plain(DynamicCache(config=adapter.model.config))
    except Exception:  # a config the library cannot map to dynamic layers
        log.debug("prompt cache: no dynamic cache for this config", exc_info=True)
        return False


def build_cache(entries: list[Entry], adapter: Any) -> tuple[torch.Tensor, DynamicCache]:
    """The rows' last logits ``[B, 1, V]`` and a fresh cache of the rows ``entries``, left-padded with
    zero slots to the longest (the callers' masks hide them), in the form the adapter's forward makes:
    the model's own layer types, or for a sliding-window model a full cache with the slots' position
    ids (``tempo_positions``, padding at 0). The entries' tensors are copied."""
    width = max(entry.length for entry in entries)
    windowed = bool(getattr(adapter, "windows", None))
    cache = DynamicCache() if windowed else DynamicCache(config=adapter.model.config)
    for i in range(len(entries[0].keys)):
        keys = torch.cat([left_pad_seq(entry.keys[i], width - entry.length) for entry in entries])
        values = torch.cat([left_pad_seq(entry.values[i], width - entry.length) for entry in entries])
        cache.update(keys, values, i)
    if windowed:
        device = entries[0].logits.device
        cache.tempo_positions = torch.stack([
            torch.cat([torch.zeros(width - e.length, dtype=torch.long), torch.arange(e.length)]) for e in entries
        ]).to(device)
    return torch.cat([entry.logits for entry in entries]), cache
