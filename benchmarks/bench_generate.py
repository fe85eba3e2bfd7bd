"""Generation speed: Hugging Face generate() against TEMPO, measured in one run on one model.

    python benchmarks/bench_generate.py                     # the settings' model (assets/...)
    python benchmarks/bench_generate.py --model PATH_OR_ID
    python benchmarks/bench_generate.py --random-llama      # a random Llama of the shipped model's size

Prints tokens/s after a warm-up; every figure is the median of --repeats runs.
EOS is suppressed on both sides (min_new_tokens / min_steps) so both run the same number of steps.
"""
from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tempo.settings.loader import load_settings  # noqa: E402
from tempo.engine.runner import Tempo  # noqa: E402
from tempo.models.loading import load_model  # noqa: E402

log = logging.getLogger("bench")


def random_llama(folder: Path, positions: int = 1024) -> str:
    """A random Llama with the shipped model's shape (d_model 256, 4 layers, vocab 8192) and ``positions``
    positions, saved to ``folder``."""
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


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--random-llama", action="store_true")
    parser.add_argument("--prompt", default="def read_config(path):")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = load_settings()
    model_id = args.model or settings.model.model_id
    if args.random_llama:
        model_id = random_llama(Path(tempfile.mkdtemp()) / "random-llama")
    loaded = load_model(model_id, device=settings.model.device, torch_dtype=settings.model.torch_dtype)
    engine = Tempo(loaded, settings)
    engine.prompt_cache = None  # HF prefills every run, so TEMPO does too (benchmarks/bench_prompt_cache.py measures the cache)
    model, tok = loaded.model, loaded.tokenizer
    n = args.tokens
    ids = torch.tensor([tok(args.prompt)["input_ids"]], device=loaded.device)

    def hf():
        with torch.inference_mode():
            model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=n,
                           min_new_tokens=n, pad_token_id=engine.pad_id, eos_token_id=engine.eos_ids)

    common = dict(max_tokens=n, min_steps=n, top_k=0, top_p=1.0, temperature=1.0)
    greedy = engine.request(args.prompt, selection_threshold=0.6, **common)
    parallel = engine.request(args.prompt, selection_threshold=0.1, **common)
    prompts = [args.prompt] + [f"{args.prompt} # variant {i}" for i in range(1, args.batch)]
    batch = [engine.request(p, selection_threshold=0.1, **common) for p in prompts]
    pruned = engine.request(args.prompt, selection_threshold=0.1, use_retroactive_pruning=True, **common)

    for fn in (hf, lambda: engine.run([greedy]), lambda: engine.run([parallel]), lambda: engine.run(batch),
               lambda: engine.run([pruned])):
        fn()  # warm-up
    t_hf = timed(hf, args.repeats)
    t_greedy = timed(lambda: engine.run([greedy]), args.repeats)
    t_parallel = timed(lambda: engine.run([parallel]), args.repeats)
    t_batch = timed(lambda: engine.run(batch), args.repeats)
    t_pruned = timed(lambda: engine.run([pruned]), args.repeats)
    pruned_result = engine.run([pruned])[0]
    n_pruned = sum(c.status != "kept" for s in pruned_result.steps for c in s.candidates)
    result = engine.run([parallel])[0]
    physical = sum(len(s.candidates) for s in result.steps)
    batch_steps = sum(len(r.steps) for r in engine.run(batch))

    hardware = f"{torch.get_num_threads()} threads, {loaded.device}, {loaded.dtype}"
    log.info("model %s (%.1fM parameters), prompt %d tokens, %d steps, %s",
             model_id if not args.random_llama else "random Llama 256x4", loaded.parameters / 1e6,
             ids.shape[1], n, hardware)
    log.info("HF generate() greedy            %8.1f tokens/s", n / t_hf)
    log.info("TEMPO threshold 0.6 (greedy-eq) %8.1f tokens/s  ratio to HF %.2fx", n / t_greedy, t_hf / t_greedy)
    log.info("TEMPO threshold 0.1             %8.1f steps/s   %8.1f physical tokens/s (%.2f per step)",
             n / t_parallel, physical / t_parallel, physical / n)
    log.info("TEMPO 0.1 + retroactive pruning %8.1f steps/s   time ratio to no pruning %.2fx (%d tokens pruned)",
             n / t_pruned, t_pruned / t_parallel, n_pruned)
    log.info("TEMPO batch of %d at 0.1        %8.1f steps/s   ratio to one request %.2fx",
             len(batch), batch_steps / t_batch, (batch_steps / t_batch) / (n / t_parallel))


if __name__ == "__main__":
    main()
