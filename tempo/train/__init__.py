"""The tiny-model trainer: ``python -m tempo train prepare`` then ``python -m tempo train``.

    config.py    TrainConfig, model and stage presets, settings < presets < YAML < flags
    data.py      corpus -> byte-level BPE tokenizer -> int32 arrays (num_sequences, seq_length)
    modeling.py  TrainConfig -> a standard Hugging Face causal LM (Llama, GPT-NeoX or GPT-2)
    trainer.py   the training loop, checkpoints, resume, save_pretrained
    card.py      the model card (README.md in the model folder)
    finetune.py  stages tools (SFT) and rlhf (DPO): fine-tune init_from on a JSONL file
    examples.py  their JSONL examples -> ids and labels -> batches; the model they start from
    objectives.py  the SFT and DPO losses as pure functions
    make_tool_examples.py  assets/train/*.jsonl from the standard library's function signatures
The subcommands are in tempo/cli/train.py.
"""
from tempo.train.config import MODEL_PRESETS, STAGE_PRESETS, TrainConfig, TrainConfigError, TrainDataError, resolve_config

__all__ = ["MODEL_PRESETS", "STAGE_PRESETS", "TrainConfig", "TrainConfigError", "TrainDataError", "resolve_config"]
