"""Detectors: the code behind a rule; rules in the YAML packs choose one and set its params.

A detector registers itself by subclassing `Detector` with `name=...`; its
one-line docstring is the help shown by `policywatch rules detectors`, and its
`Params` model validates the `params:` table of every rule that uses it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

import phonenumbers
import re2
from pydantic import BaseModel, ConfigDict, Field

from monitor.model import Audience, Subject, SubjectKind

_DETECTORS: dict[str, type[Detector]] = {}


@dataclass(frozen=True, slots=True)
class Match:
    """Where and how strongly a detector matched; offsets index the original text."""

    score: float
    start: int | None = None
    end: int | None = None


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Detector:
    name: ClassVar[str]
    Params: ClassVar[type[BaseModel]] = Params

    def __init_subclass__(cls, name: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if name is None:
            return
        if name in _DETECTORS:
            raise TypeError(f"detector {name!r} is already registered")
        if not (cls.__doc__ or "").strip():
            raise TypeError(f"detector {cls.__name__} needs a one-line docstring")
        cls.name = name
        _DETECTORS[name] = cls

    def __init__(self, params: BaseModel) -> None:
        self.params = params

    @classmethod
    def help(cls) -> str:
        return (cls.__doc__ or "").strip().splitlines()[0]

    def detect(self, subject: Subject) -> list[Match]:
        raise NotImplementedError


def detector_class(name: str) -> type[Detector]:
    try:
        return _DETECTORS[name]
    except KeyError:
        raise KeyError(
            f"unknown detector {name!r}; known: {', '.join(sorted(_DETECTORS))}"
        ) from None


def registered_detectors() -> dict[str, type[Detector]]:
    return dict(sorted(_DETECTORS.items()))


# --- text detectors -----------------------------------------------------------------


class PhraseParams(Params):
    patterns: list[str] = Field(min_length=1)
    exclude: list[str] = []
    score: float = 1.0


def _compile(patterns: list[str]) -> Any:
    options = re2.Options()
    options.case_sensitive = False
    options.never_capture = True
    return re2.compile("|".join(f"(?:{p})" for p in patterns), options)


class PhraseDetector(Detector, name="phrases"):
    """Case-insensitive RE2 phrase patterns, with exclusion patterns for idioms."""

    Params = PhraseParams

    def __init__(self, params: BaseModel) -> None:
        super().__init__(params)
        assert isinstance(params, PhraseParams)
        self._score = params.score
        self._match = _compile(params.patterns)
        self._exclude = _compile(params.exclude) if params.exclude else None

    def detect(self, subject: Subject) -> list[Match]:
        text = subject.text
        if self._exclude is not None and self._exclude.search(text):
            return []
        m = self._match.search(text)
        if m is None:
            return []
        return [Match(self._score, m.start(), m.end())]


_EMAIL = re2.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


class EmailDetector(Detector, name="email_address"):
    """Email addresses written in the text."""

    def detect(self, subject: Subject) -> list[Match]:
        m = _EMAIL.search(subject.text)
        return [Match(1.0, m.start(), m.end())] if m else []


class PhoneParams(Params):
    region: str = "CA"


class PhoneDetector(Detector, name="phone_number"):
    """Phone numbers that the phonenumbers library accepts as possible in the region."""

    Params = PhoneParams

    def detect(self, subject: Subject) -> list[Match]:
        assert isinstance(self.params, PhoneParams)
        for m in phonenumbers.PhoneNumberMatcher(
            subject.text, self.params.region, leniency=phonenumbers.Leniency.POSSIBLE
        ):
            return [Match(1.0, m.start, m.end)]
        return []


class ProfanityParams(Params):
    threshold: float = Field(0.8, ge=0.0, le=1.0)
    words: list[str] = []


class ProfanityDetector(Detector, name="profanity"):
    """alt-profanity-check probability, plus a word list for words the model misses."""

    Params = ProfanityParams

    def __init__(self, params: BaseModel) -> None:
        super().__init__(params)
        assert isinstance(params, ProfanityParams)
        self._threshold = params.threshold
        self._words = (
            re2.compile(r"\b(?:" + "|".join(re.escape(w) for w in params.words) + r")\b", _ci())
            if params.words
            else None
        )

    def detect(self, subject: Subject) -> list[Match]:
        if self._words is not None and (m := self._words.search(subject.text)):
            return [Match(1.0, m.start(), m.end())]
        if not subject.text.strip():
            return []
        from profanity_check import predict_prob

        prob = float(predict_prob([subject.text])[0])
        return [Match(prob, 0, len(subject.text))] if prob >= self._threshold else []


def _ci() -> Any:
    options = re2.Options()
    options.case_sensitive = False
    return options


# --- event detectors ----------------------------------------------------------------


class AlwaysDetector(Detector, name="always"):
    """Fires on every subject the rule applies to (new tags and mentions, health events)."""

    def detect(self, subject: Subject) -> list[Match]:
        return [Match(1.0)]


class SettingsParams(Params):
    direction: str = Field("any", pattern="^(any|more_public)$")


class SettingsChangeDetector(Detector, name="settings_change"):
    """A monitored setting changed; with direction=more_public only when exposure grew."""

    Params = SettingsParams

    def detect(self, subject: Subject) -> list[Match]:
        assert isinstance(self.params, SettingsParams)
        if subject.kind is not SubjectKind.SETTINGS_CHANGE:
            return []
        if self.params.direction == "more_public":
            before = subject.audience_before
            after = subject.audience_after
            if before is None or after is None or after <= before:
                return []
            return [Match(1.0 if after is Audience.PUBLIC else 0.8)]
        return [Match(1.0)] if subject.changes else []
