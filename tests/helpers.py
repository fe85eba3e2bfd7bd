"""What the tests share: tiny random models and their tokenizer, result comparisons, the CLI in a child process,
MCTS spies. Importable by name: tests/ is on pytest's ``pythonpath`` (pyproject.toml).

The models: hidden size 64, 2-3 layers, a word-level tokenizer, built by the tests themselves. The output head
is scaled ("sharpened") so that next-token distributions are peaked but not one-hot: several tokens pass a
0.05-0.1 threshold at many steps. ``config(kind, vocab)`` covers Llama and Qwen2 (conftest's ``engines``) and
many more architectures as transformers 5.23 provides them (CPU, no kernels); ``EXPECTED`` holds, per
architecture, the layer types ``info`` must list and whether TEMPO runs it.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from pathlib import Path

import torch
from torch.testing import assert_close

ROOT = Path(__file__).resolve().parent.parent
"""The repository root."""

# --- tiny models ----------------------------------------------------------------------------------------------

WORDS = (
    "the a cat dog sat on mat rug and ran to house garden big small red blue tree "
    "bird sky sun moon day night was is in of with under over quick lazy fox jumps"
).split()
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]

CHAT_TEMPLATE = (
    "{% for m in messages %}<s> {{ m['role'] }} : {{ m['content'] }} </s> {% endfor %}"
    "{% if add_generation_prompt %}<s> assistant : {% endif %}"
)

CHROMIUM = Path("/usr/bin/chromium")
"""The distribution's Chromium that the browser tests drive (tests/run.sh installs it)."""


def build_tokenizer(chat_template: bool = True):
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + WORDS + [":", "system", "user", "assistant", "Enable", "deep", "thinking", "subroutine."])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>", unk_token="<unk>")
    if chat_template:
        fast.chat_template = CHAT_TEMPLATE
    return fast


COMMON = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=256, bos_token_id=1, eos_token_id=2,
              pad_token_id=0, tie_word_embeddings=False)
MLA = dict(num_key_value_heads=4, kv_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=16, v_head_dim=12,
           n_routed_experts=4, num_experts_per_tok=2, moe_intermediate_size=32, first_k_dense_replace=1,
           n_shared_experts=1)
MAMBA2 = dict(num_hidden_layers=3, attn_layer_indices=[1], mamba_n_heads=4, mamba_d_head=32, mamba_d_state=8,
              mamba_n_groups=1, mamba_chunk_size=16)
WINDOW = 6  # small enough that the test prompts and generations run past it


def config(kind: str, vocab_size: int):
    import transformers as T

    c = COMMON | {"vocab_size": vocab_size}
    builders = {
        "llama": lambda: T.LlamaConfig(**c),
        "qwen2": lambda: T.Qwen2Config(**c),
        "mistral": lambda: T.MistralConfig(**c, sliding_window=WINDOW),
        "qwen2_sliding": lambda: T.Qwen2Config(**c | {"num_hidden_layers": 3}, use_sliding_window=True,
                                               sliding_window=WINDOW, max_window_layers=1),
        "mixtral": lambda: T.MixtralConfig(**c, num_local_experts=4, num_experts_per_tok=2),
        "qwen2_moe": lambda: T.Qwen2MoeConfig(**c | {"num_hidden_layers": 3}, num_experts=4, num_experts_per_tok=2,
                                              moe_intermediate_size=32, shared_expert_intermediate_size=64,
                                              mlp_only_layers=[0]),
        "deepseek_v2": lambda: T.DeepseekV2Config(**c | MLA, q_lora_rank=None),
        "deepseek_v3": lambda: T.DeepseekV3Config(**c | MLA, q_lora_rank=24, n_group=1, topk_group=1),
        "bamba": lambda: T.BambaConfig(**c | MAMBA2),
        "jamba": lambda: T.JambaConfig(**c, attn_layer_period=2, attn_layer_offset=1, expert_layer_period=2,
                                       expert_layer_offset=1, num_experts=2, mamba_d_state=8, mamba_dt_rank=8),
    }
    return builders[kind]()


EXPECTED = {
    # kind: (supported, [(layer type, layer indices)])
    "llama": (True, [("full_attention/grouped-query/dense", [0, 1])]),
    "qwen2": (True, [("full_attention/grouped-query/dense", [0, 1])]),
    "mistral": (True, [("sliding_attention/grouped-query/dense", [0, 1])]),
    "qwen2_sliding": (True, [("full_attention/grouped-query/dense", [0]),
                             ("sliding_attention/grouped-query/dense", [1, 2])]),
    "mixtral": (True, [("full_attention/grouped-query/moe", [0, 1])]),
    "qwen2_moe": (True, [("full_attention/grouped-query/dense", [0]), ("full_attention/grouped-query/moe", [1, 2])]),
    "deepseek_v2": (True, [("mla/dense", [0]), ("mla/moe", [1])]),
    "deepseek_v3": (True, [("mla/dense", [0]), ("mla/moe", [1])]),
    "bamba": (False, [("mamba2/dense", [0, 2]), ("full_attention/grouped-query/dense", [1])]),
    "jamba": (False, [("mamba/dense", [0]), ("full_attention/grouped-query/moe", [1])]),
}
KINDS = list(EXPECTED)
SUPPORTED = [k for k, (ok, _) in EXPECTED.items() if ok]
REFUSED = [k for k, (ok, _) in EXPECTED.items() if not ok]


def build_model(kind: str, vocab_size: int, seed: int = 0, sharpen: float = 8.0):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config(kind, vocab_size))
    with torch.no_grad():
        model.lm_head.weight.mul_(sharpen)
    return model.eval()


def save_tiny(path: Path, kind: str, seed: int = 0, positions: int | None = None) -> Path:
    """A tiny model of ``kind`` and the word-level tokenizer, saved with save_pretrained in ``path``;
    ``positions`` gives it a longer context than ``COMMON``'s 256 (same weights: RoPE does not depend on it)."""
    tokenizer = build_tokenizer()
    model = build_model(kind, len(tokenizer), seed=seed)
    if positions is not None:
        model.config.max_position_embeddings = positions
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


# --- results --------------------------------------------------------------------------------------------------

def tokens(result) -> list[list[int]]:
    """The candidate token ids of every step."""
    return [[c.token_id for c in step.candidates] for step in result.steps]


def probabilities(result) -> list[list[float]]:
    return [[c.probability for c in step.candidates] for step in result.steps]


def same(result, reference, atol: float = 1e-4) -> None:
    """Same candidates at every step and the same text, probabilities within ``atol`` (the float noise of
    batching)."""
    assert tokens(result) == tokens(reference)
    assert_close(torch.tensor([p for step in probabilities(result) for p in step]),
                 torch.tensor([p for step in probabilities(reference) for p in step]), atol=atol, rtol=0)
    assert result.text == reference.text


def alone(engine, request, **fields):
    """The result of ``request`` (a request, or a prompt and ``fields``) run on its own."""
    if isinstance(request, str):
        request = engine.request(request, **fields)
    return engine.run([request])[0]


def last_logits(engine, ids) -> torch.Tensor:
    """Plain Hugging Face forward over ``ids`` alone: the last row's logits."""
    with torch.no_grad():
        return engine.loaded.model(input_ids=torch.tensor([ids])).logits[0, -1].float()


def spy_distributions(monkeypatch) -> list[tuple[list[int], list[int], torch.Tensor]]:
    """Records (context, path, logits) of every distribution the tree search evaluates."""
    from tempo.engine.mcts import MctsSearch

    seen = []
    original = MctsSearch._distribution

    def spy(self, logits, path, depth):
        seen.append((list(self.context), list(path), logits.clone()))
        return original(self, logits, path, depth)

    monkeypatch.setattr(MctsSearch, "_distribution", spy)
    return seen


# --- the command line -----------------------------------------------------------------------------------------

def run_cli(*args: str, env: dict[str, str] | None = None, clean: bool = False, timeout: float = 300):
    """``python -m tempo ARGS`` in a child process from the repository root: offline, no log files, ``env``
    added. ``clean``: without any ``TEMPO_*`` variable at all (the caller's nor these defaults)."""
    if clean:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("TEMPO_")}
    else:
        environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TEMPO_LOGGING__ENABLE_FILE_LOGGING": "false"}
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "tempo", *args], capture_output=True, text=True, cwd=ROOT,
                          env=environment, timeout=timeout)


# --- servers --------------------------------------------------------------------------------------------------

class JobRecorder:
    """The ``Job``s a scheduler hands out while it is installed (``record_jobs``): the server's side of the
    requests a test sends, to wait on their events instead of polling."""

    def __init__(self):
        self.jobs: list = []
        self._added = threading.Condition()

    def add(self, jobs: list) -> None:
        with self._added:
            self.jobs.extend(jobs)
            self._added.notify_all()

    def job(self, prompt: str, timeout: float):
        """The first job for ``prompt``, once the server has submitted it."""
        def found():
            return next((job for job in self.jobs if job.request.prompt == prompt), None)

        with self._added:
            if not self._added.wait_for(found, timeout):
                raise TimeoutError(f"no job for {prompt!r} within {timeout:g} s")
            return found()


def record_jobs(monkeypatch, scheduler) -> JobRecorder:
    """Records the jobs ``scheduler`` creates for the rest of the test."""
    recorder = JobRecorder()
    submit_many = scheduler.submit_many

    def recording(requests):
        jobs = submit_many(requests)
        recorder.add(jobs)
        return jobs

    monkeypatch.setattr(scheduler, "submit_many", recording)
    return recorder


# --- a real server ---------------------------------------------------------------------------------------------

@contextlib.contextmanager
def serving(model_path, settings=None):
    """An engine on ``model_path`` and a real server (REST + the Gradio app) on loopback: ``(engine, server)``."""
    from tempo.engine.runner import Tempo
    from tempo.models.loading import load_model
    from tempo.serve.rest import Server, create_app
    from tempo.settings import load_settings

    settings = settings if settings is not None else load_settings()
    engine = Tempo(load_model(str(model_path)), settings)
    server = Server(create_app(engine, settings), host="127.0.0.1").start()
    try:
        yield engine, server
    finally:
        server.close()
