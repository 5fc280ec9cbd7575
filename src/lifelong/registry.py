"""Name -> class tables, so that recipes and config files can name terms and plug-ins."""
from __future__ import annotations

from typing import Any, Callable, Mapping


def _origin(obj: Any) -> str:
    """Where ``obj`` was defined: ``module.QualifiedName``."""
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"


def check_free(table: Mapping[str, Any], name: str, new: Any, kind: str,
               key: Callable[[Any], Any] = lambda entry: entry) -> None:
    """Refuse (``ValueError``) to register ``new`` under a ``name`` that something else holds: a
    built-in or another definition of the user's. The same definition registered again (its
    file imported a second time, a notebook cell run again) is allowed and replaces the old one.
    ``key`` gives the defining object of an entry (a backbone's factory)."""
    if name not in table:
        return
    old, mine = key(table[name]), key(new)
    if old is mine or _origin(old) == _origin(mine):
        return
    held = "built in" if _origin(old).startswith("lifelong.") else "already registered"
    raise ValueError(f"{kind} {name!r} is {held} ({_origin(old)}); register yours under another name")


def registrar(table: dict[str, type], kind: str) -> Callable[[type], type]:
    """A class decorator that enters a class into ``table`` under its ``name`` attribute
    (refusing a name that another class holds: :func:`check_free`)."""

    def register(cls: type) -> type:
        if not getattr(cls, "name", ""):
            raise ValueError(f"{cls.__name__} needs a non-empty `name` to be registered as a {kind}")
        check_free(table, cls.name, cls, kind)
        table[cls.name] = cls
        return cls

    register.__doc__ = f"Class decorator: make a {kind} available by its ``name`` in recipes and config files."
    return register
