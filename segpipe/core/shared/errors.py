"""Exceptions raised inside core; stage boundaries turn them into quarantine rows or failed checks."""

from segpipe.core.shared.quarantine_rules import quarantine_rule


class ConfigError(ValueError):
    """A config or taxonomy file is invalid; raised before any work starts."""


class InputError(ValueError):
    """An input item (image or annotation) is unusable; its message names the file, and its rule is one
    declared in quarantine_rules (any other raises UnregisteredRuleError: a bug, not a bad input)."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = quarantine_rule(rule).id
