"""Rule packs: every example of every rule, schema errors, board overrides by id."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.model import Subject, SubjectKind
from monitor.rules import RuleEngine, RulesSettings
from monitor.rules.examples import run_examples
from monitor.rules.pack import SHIPPED_PACKS, PackError, load_pack, load_shipped_pack, parse_pack

PACKS = {name: load_shipped_pack(name) for name in SHIPPED_PACKS}
RULES = [(name, rule.id) for name, pack in PACKS.items() for rule in pack.rules]


@pytest.mark.parametrize(("pack", "rule_id"), RULES, ids=[r for _, r in RULES])
def test_rule_examples(pack: str, rule_id: str) -> None:
    one = PACKS[pack].model_copy(
        update={"rules": [r for r in PACKS[pack].rules if r.id == rule_id]})
    failures = run_examples(one)
    assert not failures, "\n".join(str(f) for f in failures)


def test_every_rule_names_a_section_and_an_action() -> None:
    for pack in PACKS.values():
        for rule in pack.rules:
            assert rule.section in {"3.0", "5.0", "7.0", "8.0", "9.0"}, rule.id
            for language in ("en", "fr"):
                assert rule.text_for("action", language).strip(), rule.id
                assert rule.text_for("message", language).strip(), rule.id
            if isinstance(rule.message, dict):  # shared rules speak both languages
                assert set(rule.message) == {"en", "fr"}, rule.id
                assert isinstance(rule.action, dict) and set(rule.action) == {"en", "fr"}, rule.id


def test_duty_of_care_rules_are_urgent() -> None:
    for pack in PACKS.values():
        for rule in pack.rules:
            if rule.category == "crisis":
                assert rule.section == "9.0" and rule.severity.value == "urgent", rule.id


GOOD_RULE = """
  - id: board.test
    section: "8.0"
    category: spam
    severity: digest
    applies_to: [comment]
    detector: {type: phrases, params: {patterns: ["\\\\bbuy now\\\\b"]}}
    message: m
    action: a
"""


def _pack(rules: str) -> str:
    return "pack: board\nlanguage: en\nrules:" + rules


def test_valid_board_pack_parses() -> None:
    pack = parse_pack(_pack(GOOD_RULE), "board.yaml")
    assert pack.rules[0].id == "board.test"


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        (("message: m", "message: m\n    colour: red"), ["board.yaml", "board.test", "colour"]),
        (("type: phrases", "type: telepathy"), ["board.yaml", "board.test", "telepathy",
                                                 "known:"]),
        (('params: {patterns: ["\\\\bbuy now\\\\b"]}', "params: {patterns: [x], score: 7}"),
         ["board.yaml", "board.test", "detector.params.score"]),
        (('params: {patterns: ["\\\\bbuy now\\\\b"]}', "params: {pattern: [x]}"),
         ["board.yaml", "board.test", "detector.params.pattern"]),
        (('params: {patterns: ["\\\\bbuy now\\\\b"]}', 'params: {patterns: ["(?=x)"]}'),
         ["board.yaml", "board.test", "not valid RE2"]),
        (("severity: digest", "severity: loud"), ["board.yaml", "board.test", "severity"]),
        (("applies_to: [comment]", "applies_to: [tweet]"), ["board.test", "applies_to"]),
    ],
)
def test_schema_errors_name_file_rule_and_key(mutation: tuple[str, str],
                                              expected: list[str]) -> None:
    old, new = mutation
    assert old in GOOD_RULE
    with pytest.raises(PackError) as info:
        parse_pack(_pack(GOOD_RULE.replace(old, new)), "board.yaml")
    for fragment in expected:
        assert fragment in str(info.value)


def test_unknown_top_level_key() -> None:
    with pytest.raises(PackError, match=r"(?s)board\.yaml.*unknown key 'author'"):
        parse_pack("pack: b\nauthor: me\nrules: []\n", "board.yaml")


def test_not_yaml_and_unreadable(tmp_path: Path) -> None:
    with pytest.raises(PackError, match="not valid YAML"):
        parse_pack("rules: [", "x.yaml")
    with pytest.raises(PackError, match="cannot read"):
        load_pack(tmp_path / "missing.yaml")


def _comment(text: str, lang: str = "en") -> Subject:
    return Subject(kind=SubjectKind.COMMENT, account_id="a", school_id="s", language=lang,
                   text=text)


def test_board_pack_overrides_by_id_and_adds(tmp_path: Path) -> None:
    board = tmp_path / "board.yaml"
    board.write_text(_pack(GOOD_RULE + """
  - id: language.profanity.en
    section: "8.0"
    category: inappropriate_language
    severity: info
    applies_to: [comment]
    detector: {type: profanity, params: {model: false, words: [heck]}}
    message: board wording
    action: board action
"""), encoding="utf-8")
    engine = RuleEngine.from_settings(RulesSettings(packs=[Path("board.yaml")]),
                                      base_dir=tmp_path)
    found = {d.rule_id: d for d in engine.evaluate(_comment("what the heck, buy now"))}
    assert found["board.test"].category == "spam"
    assert found["language.profanity.en"].severity.value == "info"
    assert found["language.profanity.en"].message == "board wording"
    assert "language.profanity.en" not in {
        d.rule_id for d in engine.evaluate(_comment("this is fucking great"))}


def test_disabled_rules_and_languages(tmp_path: Path) -> None:
    settings = RulesSettings(languages=["en"], disabled_rules=["privacy.phone"])
    engine = RuleEngine.from_settings(settings, base_dir=tmp_path)
    ids = {c.rule.id for c in engine.rules}
    assert "privacy.phone" not in ids and "crisis.self-harm.fr" not in ids
    assert "crisis.self-harm.en" in ids and "privacy.email" in ids


def test_settings_reject_unknown_keys_and_literal_salts() -> None:
    with pytest.raises(ValueError, match="extra"):
        RulesSettings.model_validate({"pack": []})
    with pytest.raises(ValueError, match="NAME of an environment variable"):
        RulesSettings.model_validate({"protected_salt_env": "s3cr3t-value"})
    with pytest.raises(ValueError, match="needs protected_salt_env"):
        RulesSettings.model_validate({"protected_students_file": "names.txt"})
    with pytest.raises(ValueError, match="domain"):
        RulesSettings.model_validate({"allowed_domains": ["not a domain"]})


def test_shared_rules_speak_the_school_language() -> None:
    from monitor.model import Subject, SubjectKind
    from monitor.rules import RuleEngine

    engine = RuleEngine.shipped()
    text = "appelez-moi au 819-555-0199 / call me at 819-555-0199"
    for language, expected in (("en", "phone number"), ("fr", "numéro de téléphone")):
        subject = Subject(kind=SubjectKind.COMMENT, account_id="a", school_id="s",
                          language=language, text=text)
        phone = [d for d in engine.evaluate(subject) if d.category == "personal_information"]
        assert phone and expected in phone[0].message and " / " not in phone[0].message


@pytest.mark.parametrize(("view", "fires"), [("folded", True), ("text", False)])
def test_phrase_view_chooses_whether_digits_inside_words_survive(view: str, fires: bool) -> None:
    """An identifier like GA123456 keeps its digits only in the folded view: the default
    text view decodes them as leetspeak ("gai2eas6"), so the same pattern misses there."""
    params = 'params: {view: ' + view + ', patterns: ["passport [a-z]{2}[0-9]{6}"]}'
    rule = GOOD_RULE.replace('params: {patterns: ["\\\\bbuy now\\\\b"]}', params)
    engine = RuleEngine([parse_pack(_pack(rule), "board.yaml")])
    found = engine.evaluate(_comment("my passport GA123456 is on the form"))
    assert bool(found) is fires
    if fires:
        assert found[0].evidence_start == 3 and found[0].evidence_end == 20


def test_phrase_view_rejects_an_unknown_view() -> None:
    rule = GOOD_RULE.replace('params: {patterns: ["\\\\bbuy now\\\\b"]}',
                             'params: {view: original, patterns: [x]}')
    with pytest.raises(PackError, match=r"(?s)board\.test.*detector\.params\.view"):
        parse_pack(_pack(rule), "board.yaml")
