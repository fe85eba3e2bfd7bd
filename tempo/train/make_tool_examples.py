"""Make the example files of the tools and rlhf stages from the standard library's function signatures.

    python -m tempo.train.make_tool_examples [--out-dir assets/train] [--limit 200] [--pairs 64]

Each public function defined in one of MODULES (not imported into it) with a docstring and a signature that
``inspect.signature`` can read becomes one tool: the prompt shows the tool (its signature) and the task (the
docstring's first line), the completion calls it between ``<tool_call>`` and ``</tool_call>`` as JSON
``{"name", "arguments"}``, the arguments being the required parameters with a sample value by parameter name
(``VALUES``; otherwise the name in angle brackets). The preference pairs take the same prompts: ``chosen`` is the right call, ``rejected`` either
calls the next tool of the list (even lines) or answers in prose without a call (odd lines).

The output depends on the interpreter's standard library; the shipped files say which Python made them in
docs/training.md.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import json
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MODULES = ("math", "statistics", "textwrap", "os.path", "shutil", "json", "base64", "zlib", "heapq", "bisect",
           "fnmatch", "glob", "html", "shlex", "string", "difflib", "calendar")
VALUES: dict[str, Any] = {
    "x": 2.5, "y": 1.5, "a": 12, "b": 18, "n": 5, "k": 2, "i": 3, "p": "data", "path": "data/report.txt",
    "paths": ["data/a.txt", "data/b.txt"], "text": "The quick brown fox", "s": "hello world", "string": "hello world",
    "width": 40, "data": [1, 2, 3, 4], "iterable": [3, 1, 2], "src": "a.txt", "dst": "b.txt", "obj": {"key": "value"},
    "fp": "out.json", "pattern": "*.py", "name": "report.txt", "names": ["a.py", "b.txt"], "pathname": "src/*.py",
    "heap": [1, 3, 5], "item": 4, "seq": [1, 2, 3], "year": 2024, "month": 5, "day": 17, "r": 0.2, "g": 0.4,
    "h": 0.5, "l": 0.6, "v": 0.8, "word": "apple", "possibilities": ["ape", "apply", "peach"], "filename": "notes.txt",
    "integers": [12, 18], "pat": "*.txt", "patterns": ["*.pyc", "__pycache__"], "iterables": [[1, 4], [2, 3]],
    "cmd": "ls", "line": "print('hi')", "prefix": "    ", "base_name": "backup", "format": "zip", "q": 4,
    "input": "in.bin", "output": "out.txt", "tuple": [2024, 1, 1, 0, 0, 0], "delta": 3, "cols": 3,
}


def tools(modules: tuple[str, ...] = MODULES) -> list[tuple[str, inspect.Signature, str]]:
    """(qualified name, signature, first docstring line) of the public documented functions, sorted by name."""
    found = []
    for module_name in modules:
        module = importlib.import_module(module_name)
        for name, obj in sorted(vars(module).items()):
            if name.startswith("_") or not (inspect.isfunction(obj) or inspect.isbuiltin(obj)):
                continue
            if (getattr(obj, "__module__", None) or "").lstrip("_") != module.__name__.lstrip("_"):
                continue  # imported from elsewhere (statistics.fsum is math.fsum)
            doc = (inspect.getdoc(obj) or "").strip().splitlines()
            try:
                signature = inspect.signature(obj)
            except (TypeError, ValueError):
                continue
            if doc and doc[0].strip():
                found.append((f"{module_name}.{name}", signature, doc[0].strip()))
    return found


def arguments(signature: inspect.Signature) -> dict[str, Any]:
    """The required parameters with a sample value (a ``*args`` parameter gets two)."""
    out: dict[str, Any] = {}
    for name, param in signature.parameters.items():
        value = VALUES.get(name, f"<{name}>")
        if param.kind is param.VAR_POSITIONAL:
            out[name] = [value, value] if not isinstance(value, list) else value
        elif param.default is param.empty and param.kind is not param.VAR_KEYWORD:
            out[name] = value
    return out


class _Named:
    """A default shown by its name (``copy_function=copy2``), not by a repr with a memory address."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


def render(signature: inspect.Signature) -> str:
    """The signature as text, the same on every run: defaults that are functions or classes by name."""
    params = [p.replace(default=_Named(p.default.__name__))
              if p.default is not p.empty and callable(p.default) and hasattr(p.default, "__name__") else p
              for p in signature.parameters.values()]
    return str(signature.replace(parameters=params))


def prompt(name: str, signature: inspect.Signature, summary: str) -> str:
    return f"### Tool: {name}{render(signature)}\n### Task: {summary}\n"


def call(name: str, signature: inspect.Signature) -> str:
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments(signature)}) + "</tool_call>"


def examples(limit: int) -> list[dict[str, str]]:
    """{"prompt", "completion"} records, spread evenly over the tools found."""
    return [{"prompt": prompt(*tool), "completion": call(tool[0], tool[1])} for tool in spread(tools(), limit)]


def spread(items: list, count: int) -> list:
    """``count`` items evenly spaced over ``items`` in order (all of them when count is 0 or larger)."""
    if not count or count >= len(items):
        return list(items)
    return [items[i * len(items) // count] for i in range(count)]


def preference_pairs(records: list[dict[str, str]], count: int) -> list[dict[str, str]]:
    """{"prompt", "chosen", "rejected"}: the right call against a call of the next tool or a prose answer."""
    pairs, chosen = [], spread(records, count)
    for i, record in enumerate(chosen):
        other = chosen[(i + 1) % len(chosen)]["completion"]
        task = record["prompt"].split("### Task: ", 1)[1].strip()
        rejected = other if i % 2 == 0 else f"I would do this by hand: {task[0].lower()}{task[1:]}"
        pairs.append({"prompt": record["prompt"], "chosen": record["completion"], "rejected": rejected})
    return pairs


def write_jsonl(path: Path, records: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=Path("assets/train"))
    parser.add_argument("--limit", type=int, default=200, help="tool examples (0 = every tool found)")
    parser.add_argument("--pairs", type=int, default=64, help="preference pairs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    records = examples(args.limit)
    write_jsonl(args.out_dir / "tool_calls.jsonl", records)
    write_jsonl(args.out_dir / "preferences.jsonl", preference_pairs(records, args.pairs))
    log.info("wrote %d tool examples and %d preference pairs to %s (Python %s)", len(records),
             min(args.pairs, len(records)), args.out_dir, sys.version.split()[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
