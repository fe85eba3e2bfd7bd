"""TEMPO's web app (a Hugging Face Space entry point): load settings, build the app, serve it.

The model comes from ``model.model_id`` (or ``TEMPO_MODEL__MODEL_ID``); host and
port from the ``api`` section (or ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT``).
"""
import sys

from tempo.settings.loader import load_settings
from tempo.errors import TempoError
from tempo.settings.logs import configure_logging


def main() -> None:
    try:
        settings = load_settings()
        configure_logging(settings)
        from tempo.serve.rest import bind_address, create_app
        from tempo.engine.runner import Tempo

        engine = Tempo.from_settings(settings)
    except TempoError as exc:
        sys.exit(f"error: {exc}")
    import uvicorn

    host, port = bind_address(settings.api)
    uvicorn.run(create_app(engine, settings), host=host, port=port, log_level="warning")


if __name__ == "__main__":
    main()
