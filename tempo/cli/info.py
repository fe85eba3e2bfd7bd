"""``python -m tempo info --model PATH_OR_ID``: what a model is made of and what it costs, as JSON.

Reads the config (and the safetensors headers of a local checkpoint), never the weights. See
``tempo/models/info/`` for the fields and ``docs/model_info.md`` for the formulas.
"""
from __future__ import annotations

import argparse
import json

from tempo.settings.schema import QUANTIZATIONS


def add_info_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="model inspection: layer types, TEMPO support, memory estimates (JSON)",
                       description="Print a JSON description of a model from its config: architecture, sizes, "
                                   "layer types and whether each honours TEMPO's masks, whether TEMPO runs it, "
                                   "and memory estimates (weights, KV cache per token, at --max-seq-len, with "
                                   "--parallel-tokens candidates per position). The weights are not loaded.")
    p.add_argument("--model", help="hub id or local path (default: model.model_id of the settings)")
    p.add_argument("--dtype", default=None,
                   help="float32, float16, bfloat16 or auto (the config's dtype; default: the settings' "
                        "model.torch_dtype, auto = the config's)")
    p.add_argument("--max-seq-len", type=int, default=None,
                   help="sequence length (positions) of the estimates (default: max_position_embeddings)")
    p.add_argument("--parallel-tokens", type=int, default=5,
                   help="candidates per position for the parallel estimate (default 5)")
    p.add_argument("--quantization", default=None, choices=list(QUANTIZATIONS),
                   help="estimate the weights under this model.quantization (default: the settings')")
    p.add_argument("--compact", action="store_true", help="one line of JSON instead of indented")
    p.set_defaults(handler=run_info)


def run_info(args: argparse.Namespace, settings) -> int:
    from tempo.models.info import inspect_model

    section = settings.model
    info = inspect_model(
        args.model or section.model_id, dtype=args.dtype if args.dtype is not None else section.torch_dtype,
        max_seq_len=args.max_seq_len, parallel_tokens=args.parallel_tokens,
        quantization=args.quantization if args.quantization is not None else section.quantization,
        trust_remote_code=section.trust_remote_code, local_files_only=section.local_files_only,
        revision=section.revision, cache_dir=section.cache_dir,
    )
    print(json.dumps(info, indent=None if args.compact else 2, ensure_ascii=False))
    return 0
