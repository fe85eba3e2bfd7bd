"""Write the golden files that pin the interfaces (issue 12: the house was rebuilt without changing them).

    python tests/golden/make_golden.py        # rewrite them (only when an interface changes on purpose)

``surfaces()`` is also what ``tests/test_golden.py`` compares with the stored files.
Made first on the code before the rebuild (commit aa3b8d3).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
BUNDLED = ROOT / "assets" / "models" / "tempo-tiny-code"

REQUESTS = {
    "tempo": dict(prompt="def read_config(path):", max_tokens=12, selection_threshold=0.05, min_steps=12),
    "tempo_schedule": dict(prompt="import os\n", max_tokens=10, selection_threshold=0.08,
                           selection_schedule="bezier", selection_final_threshold=0.5, min_steps=10),
    "pruning": dict(prompt="class Config:", max_tokens=12, selection_threshold=0.03, min_steps=12,
                    use_retroactive_pruning=True, attention_threshold=0.02, dynamic_threshold=True,
                    final_threshold=0.6),
    "default_sampled": dict(prompt="for i in range(", mode="default", temperature=0.9, top_k=40, seed=7,
                            max_tokens=10, min_steps=10),
    "default_greedy": dict(prompt="return", mode="default", temperature=0.0, max_tokens=10),
    "mcts": dict(prompt="if x", mode="mcts", max_tokens=4, mcts_simulations=6, mcts_depth=2, mcts_expand=3,
                 min_steps=4),
}


def _rounded(value):
    if isinstance(value, float):
        return round(value, 5)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def result_json(result) -> dict:
    """A result's JSON without what varies from run to run (timing) or machine to machine (model id path)."""
    data = result.to_dict()
    data.pop("timing")
    data["model"].pop("id")
    return _rounded(data)


def results() -> dict:
    from tempo import Tempo
    from tempo.settings import load_settings
    from tempo.models import load_model

    settings = load_settings()
    engine = Tempo(load_model(str(BUNDLED)), settings)
    out = {}
    for name, fields in REQUESTS.items():
        fields = dict(fields)
        out[name] = result_json(engine.run([engine.request(fields.pop("prompt"), **fields)])[0])
    return out


def cli_flags() -> dict:
    """Every command's options: option strings, destination, choices, constants and nargs."""
    from tempo.cli import build_parser

    def options(parser: argparse.ArgumentParser) -> dict:
        found, commands = [], {}
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                commands = {name: options(p) for name, p in action.choices.items()}
            elif not isinstance(action, argparse._HelpAction):
                found.append({"flags": sorted(action.option_strings), "dest": action.dest,
                              "choices": list(action.choices) if action.choices else None,
                              "const": action.const, "nargs": action.nargs, "required": action.required,
                              "type": getattr(action.type, "__name__", None)})
        found.sort(key=lambda o: (o["flags"], o["dest"]))
        return {"options": found, "commands": commands} if commands else {"options": found}

    return options(build_parser())


def rest_routes(app) -> dict:
    """The REST routes (method, path) and the /generate body's fields with their JSON types."""
    schema = app.openapi()
    routes = sorted(f"{method.upper()} {path}" for path, ops in schema["paths"].items() for method in ops)
    body_ref = schema["paths"]["/generate"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = schema["components"]["schemas"][body_ref.rsplit("/", 1)[-1]]
    fields = {}
    for name, prop in body["properties"].items():
        kinds = [prop.get("type")] if "type" in prop else [p.get("type") for p in prop.get("anyOf", [])]
        fields[name] = sorted(k for k in kinds if k)
    return {"routes": routes, "generate_body": dict(sorted(fields.items())), "required": sorted(body.get("required", []))}


def gradio_endpoints(client) -> dict:
    """The named gradio_client endpoints and their parameter names."""
    api = client.view_api(return_format="dict", print_info=False)
    return {name: [p["parameter_name"] for p in spec["parameters"]]
            for name, spec in sorted(api["named_endpoints"].items())}


def write(name: str, data) -> None:
    (HERE / f"{name}.json").write_text(json.dumps(data, indent=1, ensure_ascii=False, sort_keys=True) + "\n")


def main() -> None:
    from gradio_client import Client

    from tempo import Tempo
    from tempo.models import load_model
    from tempo.serve.rest import Server, create_app
    from tempo.settings import load_settings

    write("results", results())
    write("cli", cli_flags())
    settings = load_settings()
    app = create_app(Tempo(load_model(str(BUNDLED)), settings), settings)
    write("rest", rest_routes(app))
    server = Server(app).start()
    try:
        client = Client(server.url, verbose=False)
        write("gradio", gradio_endpoints(client))
        client.close()
    finally:
        server.close()


if __name__ == "__main__":
    main()
