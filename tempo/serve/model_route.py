"""REST ``POST /model {"model_id": ...}``: switch the model at run time (tempo/serve/switch.py).

    curl -X POST http://127.0.0.1:7860/model -H 'Authorization: Bearer $TOKEN' \\
         -H 'content-type: application/json' -d '{"model_id": "HuggingFaceTB/SmolLM2-360M-Instruct"}'

200: ``{"model", "previous", "device", "dtype", "parameters", "load_s", "cancelled", "memory"}``. 403 when
``app.allow_model_switch`` is off; 401 (``WWW-Authenticate: Bearer``) without the right ``api.admin_token``
when one is set; 422 naming the model when it cannot be read or loaded, or does not fit (with the figures in
``memory``) -- the previous model serves on; 409 while another switch runs.
"""
from __future__ import annotations

from typing import Callable

from fastapi import FastAPI, Header
from fastapi.params import Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from tempo.serve.switch import ModelSwitcher, SwitchError


class SwitchBody(BaseModel):
    """The body of POST /model."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    model_id: str
    """A hub id or a local path."""


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; None for any other header or none."""
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def add_model_route(app: FastAPI, switcher: ModelSwitcher, limiter: Callable) -> None:
    """``POST /model`` on ``app``, behind the rate limit."""

    @app.post("/model", dependencies=[Depends(limiter)])
    def switch_model(body: SwitchBody, authorization: str | None = Header(default=None)) -> JSONResponse:
        """Load another model (a hub id or a local path) and serve it from the next batch on: running requests
        finish first. Needs ``app.allow_model_switch`` and, when set, ``Authorization: Bearer <api.admin_token>``."""
        try:
            switcher.authorize(bearer(authorization))
            return JSONResponse(switcher.switch(body.model_id))
        except SwitchError as exc:
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            return JSONResponse(exc.body(), status_code=exc.status, headers=headers)
