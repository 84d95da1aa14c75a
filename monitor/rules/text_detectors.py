"""Pattern detectors over the normalised text: phrases, targeted insults, tone lexicons.

Exclusions are local on purpose: an idiom only cancels the phrase it overlaps.  A
global "skip the comment if it contains an idiom" would let ``this homework is killing
me, honestly I want to kill myself`` through, and duty of care cannot afford that.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from monitor.rules import patterns
from monitor.rules.detectors import Context, Detector, Match, Params, Prefilter, RuleEnv, ViewName
from monitor.rules.patterns import check_all


class PhraseParams(Params):
    patterns: list[str] = Field(min_length=1)
    exclude: list[str] = []
    score: float = Field(default=1.0, ge=0.0, le=1.0)
    # "folded" keeps digits inside words ("GA123456", "jake#4432", "D1234-56789"), which the
    # default "text" view decodes as leetspeak; identifiers are matched there
    view: ViewName = "text"

    _check = field_validator("patterns", "exclude")(check_all)


class PhraseDetector(Detector, name="phrases"):
    """RE2 phrase patterns on normalised text; exclusions cancel only the phrase they overlap."""

    Params = PhraseParams

    def __init__(self, params: BaseModel, env: RuleEnv | None = None) -> None:
        super().__init__(params, env)
        assert isinstance(params, PhraseParams)
        self._params = params
        self._program = patterns.compile_any(params.patterns)
        self._exclude = patterns.compile_any(params.exclude) if params.exclude else None

    def prefilter(self) -> Prefilter:
        return Prefilter(self._params.view,
                         tuple(patterns.rewrite(p) for p in self._params.patterns))

    def detect(self, ctx: Context) -> list[Match]:
        view = ctx.view(self._params.view)
        span = patterns.first_unexcluded(self._program, self._exclude, view.text)
        return [ctx.match(view, *span, self._params.score)] if span else []


class TargetedParams(Params):
    targets: list[str] = Field(min_length=1)
    terms: list[str] = Field(min_length=1)
    max_gap: int = Field(default=3, ge=0, le=8)
    exclude: list[str] = []
    score: float = Field(default=1.0, ge=0.0, le=1.0)

    _check = field_validator("targets", "terms", "exclude")(check_all)


class TargetedDetector(Detector, name="targeted"):
    """A person-target (you, @name, she) followed within max_gap words by an insult term."""

    Params = TargetedParams

    def __init__(self, params: BaseModel, env: RuleEnv | None = None) -> None:
        super().__init__(params, env)
        assert isinstance(params, TargetedParams)
        self._params = params
        gap = rf"(?:[^a-z0-9]+[a-z0-9']+){{0,{params.max_gap}}}"
        self._source = (
            rf"(?:^|[^a-z0-9])(?:{patterns.alternation(params.targets)}){gap}"
            rf"[^a-z0-9]+(?:{patterns.alternation(params.terms)})(?:[^a-z0-9]|$)"
        )
        self._program = patterns.program(self._source)
        self._exclude = patterns.compile_any(params.exclude) if params.exclude else None

    def prefilter(self) -> Prefilter:
        return Prefilter("text", tuple(patterns.rewrite(p) for p in self._params.terms))

    def detect(self, ctx: Context) -> list[Match]:
        view = ctx.norm.text
        span = patterns.first_unexcluded(self._program, self._exclude, view.text)
        if span is None:
            return []
        start, end = span
        text = view.text
        # trim the one boundary character each side that the pattern consumed
        if start < end and not text[start].isalnum() and text[start] != "@":
            start += 1
        if end > start and not text[end - 1].isalnum():
            end -= 1
        return [ctx.match(view, start, end, self._params.score)]


class LexiconParams(Params):
    terms: dict[str, float] = Field(min_length=1)
    threshold: float = Field(default=1.0, gt=0.0)
    exclude: list[str] = []

    @field_validator("terms")
    @classmethod
    def _check_terms(cls, value: dict[str, float]) -> dict[str, float]:
        check_all(list(value))
        return value

    _check = field_validator("exclude")(check_all)


class LexiconDetector(Detector, name="lexicon"):
    """Weighted word list (tone): fires when the summed weights reach the threshold."""

    Params = LexiconParams

    def __init__(self, params: BaseModel, env: RuleEnv | None = None) -> None:
        super().__init__(params, env)
        assert isinstance(params, LexiconParams)
        self._params = params
        self._terms = [(patterns.compile_any([t]), w) for t, w in params.terms.items()]
        self._exclude = patterns.compile_any(params.exclude) if params.exclude else None

    def prefilter(self) -> Prefilter:
        return Prefilter("text", tuple(patterns.rewrite(t) for t in self._params.terms))

    def detect(self, ctx: Context) -> list[Match]:
        view = ctx.norm.text
        total = 0.0
        first: tuple[int, int] | None = None
        for program, weight in self._terms:
            span = patterns.first_unexcluded(program, self._exclude, view.text)
            if span is None:
                continue
            total += weight
            if first is None or span[0] < first[0]:
                first = span
        if first is None or total < self._params.threshold:
            return []
        return [ctx.match(view, *first, min(1.0, total / (2 * self._params.threshold)))]
