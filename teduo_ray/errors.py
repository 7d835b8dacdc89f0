"""Errors a user can cause. The CLI prints these as one line, without a traceback."""


class TeduoError(Exception):
    """Base class: something the user can fix (config, paths, data)."""


class ConfigError(TeduoError):
    """A config key is unknown, has the wrong type or an impossible value."""


class DataError(TeduoError):
    """A file in the run directory is missing, corrupt or from another config."""


class ModelError(TeduoError):
    """A model directory has no loadable config or tokenizer, or cannot write the answers."""


class SchemaError(DataError):
    """An upstream table exists but lacks the columns (or types) its readers need."""
