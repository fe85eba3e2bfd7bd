"""``python -m tempo serve [--model M] [--host H] [--port P] [--cpu]``: the web app, REST and the OpenAI-compatible
API on one port, as ``app.py`` serves them (``tempo/serve/launch.py``), with these flags over the settings."""
from __future__ import annotations

import argparse


def port_number(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be in [0, 65535], got {value}")
    return value


def add_serve_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve the app, REST and the OpenAI-compatible API",
                       description="Load the model and serve the Gradio app, the REST routes (/health, /generate) "
                                   "and the OpenAI-compatible API (/v1/completions, /v1/chat/completions, "
                                   "/v1/models) on one port, until interrupted. The flags win over the settings "
                                   "and over GRADIO_SERVER_NAME / GRADIO_SERVER_PORT.")
    p.add_argument("--model", help="hub id or local path (default: model.model_id of the settings)")
    p.add_argument("--host", help="address to listen on (default: api.host; 0.0.0.0 = every interface)")
    p.add_argument("--port", type=port_number, help="port (default: api.port; 0 = any free port)")
    p.add_argument("--cpu", action="store_true", help="run the model on the CPU (as model.device = \"cpu\")")
    p.set_defaults(handler=run_serve)


def serve_settings(args: argparse.Namespace, settings):
    """The settings with the flags given: model.model_id, api.host, api.port, model.device."""
    changes = {"model.model_id": args.model, "api.host": args.host, "api.port": args.port,
               "model.device": "cpu" if args.cpu else None}
    return settings.replace({key: value for key, value in changes.items() if value is not None})


def run_serve(args: argparse.Namespace, settings) -> int:
    from tempo.serve.launch import serve

    serve(serve_settings(args, settings), host=args.host, port=args.port)
    return 0
