"""Tensor parallelism (``model.tp_plan = "auto"``) as docs/scale.md launches it: two CPU processes under
``torchrun`` (gloo), each holding half of every layer's heads, run the CLI's ``generate``; rank 0's JSON must
equal the same request in one process. A GPU machine runs the same line with ``--nproc-per-node`` GPUs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT, save_tiny, tokens
from tempo.engine.runner import Tempo
from tempo.models.loading import load_model

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

PROMPT = "def read ( path ) :"


def torchrun(model: Path, *flags: str) -> subprocess.CompletedProcess:
    """The documented launch line: ``torchrun --nproc-per-node 2 --local-ranks-filter 0 -m tempo generate``."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TEMPO_LOGGING__ENABLE_FILE_LOGGING": "false",
           "TEMPO_MODEL__TP_PLAN": "auto", "TEMPO_MODEL__DEVICE": "cpu", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--local-ranks-filter", "0",
               "-m", "tempo", "generate", "--prompt", PROMPT, "--model", str(model), "--json", *flags]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("tp"), "llama")


def test_two_processes_give_the_sets_of_one(model_dir):
    done = torchrun(model_dir, "--selection-threshold", "0.05", "--max-tokens", "6")
    assert done.returncode == 0, done.stderr[-2000:]
    sharded = json.loads(done.stdout)
    alone = Tempo(load_model(str(model_dir), device="cpu")).generate(PROMPT, selection_threshold=0.05, max_tokens=6)
    assert [[c["token_id"] for c in step["candidates"]] for step in sharded["steps"]] == tokens(alone)
    for step, reference in zip(sharded["steps"], alone.steps):
        for candidate, expected in zip(step["candidates"], reference.candidates):
            assert abs(candidate["probability"] - expected.probability) < 1e-4


def test_retroactive_pruning_is_refused_under_tensor_parallelism(model_dir):
    done = torchrun(model_dir, "--use-retroactive-pruning", "--max-tokens", "4")
    assert done.returncode != 0
    assert "use_retroactive_pruning" in done.stderr and "tensor parallelism" in done.stderr
