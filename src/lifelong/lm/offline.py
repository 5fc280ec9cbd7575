"""The two offline corpora of the continual pre-training benchmark, built from what ships with
the Python interpreter (nothing to download):

- ``prose`` (corpus A): English documentation, the help topics of ``pydoc_data.topics`` plus
  every docstring (module, class, function) of the standard library's source files;
- ``python`` (corpus B): the standard library's Python source with its docstrings and comments
  removed (:func:`strip_source`, with ``ast`` and ``tokenize``).

Both read the source files below ``root`` (default: the interpreter's ``stdlib`` folder) in sorted
order, skipping test suites, ``site-packages`` and files that do not parse; ``max_chars`` stops
adding documents once the corpus holds that many characters (a smaller corpus for tests and
quick benchmarks).
"""
from __future__ import annotations

import ast
import io
import sysconfig
import tokenize
from pathlib import Path
from typing import Iterator

from lifelong.errors import ConfigError

SKIP_PARTS = frozenset({"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"})
KINDS = ("prose", "python")


def _source_files(root: Path) -> Iterator[tuple[Path, str]]:
    for path in sorted(root.rglob("*.py")):
        if SKIP_PARTS.intersection(path.relative_to(root).parts):
            continue
        try:
            yield path, path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue


def _parse(text: str) -> ast.Module | None:
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError):
        return None


_DOC_OWNERS = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _docstring_nodes(tree: ast.Module) -> list[tuple[ast.AST, ast.Expr]]:
    """(owner, docstring statement) pairs: a string constant as the first statement of a body."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, _DOC_OWNERS) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                found.append((node, first))
    return found


def docstrings(text: str) -> list[str]:
    """The docstrings of one source file, cleaned as ``inspect.cleandoc`` does (``ast.get_docstring``)."""
    tree = _parse(text)
    if tree is None:
        return []
    return [ast.get_docstring(owner) or "" for owner, _ in _docstring_nodes(tree)]


def strip_source(text: str) -> str | None:
    """``text`` without comments and docstrings (``None`` when it does not parse). A docstring that
    is a body's only statement becomes ``pass``, so the code stays valid Python; lines left empty by
    a removed comment go, blank lines of the code stay."""
    tree = _parse(text)
    if tree is None:
        return None
    lines = text.splitlines()
    drop: set[int] = set()  # 0-based line numbers
    for row, col in _comments(text):
        kept = lines[row][:col].rstrip()
        if kept:
            lines[row] = kept
        else:
            drop.add(row)
    for owner, doc in _docstring_nodes(tree):
        first, last = doc.lineno - 1, doc.end_lineno - 1
        if len(owner.body) == 1 and not isinstance(owner, ast.Module):
            lines[first] = " " * doc.col_offset + "pass"
            drop.update(range(first + 1, last + 1))
        else:
            drop.update(range(first, last + 1))
    return "\n".join(line for i, line in enumerate(lines) if i not in drop) + "\n"


def _comments(text: str) -> list[tuple[int, int]]:
    """(0-based row, column) where each comment starts, from ``tokenize`` (never inside a string)."""
    try:
        return [(tok.start[0] - 1, tok.start[1]) for tok in tokenize.generate_tokens(io.StringIO(text).readline)
                if tok.type == tokenize.COMMENT]
    except (tokenize.TokenError, SyntaxError):
        return []


def _limited(docs: Iterator[str], max_chars: int | None) -> list[str]:
    out, total = [], 0
    for d in docs:
        if not d.strip():
            continue
        out.append(d)
        total += len(d)
        if max_chars is not None and total >= max_chars:
            break
    return out


def _prose(root: Path) -> Iterator[str]:
    from pydoc_data.topics import topics

    for key in sorted(topics):
        yield topics[key]
    for _, text in _source_files(root):
        yield from docstrings(text)


def _python(root: Path) -> Iterator[str]:
    for _, text in _source_files(root):
        stripped = strip_source(text)
        if stripped is not None:
            yield stripped


def offline_corpus(kind: str, root: Path | None = None, max_chars: int | None = None) -> list[str]:
    """The documents of the offline corpus ``kind`` (``prose`` or ``python``)."""
    root = Path(root or sysconfig.get_paths()["stdlib"])
    if kind == "prose":
        return _limited(_prose(root), max_chars)
    if kind == "python":
        return _limited(_python(root), max_chars)
    raise ConfigError(f"unknown offline corpus {kind!r}: choose {' or '.join(KINDS)}")
