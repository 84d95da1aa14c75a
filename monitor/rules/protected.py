"""Protected students (section 5): names that must never appear on a school account.

The principal keeps a list of students without publication consent or with custody or
safety concerns.  Those names are exactly what must not leak, so this module never
keeps them: each name is normalised (the same folding as comments: case, accents,
look-alike letters, leetspeak), split into tokens, and only salted BLAKE2b hashes of
the tokens and of the token sequence are held in memory.  The salt comes from an
environment variable (or systemd credential) named in the configuration, so a copy of
the memory or database without the salt cannot be tested against a class list.

Matching hashes every word of a comment and, where a word's hash starts a protected
name, the following n-gram; so a comment is checked without any name in clear.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import re2

from monitor.rules.detectors import Context, Detector, Match
from monitor.rules.normalize import normalize
from monitor.rules.patterns import options
from monitor.secrets import read_secret

_TOKEN = re2.compile(r"[a-z]+", options(capture=False))
_MIN_SALT = 16


class ProtectedListError(ValueError):
    """The protected-students file or its salt is unusable (the message never holds a name)."""


def tokens(text: str) -> list[tuple[str, int, int]]:
    """Normalised word tokens of `text` with their spans in the normalised text."""
    view = normalize(text).text
    return [(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(view.text)]


@dataclass(frozen=True, slots=True)
class ProtectedIndex:
    """Salted hashes of protected names: first-token hashes and whole-name hashes by length."""

    salt: bytes
    first_tokens: frozenset[bytes]
    names: frozenset[bytes]
    lengths: tuple[int, ...]

    def token_hash(self, token: str) -> bytes:
        return hashlib.blake2b(token.encode(), key=self.salt, digest_size=16).digest()

    def name_hash(self, token_hashes: Iterable[bytes]) -> bytes:
        return hashlib.blake2b(b"".join(token_hashes), key=self.salt, digest_size=16).digest()

    @classmethod
    def build(cls, names: Iterable[str], salt: str) -> ProtectedIndex:
        if len(salt) < _MIN_SALT:
            raise ProtectedListError(f"the salt must be at least {_MIN_SALT} characters")
        key = hashlib.blake2b(salt.encode("utf-8", "surrogatepass"), digest_size=32).digest()
        empty = cls(key, frozenset(), frozenset(), ())
        first: set[bytes] = set()
        whole: set[bytes] = set()
        lengths: set[int] = set()
        for name in names:
            for variant in _variants(name):
                hashes = [empty.token_hash(t) for t in variant]
                first.add(hashes[0])
                whole.add(empty.name_hash(hashes))
                lengths.add(len(variant))
        return cls(key, frozenset(first), frozenset(whole), tuple(sorted(lengths)))

    def find(self, words: list[tuple[str, int, int]],
             memo: dict[str, bytes] | None = None) -> tuple[int, int] | None:
        """Span (in the normalised text) of the first protected name among `words`."""
        if not self.names:
            return None
        memo = {} if memo is None else memo
        hashes = []
        for word, _, _ in words:
            h = memo.get(word)
            if h is None:
                h = self.token_hash(word)
                memo[word] = h
            hashes.append(h)
        for i, h in enumerate(hashes):
            if h not in self.first_tokens:
                continue
            for n in self.lengths:
                if i + n <= len(hashes) and self.name_hash(hashes[i : i + n]) in self.names:
                    return words[i][1], words[i + n - 1][2]
        return None


def _variants(line: str) -> list[list[str]]:
    """'Tremblay-Roy, Émilie' -> [emilie tremblay roy], [emilie roy], [tremblay roy emilie] ..."""
    if "," in line:
        last, _, first = line.partition(",")
        line = f"{first} {last}"
    toks = [t for t, _, _ in tokens(line)]
    if len(toks) < 2:
        return []  # a lone first name would match half the school
    out = [toks, [*toks[1:], toks[0]]]
    if len(toks) > 2:
        out += [[toks[0], toks[-1]], [toks[0], toks[1]]]
    return out


def load_protected(path: Path, salt_env: str) -> ProtectedIndex:
    """Read the names file (one 'First Last' or 'Last, First' a line, # comments)."""
    try:
        salt = read_secret(salt_env).reveal()
    except LookupError as exc:
        raise ProtectedListError(str(exc)) from None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ProtectedListError(f"{path}: cannot read the protected students file: "
                                 f"{type(exc).__name__}") from None
    names = (ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#"))
    index = ProtectedIndex.build(names, salt)
    del lines
    return index


class ProtectedStudentDetector(Detector, name="protected_student"):
    """A student on the protected list (no consent, custody/safety concern) is named."""

    def detect(self, ctx: Context) -> list[Match]:
        index: ProtectedIndex | None = self.env.protected
        if index is None or not index.names:
            return []
        view = ctx.norm.text
        words = [(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(view.text)]
        span = index.find(words, ctx.memo)
        return [ctx.match(view, *span)] if span else []
