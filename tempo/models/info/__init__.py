"""What a model is made of, read from its config: layer types, whether TEMPO can run it, memory.

``describe(config, ...)`` works on a transformers ``PretrainedConfig`` alone (no
weights): architecture, sizes, the layer types found (full or sliding attention,
grouped-query, multi-head latent attention, mixture of experts, Mamba / state
space), whether each honours TEMPO's 4D masks, and memory estimates. The
formulas travel in the JSON (``"formulas"``) and in ``docs/model_info.md``.

``tempo_support(config)`` is the one place that decides whether TEMPO runs a
model: ``info`` prints it and ``ModelAdapter`` refuses what it rejects.

A missing or contradictory config field raises ``ModelInspectionError`` naming
the field (one line), never a traceback.

One module per idea: ``fields`` (reading a config), ``layers`` (the decoder layers), ``support`` (whether
TEMPO runs it), ``memory`` (bytes and parameters), ``report`` (the ``info`` JSON and the Model tab's views),
``source`` (a config from a folder or hub id).
"""
from tempo.models.info.fields import (DTYPE_BYTES, SSM_STATE_BYTES, ModelInspectionError, dtype_name,  # noqa: F401
                                      kv_heads, text_config)
from tempo.models.info.layers import (ATTENTION, LEGACY, NO_MIXER, SEQUENTIAL, Layer, check,  # noqa: F401
                                      layer_list, raw_layer_types, sliding_windows)
from tempo.models.info.memory import (FORMULAS, UNGATED_MLP, allocated_cache_bytes, count_parameters,  # noqa: F401
                                      estimate_parameters, head_dims, human, kv_bytes_per_token,
                                      mla_decompressed_bytes_per_token, state_bytes_per_sequence)
from tempo.models.info.report import (TABLE_COLUMNS, describe, describe_loaded, layer_table,  # noqa: F401
                                      memory_estimate, summary_line)
from tempo.models.info.source import REQUIRED, inspect_model, load_config  # noqa: F401
from tempo.models.info.support import (MIXER_REASONS, MOE_REASON, SEQUENTIAL_REASON, VERIFIED,  # noqa: F401
                                       tempo_support)
