"""Errors that are the user's to fix.

Anything raised as a :class:`UserError` is reported by the command line as one line on stderr,
with exit code 2 and no traceback. Its message says what is wrong and how to fix it.
"""
from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input: a name, a value, a file, a folder."""


class ConfigError(UserError):
    """An unknown key, a wrong type or a value out of range in a run's configuration."""


class DataError(UserError):
    """A data file that is missing, truncated, corrupt or of the wrong format."""


class DivergedError(Exception):
    """Training produced a non-finite loss; raised by the loop, caught by the caller."""

    def __init__(self, message: str, *, task: int, step: int) -> None:
        super().__init__(message)
        self.task = task
        self.step = step
