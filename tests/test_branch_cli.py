"""``python -m tempo branch --from RESULT.json --step S --token-id ID [generate flags] [--json]`` in a child
process: the same branch as ``Tempo.branch``; bad values name their flag."""
import pytest

from helpers import run_cli, tokens
from tempo.result import GenerationResult

pytestmark = pytest.mark.subprocess

PROMPT = "the cat sat on the"


@pytest.fixture(scope="module")
def parent_file(tiny_model_dir, tmp_path_factory):
    out = run_cli("generate", "--model", str(tiny_model_dir["llama"]), "--prompt", PROMPT, "--threshold", "0.05",
                  "--max-tokens", "8", "--min-steps", "8", "--temperature", "1.0", "--seed", "3", "--json")
    assert out.returncode == 0, out.stderr
    path = tmp_path_factory.mktemp("branch") / "parent.json"
    path.write_text(out.stdout, encoding="utf-8")
    return path


def test_branch_json_equals_the_python_branch(parent_file, engines):
    out = run_cli("branch", "--from", str(parent_file), "--step", "3", "--token-id", "9", "--max-tokens", "10",
                  "--json")
    assert out.returncode == 0, out.stderr
    child = GenerationResult.from_json(out.stdout)
    parent = GenerationResult.from_json(parent_file.read_text())
    expected = engines["llama"].branch(parent, 3, 9, max_tokens=10)
    assert tokens(child) == tokens(expected) and tokens(child)[:3] == tokens(parent)[:3] and tokens(child)[3] == [9]
    assert child.parent == {"prompt": PROMPT, "step": 3, "token_id": 9} and child.settings["max_tokens"] == 10


def test_branch_prints_the_text_without_json(parent_file):
    out = run_cli("branch", "--from", str(parent_file), "--step", "0", "--token-id", "9")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(PROMPT) and not out.stdout.lstrip().startswith("{")


@pytest.mark.parametrize("args, message", [
    (["--step", "99", "--token-id", "9"], "error: --step: must be in [0, 8]"),
    (["--step", "1", "--token-id", "100000"], "error: --token-id: must be a token id in [0, "),
    (["--step", "1", "--token-id", "9", "--temperature", "-1"], "error: temperature: must be in"),
])
def test_bad_values_name_their_flag(parent_file, args, message):
    out = run_cli("branch", "--from", str(parent_file), *args)
    assert out.returncode == 2 and message in out.stderr, out.stderr


def test_a_file_that_is_no_result(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"prompt": "p"}', encoding="utf-8")
    out = run_cli("branch", "--from", str(path), "--step", "0", "--token-id", "1")
    assert out.returncode == 2 and "error: --from: must be a result" in out.stderr, out.stderr
