"""The first minute: ``python app.py`` says where to open the app, and the address answers."""
import importlib.util
import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tempo.serve.rest import free_port

ROOT = Path(__file__).resolve().parents[1]
URL_LINE = re.compile(r"TEMPO is running at (http://\S+/) \(model (.+)\)")
START_TIMEOUT_S = 120.0


def test_the_address_to_open_is_loopback_for_every_interface():
    spec = importlib.util.spec_from_file_location("tempo_entry_point", ROOT / "app.py")
    entry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(entry)
    address_to_open = entry.address_to_open
    assert address_to_open("0.0.0.0", 7860) == "http://127.0.0.1:7860/"
    assert address_to_open("127.0.0.1", 8000) == "http://127.0.0.1:8000/"
    assert address_to_open("::1", 8000) == "http://[::1]:8000/"


def lines_of(process: subprocess.Popen) -> "queue.Queue[str | None]":
    """The process's output, a line at a time (None at its end), read by a thread so the test can wait on
    each line with a deadline."""
    lines: "queue.Queue[str | None]" = queue.Queue()

    def pump():
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def wait_for_url(lines: "queue.Queue[str | None]", timeout: float) -> tuple[str, str, list[str]]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            pytest.fail(f"no URL line within {timeout:g} s; the output was:\n" + "".join(seen))
        if line is None:
            pytest.fail("app.py ended before it logged the URL; the output was:\n" + "".join(seen))
        seen.append(line)
        found = URL_LINE.search(line)
        if found:
            return found.group(1), found.group(2), seen


@pytest.mark.subprocess
@pytest.mark.server
@pytest.mark.slow
def test_app_py_logs_the_url_and_it_answers():
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPO_", "GRADIO_", "SPACE_"))}
    env.update(GRADIO_SERVER_PORT=str(port), PYTHONUNBUFFERED="1")
    process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url, model, seen = wait_for_url(lines_of(process), START_TIMEOUT_S)
        assert url == f"http://127.0.0.1:{port}/", seen
        assert "tempo-tiny-code" in model
        assert any("INFO" in line and url in line for line in seen)  # a log line, at INFO
        health = httpx.get(url + "health", timeout=30)
        assert health.status_code == 200 and health.json()["model_loaded"] is True
    finally:
        process.terminate()
        process.wait(timeout=30)
