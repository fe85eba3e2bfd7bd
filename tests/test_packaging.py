"""The installable project: pyproject.toml's dependencies are requirements.txt's (a Hugging Face Space installs
from requirements.txt, ``pip install -e .`` from pyproject.toml), its ``test`` extra is what
tests/requirements.txt adds, and the ``tempo`` console script is the CLI's ``main``."""
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def requirement_lines(path: Path) -> list[str]:
    lines = [line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line]


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_requirements_txt_equals_the_projects_dependencies():
    assert requirement_lines(ROOT / "requirements.txt") == project()["dependencies"]


def test_test_requirements_are_the_test_extra():
    lines = requirement_lines(ROOT / "tests" / "requirements.txt")
    assert lines[0] == "-r ../requirements.txt"
    assert lines[1:] == project()["optional-dependencies"]["test"]


def test_console_script_is_the_cli_main():
    import importlib

    from tempo.cli.main import main

    assert project()["requires-python"] == ">=3.11"
    assert project()["scripts"] == {"tempo": "tempo.cli:main"}
    module, name = project()["scripts"]["tempo"].split(":")
    assert getattr(importlib.import_module(module), name) is main
