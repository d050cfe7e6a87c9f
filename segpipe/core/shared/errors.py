"""Exceptions raised inside core; stage boundaries turn them into quarantine rows or failed checks."""


class ConfigError(ValueError):
    """A config or taxonomy file is invalid; raised before any work starts."""


class InputError(ValueError):
    """An input item (image or annotation) is unusable; its message names the file and the rule."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
