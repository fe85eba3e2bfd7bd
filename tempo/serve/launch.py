"""Serving the app in this process: the settings' model, the app (REST, the OpenAI routes, the Gradio app) and
uvicorn, which logs the address to open once it listens. ``app.py`` (the Space entry point) and
``python -m tempo serve`` both start here.
"""
from __future__ import annotations

import logging

import uvicorn

from tempo.settings.schema import Settings

log = logging.getLogger("tempo.app")  # under "tempo": the console handler of the settings shows it

LISTEN_ALL = ("0.0.0.0", "::", "")


def address_to_open(host: str, port: int) -> str:
    """The URL a browser on this machine opens: a server listening on every interface answers on loopback."""
    shown = "127.0.0.1" if host in LISTEN_ALL else (f"[{host}]" if ":" in host else host)
    return f"http://{shown}:{port}/"


class AnnouncedServer(uvicorn.Server):
    """uvicorn's server that logs the address to open (and the model) once it listens."""

    def __init__(self, config: uvicorn.Config, model: str):
        super().__init__(config)
        self.model = model

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets=sockets)
        if self.should_exit:  # the port was taken: uvicorn has said why
            return
        port = self.servers[0].sockets[0].getsockname()[1] if self.servers else self.config.port
        log.info("TEMPO is running at %s (model %s)", address_to_open(self.config.host, port), self.model)


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Load the model of ``settings``, build the app and serve it until interrupted. ``host`` / ``port`` given
    win; else ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT``, a Space's 0.0.0.0:7860, the ``api`` settings
    (``tempo.serve.rest.bind_address``). The model is ``model.model_id``, or ``model.fallback_model_id`` when that
    cannot load (tempo/models/fallback.py). Raises ``TempoError`` when neither loads."""
    from tempo.engine.runner import Tempo
    from tempo.models.fallback import load_with_fallback
    from tempo.serve.rest import bind_address, create_app

    loaded, fallback = load_with_fallback(settings)  # model.fallback_model_id when model_id cannot load
    engine = Tempo(loaded, settings)
    bound_host, bound_port = bind_address(settings.api)
    host, port = host or bound_host, bound_port if port is None else port
    config = uvicorn.Config(create_app(engine, settings, fallback=fallback), host=host, port=port,
                            log_level="warning")
    AnnouncedServer(config, model=engine.loaded.info()["id"]).run()
