"""Apply rule packs to subjects: every enabled rule whose `applies_to` covers the subject."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from monitor.model import Detection, Subject
from monitor.rules.detectors import Detector
from monitor.rules.pack import SHIPPED_PACKS, Rule, RulePack, load_shipped_pack

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule: Rule
    detector: Detector


class RuleEngine:
    """Holds compiled rules; later packs override earlier ones by rule id."""

    def __init__(self, packs: Iterable[RulePack]) -> None:
        merged: dict[str, Rule] = {}
        for pack in packs:
            for rule in pack.rules:
                merged[rule.id] = rule
        self.rules = [
            CompiledRule(rule, rule.build_detector()) for rule in merged.values() if rule.enabled
        ]

    @classmethod
    def shipped(cls) -> RuleEngine:
        return cls(load_shipped_pack(name) for name in SHIPPED_PACKS)

    def evaluate(self, subject: Subject) -> list[Detection]:
        """Every rule that fires on the subject, at most one detection per rule.

        A detector that raises is logged and skipped: one bad rule or one strange
        comment never stops the cycle.
        """
        out: list[Detection] = []
        for compiled in self.rules:
            rule = compiled.rule
            if subject.kind not in rule.applies_to:
                continue
            try:
                matches = compiled.detector.detect(subject)
            except Exception:
                log.exception(
                    "rule %s failed on a %s of account %s",
                    rule.id,
                    subject.kind,
                    subject.account_id,
                )
                continue
            if not matches:
                continue
            best = max(matches, key=lambda m: m.score)
            out.append(
                Detection(
                    rule_id=rule.id,
                    section=rule.section,
                    category=rule.category,
                    severity=rule.severity,
                    detector=rule.detector.type,
                    score=round(best.score, 4),
                    message=rule.message,
                    action=rule.action,
                    evidence_start=best.start,
                    evidence_end=best.end,
                    notify_owner_now=rule.notify_owner_now,
                )
            )
        return out
