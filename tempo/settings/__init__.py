"""Settings: files and environment -> validated, typed, frozen settings; the rules, aliases and logging."""
from tempo.settings.loader import (  # noqa: F401 -- the package's interface
    PROJECT_ROOT, LoadedSettings, default_settings, load_settings, read_settings, shipped_defaults,
)
from tempo.settings.schema import Settings  # noqa: F401
