"""Property tests: the engine never crashes and stays fast on hostile text."""

from __future__ import annotations

import json
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.model import Subject, SubjectKind
from monitor.rules import RuleEngine, patterns
from monitor.rules.detectors import Context
from monitor.rules.normalize import normalize

ENGINE = RuleEngine.shipped()
# load the models (profanity, crisis weights) now, not inside the first timed example
ENGINE.evaluate(Subject(kind=SubjectKind.COMMENT, account_id="a", school_id="s", language="en",
                        text="warm up the models with a sentence of some length"))
KINDS = [SubjectKind.COMMENT, SubjectKind.OWN_POST, SubjectKind.TAG]

ZALGO = st.text(alphabet=st.characters(min_codepoint=0x300, max_codepoint=0x36F), max_size=30)
HOSTILE = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec=None, categories=["Cs", "Cf", "Mn", "So", "Co"]),
            max_size=200),
    st.lists(st.sampled_from(["\ud83d\ude02", "\ud800", "\u202e", "\u2066", "\u200b", "k1ll",
                              "mysеlf", "ω", "ا", "я", "你", "é", "\u0301", "705", "@", " "]),
             max_size=80).map("".join),
    st.builds(lambda a, z: "".join(c + z for c in a), st.text(max_size=40), ZALGO),
)


def _check(text: str, kind: SubjectKind = SubjectKind.COMMENT) -> None:
    subject = Subject(kind=kind, account_id="a", school_id="s", language="en", text=text)
    for d in ENGINE.evaluate(subject):
        if d.evidence_start is not None and d.evidence_end is not None:
            assert 0 <= d.evidence_start <= d.evidence_end <= len(text)


@settings(max_examples=150, deadline=500, suppress_health_check=[HealthCheck.too_slow])
@given(HOSTILE, st.sampled_from(KINDS))
def test_never_crashes(text: str, kind: SubjectKind) -> None:
    _check(text, kind)


@settings(max_examples=150, deadline=200)
@given(st.text(max_size=200))
def test_spans_are_within_the_original(text: str) -> None:
    norm = normalize(text)
    for view in (norm.text, norm.folded):
        for start in range(0, len(view.text) + 1, 7):
            s, e = view.span(start, len(view.text))
            assert 0 <= s <= e <= len(text)


def test_edge_texts() -> None:
    for text in ["", " ", "\ud83d\ude02" * 50, "\u202ekill myself\u202c", "\ud800\udfff\ud800",
                 "Ζ̶̢͙̙a̸l̵g̴o̷ kill myself", "مرحبا kill myself שלום", "\x00\x01\x7f"]:
        _check(text)


def test_one_megabyte_in_bounded_time() -> None:
    text = ("Great concert! k1ll mysеlf 705-555-0143 fuuuck a b c d é\u200b " * 20_000)[:1_000_000]
    start = time.perf_counter()
    _check(text)
    assert time.perf_counter() - start < 10.0


_BLANKED = patterns.re2.compile(r"kill|die|\bab\b|x*", patterns.options())


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="kildeabx é\u200b", max_size=40))
def test_blank_is_the_wrappers_sub(text: str) -> None:
    # the idiom and profanity masks use patterns.blank instead of the slower sub;
    # empty matches ("x*") included, they must agree everywhere
    assert patterns.blank(_BLANKED, text) == _BLANKED.sub(" ", text)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="kildeabx é$\u200b😀", max_size=40) | st.text(max_size=30),
       st.sampled_from([r"kill|die|\bab\b|x*", r"a|", "$", r"\bk\w*", r"é\w?|😀", r"\S"]))
def test_spans_are_the_wrappers_spans(text: str, pattern: str) -> None:
    # patterns.spans calls RE2 directly (no Python match objects) and counts UTF-8
    # offsets back into characters itself; it must give what the public API gives,
    # empty matches and multi-byte characters included
    program = patterns.re2.compile(pattern, patterns.options())
    public = program.finditer(text.encode("ascii") if text.isascii() else text)
    assert list(patterns.spans(program, text)) == [m.span() for m in public]


_CORPUS_LINES = [json.loads(line)["text"]
                 for name in ("en", "fr")
                 for line in (Path(__file__).parent / "corpus" / f"{name}.jsonl")
                 .read_text(encoding="utf-8").splitlines() if line.strip()]


@given(st.sampled_from(_CORPUS_LINES) | st.text(max_size=80), st.sampled_from(["en", "fr"]))
@settings(max_examples=300, deadline=None)
def test_the_set_pass_hints_never_change_what_a_rule_finds(text: str, language: str) -> None:
    # a detector may skip its own regex when the engine's Set pass saw none of its hint
    # patterns; each rule must then find exactly what it finds without the hints
    subject = Subject(kind=SubjectKind.COMMENT, account_id="a", school_id="s",
                      language=language, text=text)
    hinted, rules = ENGINE._prepare(Context(subject))
    assert hinted.ruled_out is not None
    for compiled in rules:
        if compiled.detector.remembers:  # stateful: a second look is not the same look
            continue
        assert compiled.detector.detect(hinted) == compiled.detector.detect(Context(subject))
