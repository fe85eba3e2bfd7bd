"""The app's model with a fallback: ``model.model_id``, or ``model.fallback_model_id`` when that cannot be loaded.

A Space whose model lives on the hub must still start when the hub cannot be reached (or the model is gone):
it then serves the fallback (the bundled model, in the ``space`` profile) and says so -- ``/health`` carries
``"fallback": {"wanted", "serving", "reason"}`` and the page a banner (tempo/ui/model_picker.py).
"""
from __future__ import annotations

import logging
from typing import Any

from tempo.errors import ModelLoadError
from tempo.models.loading import LoadedModel, load_from_settings

log = logging.getLogger(__name__)


def load_with_fallback(settings: Any) -> tuple[LoadedModel, dict[str, str] | None]:
    """The settings' model and None; or, when it fails to load and a fallback is set, the fallback and what
    happened (``{"wanted", "serving", "reason"}``). Without a fallback (or when it fails too) the error is
    raised."""
    wanted, fallback = settings.model.model_id, settings.model.fallback_model_id
    try:
        return load_from_settings(settings), None
    except ModelLoadError as exc:
        if not fallback or fallback == wanted:
            raise
        reason = str(exc)
    log.warning("%s; serving the fallback model %s instead (model.fallback_model_id)", reason, fallback)
    loaded = load_from_settings(settings, model_id=fallback)
    return loaded, {"wanted": wanted, "serving": fallback, "reason": reason}


def banner_text(fallback: dict[str, str] | None) -> str:
    """The page's banner for a fallback (Markdown); empty when the wanted model is served."""
    if not fallback:
        return ""
    return (f"⚠ **Serving the fallback model `{fallback['serving']}`**: `{fallback['wanted']}` could not be "
            f"loaded ({fallback['reason']}).")
