"""Models for the benchmarks: the shipped tiny model, or random weights with a real model's configuration.

There is no hub here, so ``smollm2-135m`` and the Qwen2.5 shapes are built from their published
configurations with random weights (``from_config``, never downloaded). A random model's next-token
distribution is nearly uniform; its final norm is scaled (``peak``) so that at threshold 0.1 a step keeps
about 1.5–1.7 tokens, as a trained model does on ordinary text. The weights do not change the cost of a
step, only which tokens are chosen.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from tempo.models.loading import LoadedModel, load_model

log = logging.getLogger("bench")

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "assets" / "models" / "tempo-tiny-code"

SHAPES = {
    # SmolLM2-135M's configuration with an untied head (163M parameters, as issue 17 measured it).
    "smollm2-135m": dict(model_type="llama", hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, vocab_size=49152,
                         max_position_embeddings=8192, rope_theta=100000.0, rms_norm_eps=1e-5,
                         tie_word_embeddings=False, peak=10.0),
    "qwen2.5-0.5b": dict(model_type="qwen2", hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                         num_attention_heads=14, num_key_value_heads=2, vocab_size=151936,
                         max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
                         tie_word_embeddings=True, peak=10.0),
    "qwen2.5-1.5b": dict(model_type="qwen2", hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                         num_attention_heads=12, num_key_value_heads=2, vocab_size=151936,
                         max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
                         tie_word_embeddings=True, peak=10.0),
}
"""The published configurations (config.json of each model) of the shapes built with random weights."""


def word_tokenizer(vocab_size: int):
    """A word-level tokenizer ``w0 … w{V-1}`` (``w0`` pads, ``w1`` ends): prompts are ``"w5 w17 …"``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(vocab={f"w{i}": i for i in range(vocab_size)}, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="w1", pad_token="w0")


def build(shape: str, device: str = "cpu", dtype: str = "float32", peak: float | None = None) -> LoadedModel:
    """``tiny``: the shipped model (trained); any other name in ``SHAPES``: random weights, built in memory."""
    if shape == "tiny":
        return load_model(str(SHIPPED), device=device, torch_dtype=dtype)
    from transformers import AutoConfig, AutoModelForCausalLM

    spec = dict(SHAPES[shape])
    scale = spec.pop("peak") if peak is None else peak
    model_type = spec.pop("model_type")
    rope = {"rope_type": "default", "rope_theta": spec.pop("rope_theta")}
    config = AutoConfig.for_model(model_type, rope_parameters=rope, eos_token_id=1, pad_token_id=0,
                                  bos_token_id=2, **spec)
    torch.manual_seed(0)
    target, torch_dtype = torch.device(device), getattr(torch, dtype)
    with target:
        model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", dtype=torch_dtype)
    with torch.no_grad():
        model.model.norm.weight.mul_(scale)  # peaked, not one-hot: parallel sets at threshold 0.1
    model.eval()
    log.info("built %s with random weights on %s (%s, %.1fM parameters)", shape, device, dtype,
             sum(p.numel() for p in model.parameters()) / 1e6)
    return LoadedModel(model=model, tokenizer=word_tokenizer(config.vocab_size), model_id=f"random {shape}",
                       device=target, dtype=torch_dtype)


def prompt_for(loaded: LoadedModel, length: int = 12) -> str:
    """A prompt of ``length`` tokens: code for the shipped model, words ``w…`` for a random one."""
    if loaded.model_id.startswith("random "):
        return " ".join(f"w{100 + 37 * i}" for i in range(length))
    return "def read_config(path):"


def random_llama(folder: Path, positions: int = 1024) -> str:
    """A random Llama with the shipped model's shape (d_model 256, 4 layers, vocab 8192) and ``positions``
    positions, saved to ``folder`` (bench_app, bench_mcts, bench_openai, bench_prompt_cache)."""
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {f"w{i}": i for i in range(8192)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="w1", pad_token="w0")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=8192, hidden_size=256, intermediate_size=1024, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=positions,
                         eos_token_id=1, pad_token_id=0, tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.lm_head.weight.mul_(12.0)  # peaked but not one-hot: parallel sets at 0.1
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)

