"""The one error type for bad user input, reported by ``run_glue.py`` as a message, not a traceback."""


class GlueInputError(ValueError):
    """A task name, data file, column, label or model path the script cannot use."""
