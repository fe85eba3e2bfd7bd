"""Tiny random Llama and Qwen2 models with a word-level tokenizer, built by the tests themselves.

The output head is scaled ("sharpened") so that next-token distributions are
peaked but not one-hot: several tokens pass a 0.1 threshold at many steps.
"""
from __future__ import annotations

from pathlib import Path

import torch

WORDS = (
    "the a cat dog sat on mat rug and ran to house garden big small red blue tree "
    "bird sky sun moon day night was is in of with under over quick lazy fox jumps"
).split()
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]

CHAT_TEMPLATE = (
    "{% for m in messages %}<s> {{ m['role'] }} : {{ m['content'] }} </s> {% endfor %}"
    "{% if add_generation_prompt %}<s> assistant : {% endif %}"
)


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


def build_model(kind: str, vocab_size: int, seed: int = 0, sharpen: float = 8.0):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    common = dict(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False)
    if kind == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common))
    elif kind == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**common))
    else:
        raise ValueError(kind)
    with torch.no_grad():
        model.lm_head.weight.mul_(sharpen)
    return model.eval()


def save_tiny(path: Path, kind: str, seed: int = 0) -> Path:
    tokenizer = build_tokenizer()
    model = build_model(kind, len(tokenizer), seed=seed)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
