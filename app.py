"""TEMPO's web app (a Hugging Face Space entry point): load settings, build the app, launch."""
import sys

from tempo.config import configure_logging, load_settings
from tempo.errors import TempoError


def main() -> None:
    try:
        settings = load_settings()
        configure_logging(settings)
        from tempo.generation import Tempo
        from tempo.ui import create_demo

        engine = Tempo.from_settings(settings)
    except TempoError as exc:
        sys.exit(f"error: {exc}")
    create_demo(engine).launch()


if __name__ == "__main__":
    main()
