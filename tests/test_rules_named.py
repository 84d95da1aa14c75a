"""The named-person detector: a name found by its capitals, a private topic, both needed."""

from __future__ import annotations

import pytest

from monitor.model import Subject, SubjectKind
from monitor.rules.detectors import Context
from monitor.rules.named import NamedPersonDetector, NamedPersonParams

PARAMS = NamedPersonParams(
    topics=[r"\b(?:iep|suspended|lunch account)\b"],
    not_names=["Congrats", "Happy", "Monday", "Grade"],
    exclude=[r"\biep (?:night|info session)\b"],
)
DETECTOR = NamedPersonDetector(PARAMS)


def _find(text: str, detector: NamedPersonDetector = DETECTOR) -> str | None:
    """The evidence (the name, as posted) or None."""
    ctx = Context(Subject(kind=SubjectKind.COMMENT, account_id="a", school_id="s",
                          language="en", text=text))
    found = detector.detect(ctx)
    if not found:
        return None
    (match,) = found
    assert match.score == PARAMS.score
    assert match.start is not None and match.end is not None
    return text[match.start:match.end]


@pytest.mark.parametrize(("text", "name"), [
    ("Kevin Albright has an IEP now", "Kevin Albright"),
    ("it was Noor Al-Masri who got suspended", "Noor Al-Masri"),
    ("Declan O'Rourke owes money on his lunch account", "Declan O'Rourke"),
    ("reminder to Jasmine P. that her lunch account is overdue", "Jasmine P."),
    ("Mr. Lopes got suspended lol", "Mr. Lopes"),
    ("Ms Hoang has an IEP meeting", "Ms Hoang"),
    ("Zoé Côté a un IEP", "Zoé Côté"),
    # words that are not names are trimmed from the run, the rest is the name
    ("Congrats Marcus Dunn, even after being suspended!", "Congrats Marcus Dunn"),
    # a capitalised word before a title: the name starts at the title
    ("Isn't Mr. Lopes the one who got suspended?", "Mr. Lopes"),
    ("Dear Mrs. Wong, my son has an IEP", "Mrs. Wong"),
    ("Thanks Coach Dyer, Ali got suspended", "Coach Dyer"),
])
def test_a_named_person_with_a_private_topic_is_found(text: str, name: str) -> None:
    assert _find(text) == name


@pytest.mark.parametrize("text", [
    "Congratulations to Olivia Marsh on her solo!",  # a name, no topic
    "the kid in 4b got suspended again",  # a topic, no name (lower case)
    "Happy Monday, the lunch account portal is open",  # capitals that are not names
    "Grade Eight students: IEP reviews are next week",  # one word left after trimming
    "Kevin Albright is coming to IEP night",  # the topic is excluded
    "KEVIN ALBRIGHT HAS AN IEP",  # all capitals: no lower-case letters, no name
])
def test_a_name_or_a_topic_alone_is_not_enough(text: str) -> None:
    assert _find(text) is None


def test_text_that_utf8_cannot_encode_keeps_its_offsets() -> None:
    text = "\ud800 oops Kevin Albright has an IEP"
    assert _find(text) == "Kevin Albright"


def test_the_prefilter_is_the_topics() -> None:
    prefilter = DETECTOR.prefilter()
    assert prefilter.view == "text"
    assert len(prefilter.patterns) == len(PARAMS.topics)


@pytest.mark.parametrize(("text", "reference"), [
    ("@lily.chen.07 got suspended lol", "@lily.chen.07"),
    ("tagging @the_real_mia_k, her IEP got posted", "@the_real_mia_k"),
    ("Hailey's dad said her lunch account is empty", "Hailey's dad"),
    ("my son Tyson has an IEP now", "my son Tyson"),
    ("The Peterson kids got suspended again", "The Peterson kids"),
    ("Zainab from 7B has an IEP", "Zainab from 7B"),
    ("my friend Tasha in gr 8 got suspended", "Tasha in gr 8"),
    # given names in a list
    ("the seating chart marks who has an IEP: Liam, Sana and Oscar", "Liam, Sana"),
    ("Rooming list for the trip: Carter & Eli got suspended", "Carter & Eli"),
])
def test_other_references_to_one_person(text: str, reference: str) -> None:
    assert _find(text) == reference


@pytest.mark.parametrize("text", [
    "@BirchCreekPS the lunch account portal is down",  # the school's own handle
    "@school_nurse_office how do I fill in the IEP form",  # an office's handle
    "the Monday kids got suspended",  # not a name
    "Happy's family owes on the lunch account",  # "Happy" is in not_names
    "Monday and Friday the lunch account portal is down",  # a list of not_names
    "Grade 4, Room 12 got suspended from recess",  # "Grade" and "Room" are not names
])
def test_references_that_are_not_a_person(text: str) -> None:
    assert _find(text) is None


@pytest.mark.parametrize(("text", "name"), [
    ("Vice Principal Morrow got suspended", "Vice Principal Morrow"),
    ("Tyler in Rm 7 has an IEP", "Tyler in Rm 7"),
])
def test_titles_of_several_words_and_rooms(text: str, name: str) -> None:
    assert _find(text) == name


AFTER = NamedPersonDetector(NamedPersonParams(after=[r"\(?\s*\b(?:gr\.?|grade)\s?[0-9]{1,2}\b"]))


@pytest.mark.parametrize(("text", "found"), [
    ("Congratulations to Marcus Adeyemi (Gr 12) on Guelph!", "Marcus Adeyemi"),
    ("Athlete of the Week: Jasmine Okoro, Gr 11", "Jasmine Okoro"),
    ("Thank you Ms. Patel (Grade 3 teacher)", None),  # a title: staff, not a pupil
    ("Marcus Adeyemi scored twice; Grade 12 won", None),  # the grade is not his
    ("Congratulations to the Grade 12 class!", None),  # no name
])
def test_a_pupil_named_with_a_grade(text: str, found: str | None) -> None:
    assert _find(text, AFTER) == found


def test_params_need_a_topic_or_a_suffix() -> None:
    with pytest.raises(ValueError, match="topics, after, or both"):
        NamedPersonParams()
