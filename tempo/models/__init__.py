"""Models: loading a Hugging Face causal LM (device, dtype) and what a model is (``info``)."""
from tempo.models.loading import LoadedModel, load_from_settings, load_model  # noqa: F401
