"""Detectors: the code behind a rule; rules in the YAML packs choose one and set its params.

A detector registers itself by subclassing `Detector` with `name=...`; the first line
of its docstring is the help shown by `policywatch rules detectors`, and its `Params`
model validates the `params:` table of every rule that uses it.

Detectors read a `Context`, not the bare subject, so the normalised text of a comment is
computed once and shared by every rule, and the batch path can hand the profanity
classifier's probabilities in precomputed.  A detector may declare `prefilter()`
patterns: the engine scans all of them in one RE2 Set pass and skips rules whose
patterns cannot match, which is what keeps the engine at tens of thousands of
comments per second.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict

from monitor.model import Subject
from monitor.rules.normalize import Normalized, View, normalize

ViewName = Literal["text", "folded"]

_DETECTORS: dict[str, type[Detector]] = {}
_BUILTIN_MODULES = (
    "monitor.rules.text_detectors",
    "monitor.rules.personal",
    "monitor.rules.named",
    "monitor.rules.profanity",
    "monitor.rules.spam",
    "monitor.rules.events",
    "monitor.rules.protected",
    "monitor.rules.text_model",
)


class Match(NamedTuple):
    """Where and how strongly a detector matched; offsets index the original text.

    A named tuple (immutable, and cheaper to build than a frozen dataclass)."""

    score: float
    start: int | None = None
    end: int | None = None


@dataclass
class RuleEnv:
    """Deployment resources some detectors need (set from `RulesSettings`).

    Kept apart from rule params because they are the board's data, not the rule's:
    the link allowlist, the protected-students index and the recent-comment window.
    """

    allowed_domains: tuple[str, ...] = ()
    public_phone_numbers: tuple[str, ...] = ()
    public_addresses: tuple[str, ...] = ()
    protected: Any = None  # monitor.rules.protected.ProtectedIndex | None
    recent: Any = None  # monitor.rules.recent.RecentWindow | None


def in_domains(host: str, domains: tuple[str, ...]) -> bool:
    """Whether `host` is one of `domains` or a subdomain of one (case and "www." aside)."""
    host = host.lower().rstrip(".").removeprefix("www.")
    return any(host == d or host.endswith("." + d) for d in domains)


class Context:
    """One subject being evaluated, with its normalised views computed on first use."""

    __slots__ = ("_norm", "inputs", "memo", "probabilities", "ruled_out", "scores", "subject")

    def __init__(
        self,
        subject: Subject,
        probabilities: dict[str, float] | None = None,
        memo: dict[str, bytes] | None = None,
    ) -> None:
        self.subject = subject
        self._norm: Normalized | None = None
        # shared by the contexts of one batch, then dropped: model scores by input text,
        # and salted token hashes (protected students) so each word is hashed once
        self.probabilities = probabilities if probabilities is not None else {}
        self.memo = memo if memo is not None else {}
        self.inputs: dict[int, str | None] = {}  # model input per detector, computed once
        self.scores: dict[str, float | None] = {}  # set by `Detector.score_batch` hooks
        # (id(detector), name) of the `Detector.hints` groups none of whose patterns the
        # engine's Set pass found in this text; None: no Set pass (outside the engine)
        self.ruled_out: frozenset[tuple[int, str]] | None = None

    def may_match(self, detector: Detector, hint: str) -> bool:
        """False only when the engine's Set pass saw none of the patterns of the
        detector's hint group `hint`, so the detector's own regex for them would find
        nothing; True for a group the detector does not declare."""
        return self.ruled_out is None or (id(detector), hint) not in self.ruled_out

    @property
    def norm(self) -> Normalized:
        if self._norm is None:
            self._norm = normalize(self.subject.text or "")
        return self._norm

    def view(self, name: ViewName) -> View:
        return self.norm.text if name == "text" else self.norm.folded

    def match(self, view: View, start: int, end: int, score: float = 1.0) -> Match:
        """A Match whose span is mapped from `view` back to the original text."""
        o_start, o_end = view.span(start, end)
        return Match(score, o_start, o_end)


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class Prefilter:
    """Patterns (already rewritten for RE2) of which one must match `view` for a hit."""

    view: ViewName
    patterns: tuple[str, ...] = field(default_factory=tuple)


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

    def __init__(self, params: BaseModel, env: RuleEnv | None = None) -> None:
        self.params = params
        self.env = env if env is not None else RuleEnv()

    @classmethod
    def help(cls) -> str:
        return (cls.__doc__ or "").strip().splitlines()[0]

    def prefilter(self) -> Prefilter | None:
        """Patterns that must match for `detect` to have a chance; None: always run."""
        return None

    def hints(self) -> dict[str, Prefilter]:
        """Named pattern groups the engine scans in its Set pass for a rule that runs on
        every comment anyway, so `detect` can skip a regex of its own that cannot match
        (`Context.may_match`).  Each group must match exactly when that regex does."""
        return {}

    def model_input(self, ctx: Context) -> str | None:
        """Text to classify with the profanity model (batched by the engine), if any."""
        return None

    # True: the engine calls `score_batch` once per batch, before any `detect`, with the
    # contexts this rule will see, so a model can score them all in one vectorised call
    batched: ClassVar[bool] = False

    def score_batch(self, contexts: Sequence[Context]) -> None:
        """Score every context at once and leave the results in `Context.scores`."""

    # True: the detector keeps state across comments, and `remember` lets the engine
    # replay stored history into it after a restart or a reload, without findings
    remembers: ClassVar[bool] = False

    def remember(self, ctx: Context) -> None:
        """Take note of a comment seen before this process started."""

    def detect(self, ctx: Context) -> list[Match]:
        raise NotImplementedError


def _load_builtins() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


def detector_class(name: str) -> type[Detector]:
    _load_builtins()
    try:
        return _DETECTORS[name]
    except KeyError:
        raise KeyError(
            f"unknown detector {name!r}; known: {', '.join(sorted(_DETECTORS))}"
        ) from None


def registered_detectors() -> dict[str, type[Detector]]:
    _load_builtins()
    return dict(sorted(_DETECTORS.items()))
