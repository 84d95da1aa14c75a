"""Second readings of a comment's folded text for the personal-information detectors.

Why: people who post a phone number, a date of birth or an address where it should not
be often write it so a filter will not see it: "4l6-SSS-Ol23", "o1/1o/2o17",
"416^555^0186", "d a n n y p 1 2 at o u t l o o k dot com", "six cent treize, cinq
cinq cinq…".  The detectors match their patterns on the folded text first, then on these
readings.  `digitized` and `digit_separators` keep the text's length, so a match maps
back to the same offsets; `despaced` returns its own map.  Each reads at most the first
`SECOND_READING_CHARS` characters.  The Python `re` patterns here have fixed-width
lookarounds and no nested quantifier, so they are linear like the RE2 ones.
"""

from __future__ import annotations

import re

# Letters that stand in for digits ("4l6-SSS-Ol23", "DOB o1/1o/2o17", "OEN 3O4 l92 876"):
# inside a token that also holds a digit, or a 3-4 letter token between two digit
# groups ("416 sss 0123"), they are read as digits.  Same length, so spans map back.
_LOOKALIKE = str.maketrans("olisbz", "011582")
LOOKALIKE_HINT = r"[0-9][olisbz]|[olisbz][0-9]|[0-9][^a-z0-9\n]{1,3}[olisbz]{3}"
_LOOKALIKE_GATE = re.compile(LOOKALIKE_HINT)  # the prefilter uses the same, as RE2
_TOKEN = re.compile(r"[a-z0-9]+")
_DIGIT_LIKE = frozenset("0123456789olisbz")
SECOND_READING_CHARS = 20_000  # no phone, date or address is that far into a comment


def digitized(text: str) -> str:
    """`text` with look-alike letters read as digits where they sit among digits (the
    first `SECOND_READING_CHARS` characters; `text` itself when there is nothing to read)."""
    if not _LOOKALIKE_GATE.search(text):
        return text
    text = text[:SECOND_READING_CHARS]
    tokens = [(m.start(), m.end()) for m in _TOKEN.finditer(text)]
    chars = list(text)
    for i, (start, end) in enumerate(tokens):
        word = text[start:end]
        if not _DIGIT_LIKE.issuperset(word) or word.isdigit():
            continue
        among_digits = any(c.isdigit() for c in word) or (
            3 <= len(word) <= 4 and 0 < i < len(tokens) - 1
            and _digit_group(text, tokens[i - 1], start)
            and _digit_group(text, tokens[i + 1], end, after=True))
        if among_digits:
            chars[start:end] = word.translate(_LOOKALIKE)
    return "".join(chars)


def _digit_group(text: str, token: tuple[int, int], edge: int, after: bool = False) -> bool:
    """Whether `token` holds a digit and only separators lie between it and `edge`."""
    start, end = token
    gap = text[edge:start] if after else text[end:edge]
    return (len(gap) <= 3 and not any(c.isalnum() for c in gap)
            and any(c.isdigit() for c in text[start:end]))


# "416^555^0186", "613 + 555 + 0176", "289\555\0177", "905|555|0110", "647:555:0117",
# a line break inside a number: separators the phone matcher does not know, between
# digit groups only ("3:15" stays a time), made dashes or spaces (same length)
_ODD_SEPARATOR = re.compile(r"(?<=[0-9]{3})(\s?)[~^|:+\\](\s?)(?=[0-9]{3})")
_LINE_BREAK = re.compile(r"(?<=[0-9\-])\n(?=[0-9])")


def digit_separators(text: str) -> str:
    if "\n" in text:
        text = _LINE_BREAK.sub(" ", text)
    return _ODD_SEPARATOR.sub(lambda m: f"{m.group(1)}-{m.group(2)}", text)


# Letters spaced out one at a time ("4 0 2  w i l l o w  l a n e", "d a n n y p 1 2 at
# o u t l o o k dot com"): single spaces between single characters dropped, runs of
# spaces made one; with a map back to the original offsets
_SPACED_OUT = re.compile(r"(?:(?<![a-z0-9])[a-z0-9] ){3,}[a-z0-9](?![a-z0-9])")
SPACED_OUT_HINT = r"(?:^|[^a-z0-9])(?:[a-z0-9] ){3,}[a-z0-9](?:[^a-z0-9]|$)"  # RE2


def _run_boundary(text: str, i: int, j: int) -> bool:
    """Whether the space text[i:j] ends spaced-out digits that spaced-out letters follow
    ("1 7 3 h i l l c r e s t" is "173 hillcrest", a house number and its street): two or
    more of each.  Letters then digits stay joined ("d a n n y p 1 2" is a handle), and
    so does one odd character among digits ("5 5 5 o 1 4 3", a zero written as "o")."""
    return (text[i - 1].isdigit() and text[j].isalpha()
            and i >= 3 and text[i - 2] == " " and text[i - 3].isdigit()
            and j + 2 < len(text) and text[j + 1] == " " and text[j + 2].isalpha())


def despaced(text: str) -> tuple[str, list[int]] | None:
    """`text` with spaced-out letters joined, and the original index of each character;
    None when nothing is spaced out."""
    if not _SPACED_OUT.search(text):
        return None
    text = text[:SECOND_READING_CHARS]
    out: list[str] = []
    starts: list[int] = []
    n = len(text)
    i = 0
    while i < n:
        c = text[i]
        if c == " ":
            j = i
            while j < n and text[j] == " ":
                j += 1
            single_before = i > 0 and text[i - 1].isalnum() and (i < 2 or not text[i - 2].isalnum())
            single_after = (j < n and text[j].isalnum()
                            and (j + 1 >= n or not text[j + 1].isalnum()))
            if not (j - i == 1 and single_before and single_after) or _run_boundary(text, i, j):
                out.append(" ")
                starts.append(i)
            i = j
            continue
        out.append(c)
        starts.append(i)
        i += 1
    return "".join(out), starts


# Digits spelled out to get past a platform's filter: "nine oh five, 555, zero one six
# two", "647 five5five 0102" (English and French digit words; ten tokens at least)
_DIGIT_WORDS = {
    "zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "un": "1", "deux": "2",
    "trois": "3", "quatre": "4", "cinq": "5", "sept": "7", "huit": "8", "neuf": "9",
}
# Tens and teens, read as whole numbers: "six cent treize, cinq cinq cinq, zéro cent
# quarante-sept" is 613 555 0147, "four one six, five fifty-five, oh one two four" is
# 416 555 0124 ("quatre-vingt" is one token: 80)
_NUMBER_WORDS = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
    "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
    "ninety": 90, "dix": 10, "onze": 11, "douze": 12, "treize": 13, "quatorze": 14,
    "quinze": 15, "seize": 16, "vingt": 20, "trente": 30, "quarante": 40, "cinquante": 50,
    "soixante": 60, "quatre-vingt": 80, "quatre-vingts": 80, "quatre vingt": 80,
}
_HUNDREDS = frozenset(("hundred", "cent", "cents"))
DIGIT_TOKEN = "[0-9]|" + "|".join(sorted(_DIGIT_WORDS, key=len, reverse=True))
_REPEATS = {"double": 2, "triple": 3}  # "triple five" is 555
SPELLED_TOKEN = ("|".join(sorted(_NUMBER_WORDS, key=len, reverse=True)) + "|"
                  + DIGIT_TOKEN + "|double|triple|hundred|cents?")


def spelled_digits(tokens: list[str]) -> str:
    """The digits of spelled-out tokens: "double"/"triple" repeat the next one; tens,
    teens and hundreds make whole numbers ("fifty-five" is 55, "six cent treize" 613,
    "quatre-vingt-dix" 90), which are written one after the other."""
    out: list[str] = []
    repeat = 1
    number: int | None = None  # a number being built from tens and hundreds
    open_tens = False  # the number ends in a ten a unit may still join ("fifty" + "five")
    after_hundred = False

    def flush() -> None:
        nonlocal number, open_tens, after_hundred
        if number is not None:
            out.append(str(number))
        number, open_tens, after_hundred = None, False, False

    for token in tokens:
        token = token.replace(" ", "-")
        if token in _REPEATS:
            flush()
            repeat = _REPEATS[token]
            continue
        if token in _HUNDREDS:
            number = (number or 1) * 100 if number != 0 else 100
            open_tens, after_hundred = False, True
            continue
        value = _NUMBER_WORDS.get(token)
        if value is not None:
            if number is not None and (after_hundred or (open_tens and value < 20)):
                number += value  # "cent quarante", "soixante-dix", "quatre-vingt-dix"
                open_tens = value >= 20 and after_hundred
                after_hundred = False
            else:
                flush()
                number, open_tens = value, value >= 20
            continue
        digit = _DIGIT_WORDS.get(token, token)
        if not digit.isdigit():
            continue  # not a number word (the token pattern should not let one through)
        if number is not None and (open_tens or after_hundred) and digit != "0":
            number += int(digit)  # "fifty-five", "neuf cent cinq"
            open_tens = after_hundred = False
            continue
        flush()
        if digit == "0" or repeat > 1:
            out.append(digit * repeat)
        else:
            number = int(digit)  # may be followed by "hundred"
        repeat = 1
    flush()
    return "".join(out)
