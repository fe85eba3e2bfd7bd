"""TEMPO's web app (a Hugging Face Space entry point): load settings, build the app, serve it.

The model comes from ``model.model_id`` (or ``TEMPO_MODEL__MODEL_ID``), or ``model.fallback_model_id`` when that
cannot be loaded (the page and ``/health`` then say so); host and
port from the ``api`` section (or ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT``).
Once the server listens, the address to open is logged at INFO. ``python -m tempo serve``
serves the same app with its flags (``tempo/serve/launch.py``).
"""
import sys

from tempo.settings.loader import load_settings
from tempo.errors import TempoError
from tempo.settings.logs import configure_logging
from tempo.serve.launch import LISTEN_ALL, AnnouncedServer, address_to_open  # noqa: F401 -- this entry point's names


def main() -> None:
    try:
        settings = load_settings()
        configure_logging(settings)
        from tempo.serve.launch import serve

        serve(settings)
    except TempoError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
