"""The prefill of a 16k-token prompt takes no more memory than Hugging Face's own forward (within 1.2x): no [P, P]
mask, for one row (the library's causal path) and for left-padded rows (chunks of queries). Each measure runs in
a fresh child process: the growth of its peak resident memory (``ru_maxrss``) over the forward. The figures are
in docs/limits.md."""
import json
import subprocess
import sys

import pytest

from helpers import ROOT

pytestmark = pytest.mark.slow  # four child processes, each a 16k-token forward on the CPU

LONG = 16384
CHILD = r"""
import json, resource, sys
import torch
from transformers import AutoModelForCausalLM
from tempo.engine import prefill
from tempo.engine.adapter import ModelAdapter

path, how, lengths = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
model = AutoModelForCausalLM.from_pretrained(path).eval()
generator = torch.Generator().manual_seed(0)
prompts = [torch.randint(4, 256, (n,), generator=generator).tolist() for n in lengths]
adapter = ModelAdapter(model) if how == "tempo" else None

def run(prompts):
    with torch.inference_mode():
        if adapter is not None:
            return prefill.prefill(adapter, prompts, 0)[0]
        return model(input_ids=torch.tensor(prompts), use_cache=True, logits_to_keep=1).logits

run([p[:64] for p in prompts])  # warm-up: kernels, thread pools
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
logits = run(prompts)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
assert logits.shape[0] == len(prompts)
print(json.dumps({"peak_mib": (after - before) / 1024}))
"""


@pytest.fixture(scope="module")
def long_model(tmp_path_factory):
    """A tiny random Llama made for 16k positions (head size 64, as in real models)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    path = tmp_path_factory.mktemp("long-llama")
    config = LlamaConfig(vocab_size=256, hidden_size=128, intermediate_size=512, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=LONG,
                         bos_token_id=1, eos_token_id=2, pad_token_id=0)
    LlamaForCausalLM(config).save_pretrained(path)
    return path


def peak(path, how: str, lengths: list[int]) -> float:
    """MiB the peak resident memory of a fresh process grows by over one prefill."""
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), how, json.dumps(lengths)], capture_output=True,
                          text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_mib"]


def test_a_16k_prefill_peaks_within_1_2x_of_hugging_face(long_model):
    hf, tempo = peak(long_model, "hf", [LONG]), peak(long_model, "tempo", [LONG])
    print(f"16k tokens, one row: Hugging Face {hf:.0f} MiB, TEMPO {tempo:.0f} MiB")
    assert tempo <= 1.2 * hf, (tempo, hf)


def test_left_padded_long_rows_peak_within_1_2x_of_hugging_face_unpadded(long_model):
    """Two rows, 16k and 12k tokens, left-padded to 16k: chunked, against Hugging Face's forward over two
    unpadded 16k rows (its best case: no mask at all; with a 2D padding mask it builds [2, 1, 16k, 16k])."""
    hf, tempo = peak(long_model, "hf", [LONG, LONG]), peak(long_model, "tempo", [LONG, 12288])
    print(f"16k + 12k tokens, left-padded: Hugging Face (two unpadded 16k rows) {hf:.0f} MiB, TEMPO {tempo:.0f} MiB")
    assert tempo <= 1.2 * hf, (tempo, hf)
