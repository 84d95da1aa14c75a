"""Irrelevant content and spam (section 8): outside links and repeated comments.

Scam and giveaway wording is plain `phrases` rules in the packs; what needs code is
knowing the board's link allowlist (`RulesSettings.allowed_domains`) and remembering
what was said recently (`RecentWindow`).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from monitor.rules import patterns
from monitor.rules.detectors import Context, Detector, Match, Params, Prefilter, RuleEnv, in_domains
from monitor.rules.recent import RecentWindow, fingerprint

_TLDS = (
    r"com|ca|net|org|io|ly|co|info|biz|xyz|me|gg|link|app|site|online|shop|store|top|club"
    r"|click|tk|ru|cn|live|vip|win|money|us|uk|fr|tv|to|cc|ws|su|pw|buzz|icu"
)
_URL = (
    r"(?:https?://|www\.)([a-z0-9\-]+(?:\.[a-z0-9\-]+)+)"
    rf"|(?:^|[^@a-z0-9.\-])((?:[a-z0-9\-]+\.)+(?:{_TLDS}))(?:[/:?#]|[^a-z0-9\-]|$)"
)
_URL_HINT = r"https?:|www\.|[a-z0-9]\.(?:" + _TLDS + r")\b"


class LinkParams(Params):
    allowed: list[str] = []


class OutsideLinkDetector(Detector, name="outside_link"):
    """Links to domains outside the board's allowed_domains (plus the rule's own allowed list)."""

    Params = LinkParams

    def __init__(self, params: BaseModel, env: RuleEnv | None = None) -> None:
        super().__init__(params, env)
        assert isinstance(params, LinkParams)
        self._allowed = tuple(d.lower().lstrip(".") for d in
                              (*self.env.allowed_domains, *params.allowed))
        self._program = patterns.program(_URL, capture=True)

    def prefilter(self) -> Prefilter:
        return Prefilter("folded", (_URL_HINT,))

    def detect(self, ctx: Context) -> list[Match]:
        view = ctx.norm.folded
        for m in self._program.finditer(view.text):
            group = 1 if m.group(1) else 2
            host = m.group(group)
            if host and not in_domains(host, self._allowed):
                return [ctx.match(view, m.start(group), m.end(group))]
        return []


class RepeatParams(Params):
    min_chars: int = Field(default=15, ge=1)
    same_author: int = Field(default=2, ge=2)
    distinct_authors: int = Field(default=3, ge=2)


class RepeatedDetector(Detector, name="repeated"):
    """The same comment again: same_author times from one author, or from distinct_authors."""

    Params = RepeatParams

    def __init__(self, params: BaseModel, env: RuleEnv | None = None) -> None:
        super().__init__(params, env)
        if self.env.recent is None:
            self.env.recent = RecentWindow()
        self._recent: RecentWindow = self.env.recent

    remembers = True

    def _observe(self, ctx: Context) -> tuple[int, int] | None:
        """(times this author sent it, distinct authors) within the window, after this one."""
        assert isinstance(self.params, RepeatParams)
        item = ctx.subject.item
        if item is None:
            return None
        text = ctx.norm.text.text
        if len(text.strip()) < self.params.min_chars:
            return None  # "Congrats!" from thirty parents is not spam
        key = f"repeat:{ctx.subject.account_id}:{fingerprint(text)}"
        return self._recent.observe(key, item.author.id, item.created_at.timestamp(),
                                    item=f"{item.platform}:{item.external_id}")

    def remember(self, ctx: Context) -> None:
        self._observe(ctx)

    def detect(self, ctx: Context) -> list[Match]:
        assert isinstance(self.params, RepeatParams)
        seen = self._observe(ctx)
        if seen is None:
            return []
        times, authors = seen
        if times == self.params.same_author or authors == self.params.distinct_authors:
            return [Match(1.0, 0, len(ctx.subject.text))]
        return []
