"""Compiled RE2 programs and Sets, one per source in the process.

Why a module of its own: normalisation (`normalize.py`) and the rule patterns
(`patterns.py`, which folds patterns with `normalize.fold_pattern`) both need them, and
this one depends on neither.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import re2


def options(*, capture: bool = False, case_sensitive: bool = False) -> Any:
    """RE2 options (case-insensitive unless asked) with room for large alternations."""
    opts = re2.Options()
    opts.case_sensitive = case_sensitive
    opts.never_capture = not capture
    opts.max_mem = 64 << 20
    return opts


@functools.lru_cache(maxsize=4_096)
def program(source: str, *, capture: bool = False) -> Any:
    """The process's one compiled RE2 program for `source` (case-insensitive).

    Why share: an RE2 program builds its automaton while it matches, and the first
    few thousand comments through a new program cost several times the later ones.
    Programs are immutable and safe to use from many threads, so an engine rebuilt
    for a configuration reload, a second engine or a test reuses warm ones and compiles
    nothing.
    """
    return re2.compile(source, options(capture=capture))


def set_matcher(found: Any) -> Callable[[str], list[int]]:
    """A function giving the indices of the patterns of the Set `found` that match a
    text ([] for none).

    The wrapper's `Match` checks and encodes in Python on every call, which cost about
    as much as the scan itself; the C++ Set's own `Match` reads the UTF-8 bytes.
    """
    raw = getattr(found, "_set", None)
    if raw is not None and callable(getattr(raw, "Match", None)):
        match = raw.Match
        return lambda text: match(text.encode("utf-8"))
    return lambda text: found.Match(text) or []


@functools.lru_cache(maxsize=8)
def search_set(patterns: tuple[str, ...], *, case_sensitive: bool = False) -> Any:
    """The process's one compiled RE2 Set of `patterns` (already rewritten), shared as
    `program` is.  Few are kept, each may hold up to `options().max_mem` of automaton:
    an engine uses three and normalisation one, so eight also keep the three of an
    engine a reload with changed packs replaces."""
    found = re2.Set.SearchSet(options(case_sensitive=case_sensitive))
    for pattern in patterns:
        found.Add(pattern)
    found.Compile()
    return found
