"""Apply rule packs to subjects: every enabled rule whose `applies_to` covers the subject.

Speed comes from a few choices: each comment is normalised once and shared by all rules
(`Context`); every pattern of every rule, and the hint groups of rules that run on every
comment (`Detector.hints`), are scanned in one RE2 Set pass, and only rules whose
patterns hit run their detector; the rules woken by one set of hits are worked out once;
the two models are called once per batch; compiled RE2 programs are shared by the
process (`programs`); the cyclic garbage collector is paused for the batch
(`collector`).  Robustness: a detector that raises is logged and skipped, so no comment
and no rule can stop a monitoring cycle.  The engine is safe to share between threads:
the recent-comment window has its own lock, and its lookup caches are only ever filled
with the same value for the same key, so a race repeats work and nothing else.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.model import Detection, Subject, SubjectKind
from monitor.rules import collector
from monitor.rules.detectors import Context, Detector, Match, Prefilter, RuleEnv, ViewName
from monitor.rules.pack import SHIPPED_PACKS, Rule, RulePack, load_pack, load_shipped_pack
from monitor.rules.profanity import classify
from monitor.rules.programs import search_set, set_matcher
from monitor.rules.recent import RecentWindow, fingerprint
from monitor.rules.settings import RulesSettings

log = logging.getLogger(__name__)

BURST_CATEGORIES = frozenset({"spam"})
_VIEWS: tuple[ViewName, ...] = ("text", "folded")


@dataclass(frozen=True, slots=True, eq=False)  # identity: `in` must not compare pydantic rules
class CompiledRule:
    rule: Rule
    detector: Detector
    languages: frozenset[str] | None  # None: every language
    prefilter: tuple[ViewName, frozenset[int]] | None  # Set indices that may fire it
    reads_model: bool  # the detector has a `model_input` for the batched profanity model
    # the detector's named hint groups: (view, Set indices, name)
    hints: tuple[tuple[ViewName, frozenset[int], str], ...] = ()


_WOKEN_CACHE = 8_192  # distinct sets of Set hits remembered per (kind, language)


class _Woken(list[CompiledRule]):
    """The rules to run on one comment, in order, with the two subsets the batch steps
    need worked out once per distinct list rather than once per comment."""

    __slots__ = ("batched", "readers", "ruled_out")

    def __init__(self, rules: Iterable[CompiledRule] = (),
                 ruled_out: frozenset[tuple[int, str]] = frozenset()) -> None:
        super().__init__(rules)
        self.batched = [c for c in self if c.detector.batched]  # `score_batch` hooks
        self.readers = [c for c in self if c.reads_model]  # profanity-model inputs
        # (id(detector), hint name) of the declared hint groups the Set did not see
        self.ruled_out = ruled_out


_NONE = _Woken()


@dataclass(frozen=True, slots=True)
class _Applicable:
    """The rules for one (kind, language), and which Set hits wake which of them."""

    rules: list[CompiledRule]
    always: frozenset[int]  # positions of rules without a prefilter
    # Set hit -> positions; a hit of the "folded" view's Set counts from the number of
    # "text" patterns, as in the one Set over both views
    by_hit: dict[int, list[int]]
    hinted_by: dict[int, list[tuple[int, str]]]  # Set hit -> (id(detector), hint name)
    declared: frozenset[tuple[int, str]]  # every hint group of these rules
    views: tuple[ViewName, ...]  # the views that some of these rules prefilter or hint
    # the rules to run for one tuple of Set hits: most comments hit nothing or the same
    # few patterns, so the set arithmetic and sort are done once per distinct tuple
    woken: dict[tuple[int, ...], _Woken]

    def for_hits(self, hits: tuple[int, ...]) -> _Woken:
        found = self.woken.get(hits)
        if found is None:
            keep = set(self.always)
            for i in hits:
                keep.update(self.by_hit.get(i, ()))
            seen = {h for i in hits for h in self.hinted_by.get(i, ())}
            found = _Woken((self.rules[i] for i in sorted(keep)), self.declared - seen)
            if len(self.woken) < _WOKEN_CACHE:
                self.woken[hits] = found
        return found


class RuleEngine:
    """Holds compiled rules; later packs override earlier ones by rule id."""

    def __init__(self, packs: Iterable[RulePack], *, env: RuleEnv | None = None,
                 disabled: Iterable[str] = ()) -> None:
        self.env = env if env is not None else RuleEnv()
        if self.env.recent is None:
            self.env.recent = RecentWindow()
        self._recent: RecentWindow = self.env.recent
        merged: dict[str, tuple[Rule, str]] = {}
        for pack in packs:
            for rule in pack.rules:
                merged[rule.id] = (rule, pack.language)
        off = set(disabled)
        self._sets: dict[ViewName, Any] = {}
        set_patterns: dict[ViewName, list[str]] = {v: [] for v in _VIEWS}
        self.rules: list[CompiledRule] = []

        def add(pre: Prefilter) -> frozenset[int]:
            """Put a prefilter's patterns in its view's Set; their indices there."""
            start = len(set_patterns[pre.view])
            set_patterns[pre.view].extend(pre.patterns)
            return frozenset(range(start, len(set_patterns[pre.view])))

        for rule, language in merged.values():
            if not rule.enabled or rule.id in off:
                continue
            detector = rule.build_detector(self.env)
            languages = None if rule.any_language or language == "any" else frozenset({language})
            pre = detector.prefilter()
            self.rules.append(CompiledRule(
                rule, detector, languages, (pre.view, add(pre)) if pre is not None else None,
                type(detector).model_input is not Detector.model_input,
                tuple((hint.view, add(hint), name) for name, hint in detector.hints().items())))
        for view, pats in set_patterns.items():
            if pats:
                self._sets[view] = set_matcher(search_set(tuple(pats)))
        # most comments need no folding beyond lower case, so both views are one string:
        # one Set over both views' patterns then does the work of two
        self._offset: dict[ViewName, int] = {"text": 0, "folded": len(set_patterns["text"])}
        self._both = (set_matcher(search_set((*set_patterns["text"], *set_patterns["folded"])))
                      if len(self._sets) == 2 else None)
        self._batched = [c for c in self.rules if c.detector.batched]
        self._wordings: dict[tuple[str, str], tuple[str, str]] = {}
        self._suppressible = {c.rule.id: frozenset(c.rule.suppressed_by)
                              for c in self.rules if c.rule.suppressed_by}
        # which rules apply depends only on (kind, language): work it out once per pair
        self._applicable_cache: dict[tuple[SubjectKind, str], _Applicable] = {}

    # --- construction -----------------------------------------------------------------

    @classmethod
    def shipped(cls) -> RuleEngine:
        """The shipped packs (common, en, fr) with default settings."""
        return cls(load_shipped_pack(name) for name in SHIPPED_PACKS)

    @classmethod
    def from_settings(cls, settings: RulesSettings, *, base_dir: Path) -> RuleEngine:
        """Shipped packs for `settings.languages`, then board packs, with the board's data.

        Raises PackError for a bad board pack and ProtectedListError for an unusable
        protected-students file or salt: both must stop the service at start-up.
        """
        from monitor.rules.protected import load_protected

        settings = settings.resolve(base_dir)
        names = ["common", *[lang for lang in SHIPPED_PACKS if lang in settings.languages]]
        packs = [load_shipped_pack(n) for n in names] + [load_pack(p) for p in settings.packs]
        protected = None
        if settings.protected_students_file is not None:
            assert settings.protected_salt_env is not None
            protected = load_protected(settings.protected_students_file,
                                       settings.protected_salt_env)
        env = RuleEnv(
            allowed_domains=tuple(settings.allowed_domains),
            public_phone_numbers=tuple(settings.public_phone_numbers),
            public_addresses=tuple(settings.public_addresses),
            protected=protected,
            recent=RecentWindow(settings.repeat_window_minutes * 60.0, settings.repeat_capacity),
        )
        return cls(packs, env=env, disabled=settings.disabled_rules)

    # --- evaluation -------------------------------------------------------------------

    def evaluate(self, subject: Subject) -> list[Detection]:
        """Every rule that fires on the subject, at most one detection per rule."""
        return self.evaluate_batch([subject])[0]

    def evaluate_batch(self, subjects: Sequence[Subject]) -> list[list[Detection]]:
        """`evaluate` for many subjects, classifying their text with the model in one call.

        Results are in subject order; subjects are processed in order, so repetition
        and burst grouping see them as they arrived.
        """
        probabilities: dict[str, float] = {}
        memo: dict[str, bytes] = {}
        with collector.paused():
            prepared = [self._prepare(Context(s, probabilities, memo)) for s in subjects]
            self._classify(prepared, probabilities)
            self._score_batches(prepared)
            results = [self._run(ctx, rules) for ctx, rules in prepared]
            # freed here, by reference counting: left for after the pause, the contexts
            # would be walked by the collection that re-enabling it soon starts
            del prepared
        return results

    def remember(self, subjects: Iterable[Subject]) -> int:
        """Replay comments seen before this engine existed into the detectors that keep
        state (the repetition window), oldest first; no findings.  Returns how many.

        Why: a restart or a configuration reload builds a new engine, and "the same
        comment again" must still be noticed when its first copy came before it.
        """
        count = 0
        for subject in subjects:
            ctx = Context(subject)
            for compiled in self._applicable(subject).rules:
                if compiled.detector.remembers:
                    try:
                        compiled.detector.remember(ctx)
                    except Exception:
                        log.exception("rule %s could not remember a %s", compiled.rule.id,
                                      subject.kind)
            count += 1
        return count

    def _applicable(self, subject: Subject) -> _Applicable:
        """Rules for the subject's (kind, language), worked out once per pair."""
        key = (subject.kind, subject.language)
        found = self._applicable_cache.get(key)
        if found is None:
            lang = subject.language
            rules = [
                c for c in self.rules
                if subject.kind in c.rule.applies_to
                and (c.languages is None or not lang or lang in c.languages)
            ]
            by_hit: dict[int, list[int]] = {}
            hinted_by: dict[int, list[tuple[int, str]]] = {}
            views: set[ViewName] = set()
            for position, c in enumerate(rules):
                if c.prefilter is not None:
                    view, indices = c.prefilter
                    views.add(view)
                    offset = self._offset[view]
                    for i in indices:
                        by_hit.setdefault(offset + i, []).append(position)
                for view, indices, name in c.hints:
                    views.add(view)
                    offset = self._offset[view]
                    for i in indices:
                        hinted_by.setdefault(offset + i, []).append((id(c.detector), name))
            always = frozenset(i for i, c in enumerate(rules) if c.prefilter is None)
            found = self._applicable_cache[key] = _Applicable(
                rules, always, by_hit, hinted_by,
                frozenset((id(c.detector), name) for c in rules for _, _, name in c.hints),
                tuple(v for v in _VIEWS if v in views), {})
        return found

    def _prepare(self, ctx: Context) -> tuple[Context, _Woken]:
        """Applicable rules that survive the Set prefilter (never raises)."""
        try:
            applicable = self._applicable(ctx.subject)
            norm = ctx.norm
            hits: list[int] = []
            if self._both is not None and norm.text is norm.folded:
                hits = self._both(norm.text.text)
            else:
                for view in applicable.views:
                    offset = self._offset[view]
                    found = self._sets[view](ctx.view(view).text)
                    if found:
                        hits.extend([offset + i for i in found] if offset else found)
            if len(hits) > 1:
                hits.sort()
            woken = applicable.for_hits(tuple(hits))
            ctx.ruled_out = woken.ruled_out
            return ctx, woken
        except Exception:
            log.exception("could not prepare a %s of account %s", ctx.subject.kind,
                          ctx.subject.account_id)
            return ctx, _NONE

    @staticmethod
    def _classify(prepared: list[tuple[Context, _Woken]],
                  probabilities: dict[str, float]) -> None:
        inputs: set[str] = set()
        for ctx, rules in prepared:
            for c in rules.readers:
                try:
                    key = c.detector.model_input(ctx)
                except Exception:
                    log.exception("rule %s could not prepare model input", c.rule.id)
                    continue
                if key is not None:
                    inputs.add(key)
        if not inputs:
            return
        ordered = sorted(inputs)
        try:
            probabilities.update(zip(ordered, classify(ordered), strict=True))
        except Exception:
            log.exception("the profanity model failed on a batch of %d texts", len(ordered))

    def _score_batches(self, prepared: list[tuple[Context, _Woken]]) -> None:
        if not self._batched:
            return
        by_rule: dict[CompiledRule, list[Context]] = {c: [] for c in self._batched}
        for ctx, rules in prepared:
            for c in rules.batched:
                by_rule[c].append(ctx)
        for compiled, contexts in by_rule.items():
            if not contexts:
                continue
            try:
                compiled.detector.score_batch(contexts)
            except Exception:  # its detect() then scores one by one or reports nothing
                log.exception("rule %s could not score a batch of %d", compiled.rule.id,
                              len(contexts))

    def _run(self, ctx: Context, rules: list[CompiledRule]) -> list[Detection]:
        subject = ctx.subject
        fired: list[tuple[Rule, Match, str | None]] = []
        for compiled in rules:
            try:
                matches = compiled.detector.detect(ctx)
            except Exception:
                log.exception("rule %s failed on a %s of account %s", compiled.rule.id,
                              subject.kind, subject.account_id)
                continue
            if not matches:
                continue
            rule = compiled.rule
            group_key = None
            burst = self._burst(ctx, rule) if rule.category in BURST_CATEGORIES else None
            if burst is not None:
                key, at = burst
                if not self._recent.first_in_burst(key, at):
                    continue
                group_key = hashlib.blake2b(key.encode("utf-8", "replace"),
                                            digest_size=16).hexdigest()
            best = matches[0] if len(matches) == 1 else max(matches, key=lambda m: m.score)
            fired.append((rule, best, group_key))
        if len(fired) > 1 and any(rule.id in self._suppressible for rule, _, _ in fired):
            # a second-stage rule stays quiet when a first-stage rule reported its category
            # (decided before any Detection is built: a third of them would be dropped)
            reported = {rule.category for rule, _, _ in fired if rule.id not in self._suppressible}
            fired = [f for f in fired
                     if not reported.intersection(self._suppressible.get(f[0].id, ()))]
        return [self._detection(rule, best, group_key, subject.language)
                for rule, best, group_key in fired]

    def _detection(self, rule: Rule, best: Match, group_key: str | None,
                   language: str) -> Detection:
        message, action = self._wording(rule, language)
        return Detection(
            rule_id=rule.id,
            section=rule.section,
            category=rule.category,
            severity=rule.severity,
            detector=rule.detector.type,
            score=round(best.score, 4),
            message=message,
            action=action,
            evidence_start=best.start,
            evidence_end=best.end,
            notify_owner_now=rule.notify_owner_now,
            group_key=group_key,
        )

    def _wording(self, rule: Rule, language: str) -> tuple[str, str]:
        """The rule's message and action in a language, looked up once per pair."""
        key = (rule.id, language)
        found = self._wordings.get(key)
        if found is None:
            found = self._wordings[key] = (rule.text_for("message", language),
                                           rule.text_for("action", language))
        return found

    @staticmethod
    def _burst(ctx: Context, rule: Rule) -> tuple[str, float] | None:
        """What a burst of the same spam from one author shares, and when this comment
        came (None without an author).

        The engine reports only the first comment of a burst it has seen itself; the
        store groups by the hash of this key, so a burst that spans a restart or two
        workers is still one finding.
        """
        item = ctx.subject.item
        if item is None:
            return None
        return (f"burst:{ctx.subject.account_id}:{item.author.id}:{rule.id}:"
                f"{fingerprint(ctx.norm.text.text)}", item.created_at.timestamp())
