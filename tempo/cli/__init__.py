"""The command line, one module per command; ``main`` parses and dispatches."""
from tempo.cli.main import build_parser, main  # noqa: F401
