"""Switching the model at run time: ``ModelSwitcher`` behind REST ``POST /model`` (tempo/serve/model_route.py)
and the Model tab's picker (tempo/ui/model_picker.py).

    switcher = ModelSwitcher(scheduler, settings)
    switcher.authorize(token)                   # 403 when app.allow_model_switch is off, 401 for a wrong token
    outcome = switcher.switch("HuggingFaceTB/SmolLM2-360M-Instruct")

A switch, in order: the model's memory estimate against the memory available on its device (refused with the
figures when it does not fit: tempo/models/fit.py), TEMPO's support of its layers, the load (in the caller's
thread: the running batch goes on meanwhile), then the scheduler's ``swap`` between batches (running requests
finish first; past ``app.model_switch_timeout`` they end with a message that says why). Whatever fails before
the swap leaves the previous model serving. One switch at a time. The admin token (``api.admin_token``) is
compared in constant time and never logged.
"""
from __future__ import annotations

import gc
import hmac
import logging
import threading
import time
from typing import Any

import torch

from tempo.errors import TempoError
from tempo.models.fit import ModelTooLarge, check_fit
from tempo.models.info import ModelInspectionError
from tempo.models.loading import load_from_settings, resolve_device, resolve_dtype
from tempo.serve.jobs import JobQueue
from tempo.settings.schema import Settings

log = logging.getLogger(__name__)


class SwitchError(TempoError):
    """A refused or failed switch: the HTTP status, the message, and the model it was about."""

    def __init__(self, status: int, message: str, model_id: str | None = None, **extra: Any):
        super().__init__(message)
        self.status, self.model_id, self.extra = status, model_id, extra

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"detail": str(self)}
        if self.model_id is not None:
            body["model_id"] = self.model_id
        return {**body, **self.extra}


class ModelSwitcher:
    """Loads another model and hands it to the scheduler; knows the model served and any fallback."""

    def __init__(self, scheduler: JobQueue, settings: Settings, fallback: dict[str, str] | None = None):
        self.scheduler = scheduler
        self.settings = settings
        self.fallback = fallback
        """``{"wanted", "serving", "reason"}`` while the app serves its fallback model (tempo/models/fallback.py);
        None otherwise (and after any successful switch)."""
        self.last: dict[str, Any] | None = None
        """The outcome of the last switch (or its error), for the Model tab."""
        self._lock = threading.Lock()

    @property
    def allowed(self) -> bool:
        return self.settings.app.allow_model_switch

    @property
    def needs_token(self) -> bool:
        return bool(self.settings.api.admin_token)

    @property
    def model_id(self) -> str:
        return self.scheduler.engine.loaded.model_id

    def authorize(self, token: str | None) -> None:
        """403 when switching is off (naming the setting); 401 when a token is set and ``token`` is not it."""
        if not self.allowed:
            raise SwitchError(403, "app.allow_model_switch: model switching is off; set it to true to allow it")
        expected = self.settings.api.admin_token
        if expected and not hmac.compare_digest((token or "").encode(), expected.encode()):
            raise SwitchError(401, "api.admin_token: a model switch needs the admin token: "
                                   + ("wrong token" if token else "none given"))

    def switch(self, model_id: str) -> dict[str, Any]:
        """Load ``model_id`` and serve it from the next batch on; ``SwitchError`` (status, message naming the
        model) when it cannot be, the previous model serving on. Call ``authorize`` first."""
        model_id = (model_id or "").strip()
        if not model_id:
            raise SwitchError(422, "model_id: give a hub id or a local path")
        if not self._lock.acquire(blocking=False):
            raise SwitchError(409, "model_id: another model switch is under way; retry when it ends", model_id)
        try:
            self.last = self._switch(model_id)
            return self.last
        except SwitchError as exc:
            self.last = {"error": str(exc), "model_id": model_id}
            raise
        finally:
            self._lock.release()

    def _switch(self, model_id: str) -> dict[str, Any]:
        from tempo.engine.runner import Tempo

        previous = self.model_id
        section = self.settings.model
        device = resolve_device(section.device)
        fit = self._check(model_id, device, resolve_dtype(section.torch_dtype, device))
        started = time.perf_counter()
        try:
            engine = Tempo(load_from_settings(self.settings, model_id=model_id), self.settings)
        except TempoError as exc:
            log.warning("model switch to %r failed: %s; %s keeps serving", model_id, exc, previous)
            raise SwitchError(422, f"model_id: {exc}; {previous!r} keeps serving", model_id) from None
        loaded_s = time.perf_counter() - started
        cancelled = self.scheduler.swap(engine, self.settings.app.model_switch_timeout,
                                        f"the model was switched from {previous!r} to {model_id!r}")
        self.fallback = None
        gc.collect()  # the previous model's weights and prompt cache go now, not at some later collection
        if device.type == "cuda":
            torch.cuda.empty_cache()
        log.info("model switched from %s to %s (loaded in %.1f s; %d running requests cancelled)", previous,
                 model_id, loaded_s, cancelled)
        info = engine.loaded.info()
        return {"model": model_id, "previous": previous, "device": info["device"], "dtype": info["dtype"],
                "parameters": engine.loaded.parameters, "load_s": round(loaded_s, 3), "cancelled": cancelled,
                "memory": fit.as_dict()}

    def _check(self, model_id: str, device: torch.device, dtype: torch.dtype):
        """The memory estimate against the device's memory, and TEMPO's support of the model's layers."""
        try:
            fit = check_fit(model_id, self.settings, device, dtype)
        except ModelTooLarge as exc:
            raise SwitchError(422, f"model_id: {exc}; {self.model_id!r} keeps serving", model_id,
                              memory=exc.fit.as_dict()) from None
        except ModelInspectionError as exc:
            raise SwitchError(422, f"model_id: {exc}; {self.model_id!r} keeps serving", model_id) from None
        return fit

    def status(self) -> dict[str, Any]:
        """The model served, any fallback, whether switching is allowed and guarded."""
        return {"model": self.model_id, "fallback": self.fallback, "allow_model_switch": self.allowed,
                "admin_token_required": self.needs_token}

    def choices(self) -> list[tuple[str, str]]:
        """The picker's ``(label, id)`` pairs: the curated list (``app.models``), and the model served when it is
        not on it."""
        pairs = [(f"{m['label']} · {m['parameters'] / 1e6:,.0f}M parameters", m["id"])
                 for m in self.settings.app.models]
        if self.model_id not in [model_id for _, model_id in pairs]:
            pairs.insert(0, (self.model_id, self.model_id))
        return pairs
