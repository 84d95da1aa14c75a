"""Protected students: hashes only, urgent when named, salt matters."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from monitor.model import Severity, Subject, SubjectKind
from monitor.rules import RuleEngine, RulesSettings
from monitor.rules.protected import ProtectedIndex, ProtectedListError, load_protected

SALT = "a-long-enough-test-salt"
NAMES = "# principal's list\nÉmilie Tremblay-Roy\nO'Neil, Jacob\nLiam\n"


@pytest.fixture
def names_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "protected.txt"
    path.write_text(NAMES, encoding="utf-8")
    monkeypatch.setenv("PW_TEST_SALT", SALT)
    return path


def _post(text: str, kind: SubjectKind = SubjectKind.OWN_POST) -> Subject:
    return Subject(kind=kind, account_id="a", school_id="s", language="en", text=text,
                   account_kind="school")


def test_index_holds_no_names(names_file: Path) -> None:
    index = load_protected(names_file, "PW_TEST_SALT")
    blob = pickle.dumps(index)
    for fragment in (b"emilie", b"Emilie", b"tremblay", b"jacob", b"neil", SALT.encode()):
        assert fragment.lower() not in blob.lower()
    assert all(len(h) == 16 for h in index.names)


def test_named_protected_student_is_urgent(names_file: Path, tmp_path: Path) -> None:
    settings = RulesSettings(protected_students_file=Path("protected.txt"),
                             protected_salt_env="PW_TEST_SALT")
    engine = RuleEngine.from_settings(settings, base_dir=tmp_path)
    text = "Bravo à EMILIE tremblay pour son prix!"
    (d,) = [d for d in engine.evaluate(_post(text)) if d.rule_id == "privacy.protected-student"]
    assert d.severity is Severity.URGENT and d.section == "5.0" and d.notify_owner_now
    assert d.evidence(text) == "EMILIE tremblay"
    for variant in ("Jacob O'Neil scored", "jacob oneil? no: Jacob O Neil", "3milie Tr3mblay"):
        assert "privacy.protected-student" in {d.rule_id for d in engine.evaluate(_post(variant))}
    comment = engine.evaluate(_post("great job jacob o'neil", SubjectKind.COMMENT))
    assert "privacy.protected-student" in {d.rule_id for d in comment}
    for safe in ("Emilie won", "Liam was great", "Mme Tremblay's class"):
        assert "privacy.protected-student" not in {d.rule_id for d in engine.evaluate(_post(safe))}


def test_hashes_differ_by_salt() -> None:
    a = ProtectedIndex.build(["Emilie Tremblay"], SALT)
    b = ProtectedIndex.build(["Emilie Tremblay"], SALT + "-other")
    assert a.names and b.names and not (a.names & b.names)


def test_missing_salt_or_short_salt(names_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PW_TEST_SALT")
    with pytest.raises(ProtectedListError, match="PW_TEST_SALT"):
        load_protected(names_file, "PW_TEST_SALT")
    with pytest.raises(ProtectedListError, match="at least"):
        ProtectedIndex.build(["A B"], "short")


def test_unreadable_file_message_has_no_names(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PW_TEST_SALT", SALT)
    with pytest.raises(ProtectedListError, match="cannot read"):
        load_protected(tmp_path / "missing.txt", "PW_TEST_SALT")
