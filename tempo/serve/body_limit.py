"""``api.max_body_bytes``: REST request bodies over the limit answer 413 before anything parses them.

An ASGI middleware, so it runs before FastAPI reads the body: a ``Content-Length`` over the limit is refused
at once; a body without one (chunked) is counted as it arrives and refused as soon as it passes the limit.
A body within the limit is handed on unchanged. Gradio's own routes (``/gradio_api/...``: its queue, its
uploads) are left to Gradio; a long prompt sent there is refused by ``generation.max_prompt_tokens``.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable

from tempo.serve.openai_map import error_body

log = logging.getLogger(__name__)

OPENAI_PREFIX = "/v1/"

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyLimit:
    """Refuse (413, naming the limit) a request body of more than ``max_bytes``, outside ``exempt`` paths."""

    def __init__(self, app: Callable, max_bytes: int, exempt: tuple[str, ...] = ("/gradio_api/",)):
        self.app, self.max_bytes, self.exempt = app, max_bytes, exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self.refuse(send, int(declared), path=scope["path"])
            return
        messages, size = [], 0
        while True:  # the body, counted as it arrives (a chunked body has no Content-Length)
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self.refuse(send, size, counted=True, path=scope["path"])
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, replay(messages, receive), send)

    async def refuse(self, send: Send, size: int, counted: bool = False, path: str = "") -> None:
        amount = f"more than {self.max_bytes} bytes arrived" if counted else f"it declares {size} bytes"
        detail = (f"body: the request body is too large ({amount}); at most {self.max_bytes} bytes "
                  f"(api.max_body_bytes) — send a shorter prompt")
        log.info("413: %s", detail)
        body = {"detail": detail, "field": "body", "limit": self.max_bytes}
        if path.startswith(OPENAI_PREFIX):  # the OpenAI-compatible routes answer in OpenAI's error shape
            body = error_body(detail, "body", 413)
        payload = json.dumps(body).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"connection", b"close"),
                                (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})


def replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that hands back the messages already read, then the connection's own (its disconnect)."""
    pending = list(messages)

    async def next_message() -> Message:
        return pending.pop(0) if pending else await receive()

    return next_message
