"""The tiny-model trainer: ``python -m tempo train prepare`` then ``python -m tempo train``.

    config.py    TrainConfig, model and stage presets, settings < presets < YAML < flags
    data.py      corpus -> byte-level BPE tokenizer -> int32 arrays (num_sequences, seq_length)
    modeling.py  TrainConfig -> a standard Hugging Face causal LM (Llama, GPT-NeoX or GPT-2)
    trainer.py   the training loop, checkpoints, resume, save_pretrained
    card.py      the model card (README.md in the model folder)
    cli.py       the subcommands
"""
from tempo.train.config import MODEL_PRESETS, STAGE_PRESETS, TrainConfig, TrainConfigError, TrainDataError, resolve_config

__all__ = ["MODEL_PRESETS", "STAGE_PRESETS", "TrainConfig", "TrainConfigError", "TrainDataError", "resolve_config"]
