"""Errors a user can act on. Each names what was wrong and what is allowed."""


class TempoError(Exception):
    """Base of the errors TEMPO reports to users as one line."""


class SettingsError(TempoError):
    """A setting in settings.toml or the environment is invalid."""


class RequestError(TempoError, ValueError):
    """A field of a generation request is invalid."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


class ModelLoadError(TempoError):
    """A model or tokenizer could not be loaded."""


class RequestCancelled(TempoError):
    """A running request the server ended for a reason of its own (the model was switched); the message says why."""
