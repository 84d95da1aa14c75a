"""Run the `examples:` of rules: each rule proves on its own data what it must catch.

Used by `policywatch rules lint` and by the test suite, so a pattern edit that breaks
a documented case fails before it reaches a school.  Each example runs through a
one-rule engine, i.e. through normalisation and the prefilter exactly as in service.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.model import SettingsChange, Subject, SubjectKind
from monitor.rules.detectors import RuleEnv
from monitor.rules.engine import RuleEngine
from monitor.rules.pack import Example, ExampleSubject, Rule, RulePack


@dataclass(frozen=True, slots=True)
class ExampleFailure:
    source: str
    rule_id: str
    expected: bool
    text: str

    def __str__(self) -> str:
        want = "should match but did not" if self.expected else "should not match but did"
        return f"{self.source}: rule {self.rule_id!r}: example {self.text!r} {want}"


def example_subject(rule: Rule, example: Example, language: str) -> Subject:
    spec = example if isinstance(example, ExampleSubject) else ExampleSubject(text=example)
    kind = spec.kind or (SubjectKind.COMMENT if SubjectKind.COMMENT in rule.applies_to
                         else rule.applies_to[0])
    return Subject(
        kind=kind,
        account_id="example",
        school_id="example",
        language=spec.language or ("" if language == "any" else language),
        text=spec.text,
        changes=tuple(SettingsChange(f, None, True) for f in spec.changed),
        audience_before=spec.audience(spec.audience_before),
        audience_after=spec.audience(spec.audience_after),
        account_kind=spec.account_kind,
        within_office_hours=spec.within_office_hours,
        event={"reason": "not registered staff"} if kind is SubjectKind.REGISTRY else {},
    )


def run_examples(pack: RulePack, env: RuleEnv | None = None) -> list[ExampleFailure]:
    """Every example of every rule in `pack` that does not behave as documented."""
    failures = []
    for rule in pack.rules:
        # examples say what a rule does when on, so a rule shipped off is checked too
        one = pack.model_copy(update={"rules": [rule.model_copy(update={"enabled": True})]})
        engine = RuleEngine([one], env=env or RuleEnv())
        for expected, examples in ((True, rule.examples.match), (False, rule.examples.no_match)):
            for example in examples:
                subject = example_subject(rule, example, pack.language)
                fired = any(d.rule_id == rule.id for d in engine.evaluate(subject))
                if fired != expected:
                    text = example if isinstance(example, str) else example.text
                    failures.append(ExampleFailure(pack.source or pack.pack, rule.id,
                                                   expected, text))
    return failures
