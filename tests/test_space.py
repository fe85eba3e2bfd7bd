"""Hugging Face Space readiness: README front matter, requirements, ZeroGPU, deploy without token or network."""
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def front_matter() -> dict:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert match, "README.md must start with a --- front matter block"
    return yaml.safe_load(match.group(1))


def pins() -> dict[str, str]:
    out = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            out[name.lower().replace("_", "-")] = version
    return out


def test_readme_front_matter_configures_a_gradio_space_matching_requirements():
    meta = front_matter()
    requirements = pins()
    assert meta["sdk"] == "gradio"
    assert str(meta["sdk_version"]) == requirements["gradio"]
    assert requirements.get("gradio-client")  # the client of the README example
    assert (ROOT / meta["app_file"]).is_file()
    assert re.fullmatch(r"3\.\d+", str(meta["python_version"]))
    assert f"{sys.version_info.major}.{sys.version_info.minor}" == str(meta["python_version"])
    assert 0 < len(meta["short_description"]) <= 60
    assert isinstance(meta["models"], list) and all("/" in m for m in meta["models"])
    for package in ("torch", "transformers", "huggingface-hub", "pandas", "matplotlib", "dynaconf"):
        assert package in requirements, package


def test_only_what_the_space_needs_is_uploaded():
    from tempo.cli.deploy import space_files

    files = space_files()
    assert {"app.py", "requirements.txt", "README.md", "settings.toml", "tempo/ui/app.py", "tempo/serve/rest.py"} <= set(files)
    assert not [f for f in files if f.startswith(("tests/", ".venv/", "benchmarks/", ".git/", "tempo/train/"))]
    assert not [f for f in files if f.endswith((".pyc", ".secrets.toml"))]


def run_deploy(monkeypatch, capsys, token: str | None, *args: str) -> tuple[int, str]:
    """``python -m tempo deploy ...`` in this process: exit code and everything printed."""
    from tempo.cli.main import main

    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TEMPO_HUB__TOKEN", token or "")  # wins over a developer's .secrets.toml
    code = main(["deploy", *args])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_deploy_without_a_token_fails_with_a_clear_message(monkeypatch, capsys):
    code, printed = run_deploy(monkeypatch, capsys, None, "--space-id", "someone/tempo")
    assert code == 2 and "no Hugging Face token" in printed


def test_deploy_without_network_fails_with_a_clear_message_and_never_prints_the_token(monkeypatch, capsys):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    token = "hf_secret_test_token_0123456789"
    code, printed = run_deploy(monkeypatch, capsys, token, "--space-id", "someone/tempo")
    assert code == 2 and "deploy to Space 'someone/tempo' failed" in printed, printed
    assert token not in printed


def test_deploy_rejects_a_bad_space_id(monkeypatch, capsys):
    code, printed = run_deploy(monkeypatch, capsys, None, "--space-id", "no-owner")
    assert code == 2 and "OWNER/NAME" in printed


def test_zerogpu_decorator_only_when_the_package_is_present(tmp_path, monkeypatch, engines):
    from tempo.serve import zerogpu
    from tempo.serve.scheduler import Scheduler

    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert zerogpu.gpu_decorator() is None
    plain = zerogpu.make_scheduler(engines["llama"])
    assert type(plain) is Scheduler
    plain.close()

    package = tmp_path / "spaces"
    package.mkdir()
    (package / "__init__.py").write_text(
        "calls = []\n"
        "def GPU(fn):\n"
        "    def wrapped(*args, **kwargs):\n"
        "        calls.append(fn.__name__)\n"
        "        return fn(*args, **kwargs)\n"
        "    return wrapped\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.delitem(sys.modules, "spaces", raising=False)
    direct = zerogpu.make_scheduler(engines["llama"])
    assert isinstance(direct, zerogpu.DirectScheduler)
    engine = engines["llama"]
    request = engine.request("the cat sat on the", selection_threshold=0.05, max_tokens=5)
    job = direct.submit(request)
    updates = list(job.stream())
    assert updates[-1].state == "done" and job.result.text == engine.run([request])[0].text
    assert sys.modules["spaces"].calls == ["run"]


def test_the_server_binds_where_a_space_expects_it(monkeypatch):
    from tempo.serve.rest import ApiConfig, bind_address

    for name in ("SPACE_ID", "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT"):
        monkeypatch.delenv(name, raising=False)
    config = ApiConfig(host="127.0.0.1", port=8000)
    assert bind_address(config) == ("127.0.0.1", 8000)
    monkeypatch.setenv("SPACE_ID", "someone/tempo")
    assert bind_address(config) == ("0.0.0.0", 7860)
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7861")
    assert bind_address(config) == ("0.0.0.0", 7861)
