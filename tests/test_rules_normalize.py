"""Normalisation: evasions undone, spans mapped back to the original, linear time."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.rules import normalize as normalize_module
from monitor.rules.normalize import fold_pattern, normalize


def _span_of(text: str, needle: str) -> str:
    norm = normalize(text).text
    start = norm.text.index(needle)
    s, e = norm.span(start, start + len(needle))
    return text[s:e]


@pytest.mark.parametrize(
    ("original", "normalised"),
    [
        ("K1ll MYSELF", "kill myself"),
        ("k\u200bi\u200cl\u200dl", "kill"),
        ("kіll mysеlf", "kill myself"),  # Cyrillic і and е
        ("ᴋɪʟʟ", "kill"),
        ("𝐤𝐢𝐥𝐥", "kill"),
        ("ｋｉｌｌ", "kill"),
        ("fuuuuuck", "fuck"),
        ("killllll", "kill"),
        ("k i l l", "kill"),
        ("s.u.i.c.i.d.e", "suicide"),
        ("s/u/i/c/i/d/e", "suicide"),
        ("$hit", "shit"),
        ("b!tch", "bitch"),
        ("Élève À L’ÉCOLE", "eleve a l'ecole"),
        ("e\u0301le\u0300ve", "eleve"),
        ("\u202ekill\u202c", "kill"),
        ("z̷̢̛a̴l̶g̵o̸", "zalgo"),
    ],
)
def test_evasions_are_undone(original: str, normalised: str) -> None:
    assert normalize(original).text.text == normalised


@pytest.mark.parametrize(
    "text",
    ["help!!", "call 705-555-0143 at 5pm", "jo@school.ca", "il y a à faire", "grade 7 rocks",
     "w/o a doubt", "and/or"],
)
def test_digits_punctuation_and_french_survive(text: str) -> None:
    folded = normalize(text).folded.text
    assert folded == text.lower().replace("à", "a")
    assert normalize("help!!").text.text == "help!!"
    assert normalize("il y a à faire").text.text == "il y a a faire"


def test_spans_point_into_the_original() -> None:
    assert _span_of("I want to k\u200bill mysеlf", "kill myself") == "k\u200bill mysеlf"
    assert _span_of("so fuuuuuck this", "fuck") == "fuuuuuck"
    assert _span_of("k i l l me", "kill") == "k i l l"
    assert _span_of("ÉCOLE", "ecole") == "ÉCOLE"
    assert _span_of("e\u0301cole", "ecole") == "e\u0301cole"
    assert _span_of("ﬁnish", "finish") == "ﬁnish"  # ligature expands to two letters


def test_lone_surrogates_are_made_encodable() -> None:
    norm = normalize("a\ud800b")
    norm.text.text.encode("utf-8")
    norm.folded.text.encode("utf-8")


def test_fold_pattern_keeps_regex_escapes() -> None:
    assert fold_pattern(r"\bÉTÉ\B\S") == r"\beTe\B\S"  # ASCII untouched: case-insensitive RE2


@pytest.mark.parametrize(
    "text",
    [
        "a " * 200_000,  # spaced-letter joining
        "a1" * 200_000,  # leetspeak decoding
        "aaa" * 200_000,  # run squashing
        "k.i." * 100_000 + "x",
        "\u200b" * 300_000,
        "é\u0301" * 100_000,
    ],
    ids=["spaced", "leet", "runs", "dots", "zero-width", "combining"],
)
def test_adversarial_input_is_linear(text: str) -> None:
    """The helpers using Python `re` must not backtrack: 400 kB in well under a second."""
    start = time.perf_counter()
    normalize(text)
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize("text", ["à 15h30", "en 3e année", "le 1er mai", "the 8th", "at 5pm",
                                  "10km run"])
def test_times_ordinals_and_units_are_not_leetspeak(text: str) -> None:
    folded = normalize(text).folded.text
    assert normalize(text).text.text == folded  # digits kept: "15h30" is not "isheo"
    assert normalize("h4te u k1ll").text.text == "hate u kill"


@given(st.text(max_size=60))
@settings(max_examples=300, deadline=None)
def test_the_index_map_agrees_with_folding_each_character(text: str) -> None:
    # the fast path builds the map from the positions of the characters whose folded
    # form is not one character; it must be exactly the character-by-character map
    # ("é" first: ASCII text takes another path, a lower() with no map)
    text = "é" + text
    fast, each = normalize_module._fold(text), normalize_module._fold_each(text)
    assert (fast.text, fast.starts) == (each.text, each.starts)


def test_a_folded_view_maps_back_around_dropped_and_doubled_characters() -> None:
    text = "bravo 👍\ufe0f l'équipe, cœur"
    view = normalize(text).folded
    assert view.text == "bravo 👍 l'equipe, coeur"
    start = view.text.index("coeur")
    assert text[slice(*view.span(start, start + 5))] == "cœur"
    start = view.text.index("l'equipe")
    assert text[slice(*view.span(start, start + 8))] == "l'équipe"


@given(st.text(alphabet=st.sampled_from(list("akilsue 1034$@!|.-_*'€xz\né")), max_size=30)
       | st.text(max_size=30))
@settings(max_examples=500, deadline=None)
def test_the_re2_gates_agree_with_the_re_gates(text: str) -> None:
    # one RE2 Set stands in for three Python `re` searches; a text must pass exactly
    # the gates the `re` patterns (with their look-arounds and back-reference) pass
    text = text.lower()
    expected = {i for i, gate in enumerate((normalize_module._LEET_GATE, normalize_module._RUN,
                                            normalize_module._SPACED_HINT))
                if gate.search(text)}
    assert set(normalize_module._gates(text)) == expected
