"""Name -> class tables, so that recipes and config files can name terms and plug-ins."""
from __future__ import annotations

from typing import Callable


def registrar(table: dict[str, type], kind: str) -> Callable[[type], type]:
    """A class decorator that enters a class into ``table`` under its ``name`` attribute."""

    def register(cls: type) -> type:
        if not getattr(cls, "name", ""):
            raise ValueError(f"{cls.__name__} needs a non-empty `name` to be registered as a {kind}")
        table[cls.name] = cls
        return cls

    register.__doc__ = f"Class decorator: make a {kind} available by its ``name`` in recipes and config files."
    return register
