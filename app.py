"""TEMPO's web app (a Hugging Face Space entry point): load settings, build the app, serve it.

The model comes from ``model.model_id`` (or ``TEMPO_MODEL__MODEL_ID``), or ``model.fallback_model_id`` when that
cannot be loaded (the page and ``/health`` then say so); host and
port from the ``api`` section (or ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT``).
Once the server listens, the address to open is logged at INFO.
"""
import logging
import sys

import uvicorn

from tempo.settings.loader import load_settings
from tempo.errors import TempoError
from tempo.settings.logs import configure_logging

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


def main() -> None:
    try:
        settings = load_settings()
        configure_logging(settings)
        from tempo.serve.rest import bind_address, create_app
        from tempo.engine.runner import Tempo
        from tempo.models.fallback import load_with_fallback

        loaded, fallback = load_with_fallback(settings)  # model.fallback_model_id when model_id cannot load
        engine = Tempo(loaded, settings)
    except TempoError as exc:
        sys.exit(f"error: {exc}")
    host, port = bind_address(settings.api)
    config = uvicorn.Config(create_app(engine, settings, fallback=fallback), host=host, port=port,
                            log_level="warning")
    AnnouncedServer(config, model=engine.loaded.info()["id"]).run()


if __name__ == "__main__":
    main()
