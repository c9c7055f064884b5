"""User-facing errors. The CLI prints ``graphir: error: <message>`` (one line) and exits with code 2."""


class GraphirError(Exception):
    """Bad input or an impossible request, explained in one line."""

    exit_code = 2


class ModelLoadError(GraphirError):
    """The model file or object cannot be read."""


class ConfigError(GraphirError):
    """A bad option, pipeline string or YAML config."""
