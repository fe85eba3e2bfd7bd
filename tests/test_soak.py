"""One minute of mixed concurrent users against a real server (benchmarks/soak.py): no failure, and every finished
result equal, token ids of every set, to the same request run alone."""
import json
import subprocess
import sys

import pytest

from helpers import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.server, pytest.mark.subprocess]


def test_a_minute_of_mixed_users_has_no_failure_and_no_mismatch(tmp_path):
    out = tmp_path / "soak.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--minutes", "1", "--tokens", "8",
                          "--grace", "60", "--json", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=400)
    assert out.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["failures"] == 0, figures["failure_list"]
    assert figures["mismatches"] == 0, figures["mismatch_list"]
    assert run.returncode == 0, run.stdout[-3000:]
    assert figures["requests_done"] >= 10 and figures["cancelled"] + figures["disconnected"] >= 1, figures
    assert figures["server"]["requests_failed"] == 0 and figures["server"]["queue_depth"] == 0, figures["server"]
