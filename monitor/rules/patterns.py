"""Compile rule patterns for RE2 so that one rule written in plain words catches variants.

Why rewrite patterns at all: rule authors write ``i want to die`` or ``j'ai plus envie``;
comments arrive as ``iwanttodie`` (hashtags), ``i  want to die``, ``jai plus envie`` or
``j ai``.  Rewriting every literal space to ``\\s*`` and every apostrophe to an optional
apostrophe-or-space, plus folding accents (`fold_pattern`), lets the YAML stay readable.
RE2 guarantees linear-time matching whatever the pattern or input, so no rule can hang
the engine on adversarial text.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import re2

from monitor.rules.normalize import fold_pattern
from monitor.rules.programs import options, program

_QUANTIFIERS = frozenset("?*+{")


def rewrite(pattern: str) -> str:
    """Fold accents and make spaces and apostrophes tolerant (outside classes/escapes)."""
    pattern = fold_pattern(pattern)
    out: list[str] = []
    i = 0
    in_class = False
    n = len(pattern)
    while i < n:
        c = pattern[i]
        nxt = pattern[i + 1] if i + 1 < n else ""
        if c == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            out.append(c)
            in_class = c != "]"
        elif c == "[":
            out.append(c)
            in_class = True
            if nxt == "]":  # "[]...]" : the first ']' is a literal
                out.append(nxt)
                i += 1
        elif c == " " and nxt not in _QUANTIFIERS:
            while i + 1 < n and pattern[i + 1] == " ":
                i += 1
            out.append(r"\s*")
        elif c == "'" and nxt not in _QUANTIFIERS:
            out.append(r"['\s]?")
        else:
            out.append(c)
        i += 1
    return "".join(out)


def alternation(patterns: list[str]) -> str:
    return "|".join(f"(?:{rewrite(p)})" for p in patterns)


def compile_any(patterns: list[str], *, capture: bool = False) -> Any:
    """One RE2 program matching any of the (rewritten) patterns."""
    return program(alternation(patterns), capture=capture)


_UNANCHORED = getattr(getattr(re2, "_Anchor", None), "UNANCHORED", None)


def _raw(program: Any) -> Any:
    """The compiled C++ RE2 object behind a `re2.compile` result, or None.

    Why reach past the public API: for every match the wrapper builds a Python `_Match`
    object through a generator, which costs several times the match itself, and the
    engine only needs (start, end).  `_regexp.Match(anchor, bytes, pos, endpos)` is the
    call the wrapper itself makes; if a release renames it, `spans` falls back to the
    public API (tests/test_rules_properties.py checks both give the same spans).
    """
    raw = getattr(program, "_regexp", None)
    usable = _UNANCHORED is not None and callable(getattr(raw, "Match", None))
    return raw if usable else None


# whether this re2 release has the shape `_raw` expects (and the offset helpers its
# wrapper uses for non-ASCII text), checked once: `spans` runs a few times per comment
# and the check costs as much as a short match
_RAW_USABLE = _raw(re2.compile("a")) is not None
_OFFSETS: Any = getattr(re2, "_re2", None)
_UTF8_USABLE = _RAW_USABLE and all(callable(getattr(_OFFSETS, name, None))
                                   for name in ("BytesToCharLen", "CharLenToBytes"))


def spans(program: Any, text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each match, in characters of `text`.

    The program reads the text's bytes straight from RE2 (`_raw`): for ASCII text (most
    comments) their offsets are the character offsets; for other text the UTF-8 byte
    offsets are counted back into characters with the helpers the wrapper itself uses,
    from one match to the next, instead of the wrapper's per-match bookkeeping.  The
    public API is the fallback (tests/test_rules_properties.py checks all give the same
    spans).
    """
    ascii_text = text.isascii()
    raw = (getattr(program, "_regexp", None)
           if (_RAW_USABLE if ascii_text else _UTF8_USABLE) else None)
    if raw is None:
        for m in program.finditer(text.encode("ascii") if ascii_text else text):
            yield m.span()
        return
    data = text.encode("ascii" if ascii_text else "utf-8")
    pos, end = 0, len(data)
    counted, chars = 0, 0  # `chars` characters lie before byte `counted`
    while True:
        start, stop = raw.Match(_UNANCHORED, data, pos, end)[0]
        if start < 0:
            return
        if ascii_text:  # a byte is a character
            first, chars = start, stop
        else:
            first = chars + _OFFSETS.BytesToCharLen(data, counted, start)
            counted, chars = stop, first + _OFFSETS.BytesToCharLen(data, start, stop)
        yield first, chars
        if pos == end:  # the wrapper's own loop, step for step (empty matches too)
            return
        if pos != stop:
            pos = stop
        else:  # an empty match: one character on
            pos += 1 if ascii_text else _OFFSETS.CharLenToBytes(data, pos, 1)


def blank(program: Any, text: str) -> str:
    """`text` with every match of `program` replaced by one space.

    The same as `program.sub(" ", text)`, built from `spans`: the RE2 wrapper's `sub`
    splits in Python and cost several times more per call.
    """
    pieces: list[str] = []
    last = 0
    for start, end in spans(program, text):
        pieces.append(text[last:start])
        last = end
    if not pieces:
        return text
    pieces.append(text[last:])
    return " ".join(pieces)


def first_unexcluded(program: Any, exclude: Any, text: str) -> tuple[int, int] | None:
    """The first match of `program` in `text` that no `exclude` match overlaps."""
    excluded: list[tuple[int, int]] | None = None
    for start, end in spans(program, text):
        if exclude is None:
            return start, end
        if excluded is None:
            excluded = list(spans(exclude, text))
        if not any(s < end and start < e for s, e in excluded):
            return start, end
    return None


def found(program: Any, text: str) -> bool:
    """Whether `program` matches anywhere in `text` (bytes for ASCII, as `spans`)."""
    return program.search(text.encode("ascii") if text.isascii() else text) is not None


def check(pattern: str) -> str:
    """Raise ValueError naming the pattern if RE2 rejects it (used by pack validation)."""
    try:
        re2.compile(rewrite(pattern), options())
    except re2.error as exc:
        raise ValueError(f"pattern {pattern!r} is not valid RE2 syntax: {exc}") from None
    return pattern


def check_all(values: list[str]) -> list[str]:
    """`check` every pattern of a list: the field validator of detectors' pattern lists."""
    for value in values:
        check(value)
    return values
