"""The second readings the personal-information detectors match on (readings.py)."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.rules import readings

FOLDED = st.text(alphabet="0123456789olisbzaxe -.^|:+\n@", max_size=80)


@settings(max_examples=300, deadline=None)
@given(FOLDED)
def test_digitized_keeps_length_and_letters_away_from_digits(text: str) -> None:
    out = readings.digitized(text)
    assert len(out) == len(text)  # spans found in it map back unchanged
    for before, after in zip(text, out, strict=True):
        assert before == after or (before in "olisbz" and after in "011582")
    no_digits = "".join(c for c in text if not c.isdigit())
    assert readings.digitized(no_digits) == no_digits  # no digit, nothing to read as one


@pytest.mark.parametrize(("text", "read"), [
    ("text me at 4l6-sss-ol23", "text me at 416-555-0123"),
    ("dob: o1/1o/2o17, grade 1", "dob: 01/10/2017, grade 1"),
    ("is so lol 416", "is so lol 416"),  # words next to a number stay words
    ("416 boss 0123", "416 8055 0123"),  # a 3-4 letter token between two digit groups
    ("416 bliss 0123", "416 bliss 0123"),  # but not a longer word
])
def test_digitized(text: str, read: str) -> None:
    assert readings.digitized(text) == read


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab1 .@", max_size=60))
def test_despaced_maps_every_character_back(text: str) -> None:
    found = readings.despaced(text)
    if found is None:
        return
    out, starts = found
    assert len(out) == len(starts)
    assert starts == sorted(set(starts))
    for char, start in zip(out, starts, strict=True):
        assert text[start] == char


def test_despaced_joins_single_letters_and_keeps_word_gaps() -> None:
    found = readings.despaced("drop it at 4 0 2  w i l l o w  l a n e, thanks")
    assert found is not None and found[0] == "drop it at 402 willow lane, thanks"
    assert readings.despaced("a normal sentence with a b c") is None


def test_despaced_parts_a_digit_run_from_a_letter_run() -> None:
    # one space everywhere: the house number still ends where the street's name starts
    found = readings.despaced("lives at 1 7 3 h i l l c r e s t, drives")
    assert found is not None and found[0] == "lives at 173 hillcrest, drives"
    # a letter among digits (a zero written as "o") is part of the number
    found = readings.despaced("call 4 1 6 5 5 5 o 1 3 8 now")
    assert found is not None and found[0] == "call 416555o138 now"
    # letters then digits are one word: a handle or an e-mail's local part
    found = readings.despaced("d a n n y p 1 2 at o u t l o o k")
    assert found is not None and found[0] == "dannyp12 at outlook"


def test_digit_separators_only_between_digit_groups() -> None:
    text = "416^555^0186, 613 + 555 + 0176 at 3:15, 647\n555\n0121"
    out = readings.digit_separators(text)
    assert out == "416-555-0186, 613 - 555 - 0176 at 3:15, 647 555 0121"
    assert len(out) == len(text)


@pytest.mark.parametrize(("words", "digits"), [
    ("six cent treize cinq cinq cinq zero cent quarante sept", "6135550147"),
    ("four one six five fifty five oh one two four", "4165550124"),
    ("neuf cent cinq cinq cinq cinq zero un quatre-vingt deux", "9055550182"),
    ("six un trois cinq cinq cinq zero un quatre-vingt dix", "6135550190"),
    ("nine oh five double five five zero one six two", "9055550162"),
    ("triple five", "555"),
])
def test_spelled_digits(words: str, digits: str) -> None:
    assert readings.spelled_digits(words.split()) == digits


@pytest.mark.parametrize("text", [
    "4l6 " * 100_000, "a " * 200_000, "416^" * 100_000, "1\n" * 200_000, "o1" * 200_000,
])
def test_readings_stay_linear_on_adversarial_text(text: str) -> None:
    start = time.perf_counter()
    readings.digitized(text)
    readings.despaced(text)
    readings.digit_separators(text)
    assert time.perf_counter() - start < 5.0
