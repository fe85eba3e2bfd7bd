"""Settings: files and environment -> validated settings (dynaconf), the rules, aliases and logging."""
from tempo.settings.loader import (  # noqa: F401 -- the package's interface
    PROJECT_ROOT, LoadedSettings, default_settings, load_settings, read_settings, shipped_defaults,
)
