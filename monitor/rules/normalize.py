"""Normalise text against evasion before matching, keeping a map back to the original.

Why: people who post abuse or spam on a school account, and students who half-hide a
disclosure, write ``k1ll mysеlf`` (Cyrillic е), ``s u i c i d e``, ``fuuuuck`` or hide
zero-width characters inside words.  Rules are written once, in plain lower-case words;
this module turns every comment into the same plain form.  Evidence shown to a
principal must be the words that were really posted, so every normalised character
remembers the index of the original character it came from (`Normalized.span`).

Two views are produced:

* `folded` — NFKC, casefold, accents, format/bidi/zero-width characters and combining
  marks removed, look-alike letters mapped to Latin.  Digits and punctuation are kept,
  so personal-information detectors (phones, emails, postal codes) read this view:
  leetspeak decoding would turn ``705-555-0143`` into letters.
* `text` — `folded` plus leetspeak decoded inside words, long letter runs squashed and
  spaced-out letters (``k i l l``) joined.  Phrase and word-list rules read this view.

Accented and unaccented French match the same rule because accents are removed from
both the text and the rule patterns (`fold_pattern`).

Speed matters (the engine must handle tens of thousands of comments per second), so the
common case — ASCII text without leetspeak, runs or spacing tricks — costs a `lower()`
and one RE2 Set scan (`_gates`); the per-character work only runs when a string needs it.
"""

from __future__ import annotations

import re
import unicodedata
from typing import NamedTuple

import re2

from monitor.rules.programs import search_set, set_matcher

# Look-alike letters that NFKC leaves alone, already casefolded (keys are lower case).
_CONFUSABLES: dict[str, str] = {
    # Cyrillic
    "а": "a",
    "б": "b",
    "в": "b",
    "г": "r",
    "д": "d",
    "е": "e",
    "ё": "e",
    "ж": "x",
    "з": "3",
    "и": "u",
    "к": "k",
    "л": "n",
    "м": "m",
    "н": "h",
    "о": "o",
    "п": "n",
    "р": "p",
    "с": "c",
    "т": "t",
    "у": "y",
    "х": "x",
    "ц": "u",
    "ч": "4",
    "ш": "w",
    "щ": "w",
    "ъ": "b",
    "ь": "b",
    "ы": "bi",
    "і": "i",
    "ї": "i",
    "ј": "j",
    "ѕ": "s",
    "ԁ": "d",
    "һ": "h",
    "ԛ": "q",
    "ԝ": "w",
    "ӏ": "l",
    "ɡ": "g",
    "ү": "y",
    "ѵ": "v",
    # Greek
    "α": "a",
    "β": "b",
    "γ": "y",
    "δ": "d",
    "ε": "e",
    "ζ": "z",
    "η": "n",
    "θ": "o",
    "ι": "i",
    "κ": "k",
    "λ": "l",
    "μ": "u",
    "ν": "v",
    "ξ": "e",
    "ο": "o",
    "π": "n",
    "ρ": "p",
    "σ": "o",
    "ς": "s",
    "τ": "t",
    "υ": "u",
    "φ": "o",
    "χ": "x",
    "ψ": "w",
    "ω": "w",
    # Armenian and Latin extensions / small capitals
    "օ": "o",
    "ս": "u",
    "ո": "n",
    "ı": "i",
    "ł": "l",
    "ƒ": "f",  # and "Ƒ", which casefolds to it: "Ƒuck"
    "ø": "o",
    "đ": "d",
    "ħ": "h",
    "ŧ": "t",
    "ɑ": "a",
    "ɩ": "i",
    "ɪ": "i",
    "ʀ": "r",
    "ᴀ": "a",
    "ʙ": "b",
    "ᴄ": "c",
    "ᴅ": "d",
    "ᴇ": "e",
    "ꜰ": "f",
    "ɢ": "g",
    "ʜ": "h",
    "ᴊ": "j",
    "ᴋ": "k",
    "ʟ": "l",
    "ᴍ": "m",
    "ɴ": "n",
    "ᴏ": "o",
    "ᴘ": "p",
    "ꜱ": "s",
    "ᴛ": "t",
    "ᴜ": "u",
    "ᴠ": "v",
    "ᴡ": "w",
    "ʏ": "y",
    "ᴢ": "z",
    "œ": "oe",
    "æ": "ae",
    "ß": "ss",
    "℮": "e",
    "ℯ": "e",
    # Punctuation people type instead of ASCII (phones autocorrect apostrophes)
    "\u2018": "'",
    "\u2019": "'",
    "\u02bc": "'",
    "\u00b4": "'",
    "`": "'",
    "\u2032": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u00ab": '"',
    "\u00bb": '"',
    "\u2010": "-",
    "\u2011": "-",
    "\u2012": "-",
    "\u2013": "-",
    "\u2014": "-",
    "\u2015": "-",
    "\u2212": "-",
    "\u00a0": " ",
    "\u202f": " ",
}
# Regional-indicator "letters" (🇰🇮🇱🇱) are letters in disguise.
for _i in range(26):
    _CONFUSABLES[chr(0x1F1E6 + _i)] = chr(ord("a") + _i)

_DROP_CATEGORIES = frozenset({"Cf", "Mn", "Me"})  # zero-width, bidi, combining (zalgo)
_FOLD_CACHE: dict[str, str] = {}


def fold_char(char: str) -> str:
    """One original character -> its folded form ('' when it carries no letter)."""
    cached = _FOLD_CACHE.get(char)
    if cached is not None:
        return cached
    out = _fold_uncached(char)
    if len(_FOLD_CACHE) < 200_000:  # bounded: adversarial input cannot grow it forever
        _FOLD_CACHE[char] = out
    return out


def _fold_uncached(char: str) -> str:
    if char in _CONFUSABLES:
        return _CONFUSABLES[char]
    category = unicodedata.category(char)
    if category in _DROP_CATEGORIES:
        return ""
    if category == "Cs":  # lone surrogate: UTF-8 cannot encode it, RE2 would raise
        return "\ufffd"
    if category == "Cc":
        return char if char in "\t\n\r" else " "
    pieces = []
    for ch in unicodedata.normalize("NFKC", char).casefold():
        if ch in _CONFUSABLES:
            pieces.append(_CONFUSABLES[ch])
            continue
        for base in unicodedata.normalize("NFD", ch):
            if unicodedata.category(base) not in _DROP_CATEGORIES:
                pieces.append(_CONFUSABLES.get(base, base))
    return "".join(pieces)


class _FoldTable(dict[int, str]):
    """`str.translate` table filled on first use, so translation runs in C."""

    def __missing__(self, key: int) -> str:
        value = fold_char(chr(key))
        if len(value) != 1:
            _ODD.note(chr(key))
        if len(self) < 200_000:
            self[key] = value
        return value


class _OddCharacters:
    """The characters seen so far whose folded form is not exactly one character
    (dropped marks, ligatures, "œ"), as one regex: a text without any of them folds
    character for character, so its view needs no index map.

    Filled by the fold table as it meets characters; past `_ODD_LIMIT` of them (only
    adversarial input gets there) `search` answers "maybe" for every text and the
    caller checks each character instead.
    """

    def __init__(self) -> None:
        self._chars: set[str] = set()
        self._program: re.Pattern[str] | None = None

    def note(self, char: str) -> None:
        if char not in self._chars:
            self._chars.add(char)
            self._program = None

    @property
    def overflowing(self) -> bool:
        return len(self._chars) > _ODD_LIMIT

    def program(self) -> re.Pattern[str]:
        program = self._program
        if program is None:
            body = "".join(sorted(re.escape(c) for c in self._chars))
            program = self._program = re.compile(f"[{body}]" if body else "(?!)")
        return program


_ODD_LIMIT = 4_096
_ODD = _OddCharacters()
_TABLE = _FoldTable()

# Leetspeak: only decoded inside a word that also has letters ("k1ll", "$hit", "b!tch"),
# never in numbers, times or phone numbers.  '@', '!' and '|' only between two word
# characters so "@sam" and "help!" keep their meaning.
_LEET = {
    "0": "o",
    "1": "i",
    "3": "e",
    "4": "a",
    "5": "s",
    "7": "t",
    "8": "b",
    "9": "g",
    "$": "s",
    "@": "a",
    "!": "i",
    "|": "l",
    "€": "e",
}
_LEET_EDGE_SAFE = frozenset("0134579$8€")
# The helpers below use Python `re` where the pattern is a single character class or a
# fixed-length window (no nested quantifier, so matching is linear; timed on adversarial
# input in tests/test_rules_normalize.py).  Python `re` is several times cheaper per
# call than the RE2 wrapper, and these run on every comment.
_LEET_HINT = re.compile(
    r"[a-z][0-9$@!|€]+[a-z]|(?<![a-z0-9])[0-9$€]+[a-z]|[a-z][0-9$€]+(?![a-z0-9])"
)
# every _LEET_HINT match holds one of these pairs; the gate is twice as fast to rule out
_LEET_GATE = re.compile(r"[a-z][0-9$@!|€]|[0-9$€][a-z]")
_LEET_WORD = re.compile(r"[a-z0-9$@!|€]+")
# a number with a unit, an ordinal or a French time is not leetspeak: "15h30", "3e",
# "1er", "8th", "5pm", "10km" keep their digits
_NOT_LEET = re.compile(
    r"[0-9]{1,4}(?:h[0-9]{0,2}|e|er|re|eme|ieme|st|nd|rd|th|am|pm|min|km|kg|cm|mm|ml|k)"
)
_VOWELS = frozenset("aeiouy")
# Runs of three or more of the same letter.  Python `re` is used because RE2 has no
# back-references; the pattern has no nested quantifier, so it is linear (see the
# adversarial timing test in tests/test_rules_normalize.py).
_RUN = re.compile(r"([a-z])\1\1+")
# Three or more single letters separated by one space or dot, or all by slashes: "k i l l",
# "s.u.i.c.i.d.e", "s/u/i/c/i/d/e" (not "w/o a": a slash and a space do not mix).
_SPACED = re2.compile(
    r"(?:^|[^a-z0-9'])((?:[a-z][ ._*\-]){2,}[a-z]|(?:[a-z]/){2,}[a-z])(?:[^a-z0-9']|$)")
_SPACED_THREE = r"(?:[a-z][ ._*\-][a-z][ ._*\-][a-z]|[a-z]/[a-z]/[a-z])"  # the shortest _SPACED
_SPACED_HINT = re.compile(rf"(?<![a-z0-9']){_SPACED_THREE}(?![a-z0-9'])")
_SEPARATORS = frozenset(" ._*/-")

# The three gates above as one RE2 Set, so a comment that needs none of the steps (most
# do not) is ruled out in one pass over its bytes instead of three Python `re`
# searches, which cost a sixth of the engine's instructions.  Each pattern is its gate
# without the look-arounds and back-references RE2 lacks; a property test checks that
# they agree with the `re` gates (case-sensitive as they are: a case-insensitive `[a-z]`
# would also take the Kelvin sign and the long s).
_GATE_LEET, _GATE_RUN, _GATE_SPACED = 0, 1, 2
_gates = set_matcher(search_set((
    _LEET_GATE.pattern,
    "|".join(letter * 3 for letter in "abcdefghijklmnopqrstuvwxyz"),
    rf"(?:^|[^a-z0-9']){_SPACED_THREE}(?:[^a-z0-9']|$)",
), case_sensitive=True))  # which of the leetspeak, run and spaced-letter gates a folded text passes
_JOINABLE = frozenset("bcdefghjklmnpqrstvwxz")  # letters that are not one-letter words


class View(NamedTuple):
    """A normalised string and, per character, the index of its original character.

    A named tuple rather than a frozen dataclass: as immutable, and half the cost to
    build, which every comment pays twice (here and in `Normalized`).
    """

    text: str
    starts: list[int] | None  # None: identity (character i came from original index i)
    original_length: int

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Map a [start, end) span of this view to a span of the original text.

        The end extends over characters that were dropped after the last matched one
        (combining accents, zero-width characters, squashed letters) so the evidence
        shows the whole original word.
        """
        if self.starts is None:
            return start, min(end, self.original_length)
        n = len(self.text)
        start = max(0, min(start, n))
        end = max(start, min(end, n))
        o_start = self.starts[start] if start < n else self.original_length
        if end >= n:
            o_end = self.original_length
            # do not swallow trailing text after the last kept character
            if end > start and n:
                o_end = _extend(self.starts, end - 1, self.original_length)
        else:
            o_end = max(self.starts[end], self.starts[end - 1] + 1 if end > start else o_start)
        return o_start, max(o_start, o_end)


def _extend(starts: list[int], last: int, original_length: int) -> int:
    return original_length if last == len(starts) - 1 else starts[last + 1]


class Normalized(NamedTuple):
    """The two normalised views of one original text."""

    original: str
    folded: View
    text: View


def normalize(original: str) -> Normalized:
    """Fold, decode leetspeak, squash runs and join spaced letters; never raises."""
    folded = _fold(original)
    text = folded.text
    gates = _gates(text)
    if not gates:  # most comments: nothing to decode, squash or join
        return Normalized(original, folded, folded)
    starts = folded.starts
    decoded = changed = False
    if _GATE_LEET in gates and _LEET_HINT.search(text):
        decoded_text = _decode_leet(text)
        if decoded_text != text:  # "15h30", "8th": the view stays the folded one
            text = decoded_text
            decoded = True  # decoding can make a run ("f000ck") or spaced letters: ask again
    if _RUN.search(text) if decoded else _GATE_RUN in gates:
        text, starts = _squash(text, starts)
        changed = True
    spaced = (_SPACED_HINT.search(text) if decoded or changed
              else _GATE_SPACED in gates)
    if spaced and _SPACED.search(text):
        text, starts = _join_spaced(text, starts)
        changed = True
    if not changed and text is folded.text:
        return Normalized(original, folded, folded)
    return Normalized(original, folded, View(text, starts, len(original)))


def _fold(original: str) -> View:
    if original.isascii():
        return View(original.lower(), None, len(original))
    translated = original.translate(_TABLE)  # notes every odd character first
    if _ODD.overflowing:
        return _fold_each(original)
    odd = _ODD.program()
    if not odd.search(original):
        return View(translated, None, len(original))
    # a few odd characters (an emoji's variation selector, a combining accent): the
    # index map is ranges between them
    starts: list[int] = []
    pos = 0
    for m in odd.finditer(original):
        i = m.start()
        starts.extend(range(pos, i))
        starts.extend([i] * len(_TABLE[ord(original[i])]))
        pos = i + 1
    starts.extend(range(pos, len(original)))
    return View(translated, starts, len(original))


def _fold_each(original: str) -> View:
    """`_fold` one character at a time (for when the odd characters are too many)."""
    out: list[str] = []
    starts: list[int] = []
    for index, char in enumerate(original):
        piece = _TABLE[ord(char)]
        if piece:
            out.append(piece)
            starts.extend([index] * len(piece))
    text = "".join(out)
    identity = len(starts) == len(original) and all(i == s for i, s in enumerate(starts))
    return View(text, None if identity else starts, len(original))


def _decode_leet(text: str) -> str:
    chars = list(text)
    for m in _LEET_WORD.finditer(text):
        word = m.group()
        # letters only: nothing to decode (most words); no letter: a number or symbols
        if word.isalpha() or not any("a" <= c <= "z" for c in word) or _NOT_LEET.fullmatch(word):
            continue
        begin, end = m.start(), m.end()
        for i in range(begin, end):
            c = chars[i]
            if c not in _LEET:
                continue
            if c in _LEET_EDGE_SAFE or (
                begin < i < end - 1 and chars[i - 1].isalnum() and chars[i + 1].isalnum()
            ):
                chars[i] = _LEET[c]
    return "".join(chars)


def _squash(text: str, starts: list[int] | None) -> tuple[str, list[int]]:
    """Runs of 3+ letters: vowels to one ("fuuuck"), consonants to two ("killlll")."""
    out: list[str] = []
    new_starts: list[int] = []
    pos = 0
    for m in _RUN.finditer(text):
        _copy(text, starts, pos, m.start(), out, new_starts)
        letter = m.group(1)
        keep = 1 if letter in _VOWELS else 2
        for k in range(keep):
            out.append(letter)
            new_starts.append(starts[m.start() + k] if starts is not None else m.start() + k)
        pos = m.end()
    _copy(text, starts, pos, len(text), out, new_starts)
    return "".join(out), new_starts


def _join_spaced(text: str, starts: list[int] | None) -> tuple[str, list[int]]:
    out: list[str] = []
    new_starts: list[int] = []
    pos = 0
    for m in _SPACED.finditer(text):
        begin, end = m.span(1)
        if not (_JOINABLE & set(text[begin:end])):
            continue  # "il y a à" is French, not an evasion
        _copy(text, starts, pos, begin, out, new_starts)
        for i in range(begin, end):
            if text[i] not in _SEPARATORS:
                out.append(text[i])
                new_starts.append(starts[i] if starts is not None else i)
        pos = end
    _copy(text, starts, pos, len(text), out, new_starts)
    return "".join(out), new_starts


def _copy(
    text: str, starts: list[int] | None, begin: int, end: int, out: list[str], new_starts: list[int]
) -> None:
    out.append(text[begin:end])
    new_starts.extend(starts[begin:end] if starts is not None else range(begin, end))


def fold_pattern(pattern: str) -> str:
    """Fold the non-ASCII characters of a rule pattern the way text is folded.

    ASCII is left alone (case-insensitive matching handles it, and lower-casing would
    turn ``\\B`` into ``\\b``); accented letters lose their accent so ``mourir`` and
    ``été`` in a rule match ``ÉTÉ`` and ``ete`` in a comment.
    """
    if pattern.isascii():
        return pattern
    return "".join(c if c.isascii() else fold_char(c) for c in pattern)
