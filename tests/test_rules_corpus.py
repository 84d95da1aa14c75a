"""Quality gate: the measured targets on the labelled corpus must hold (see docs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.rules.engine import RuleEngine
from monitor.rules.quality import load_corpus, predict, score

CORPUS = Path(__file__).parent / "corpus"


@pytest.fixture(scope="module")
def scores() -> dict[str, dict[str, object]]:
    engine = RuleEngine.shipped()
    out = {}
    for lang in ("en", "fr"):
        examples = load_corpus(CORPUS / f"{lang}.jsonl")
        out[lang] = score(examples, predict(engine, examples, lang))  # type: ignore[assignment]
    return out  # type: ignore[return-value]


def test_corpus_sizes() -> None:
    assert len(load_corpus(CORPUS / "en.jsonl")) >= 400
    assert len(load_corpus(CORPUS / "fr.jsonl")) >= 150


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_targets(scores: dict, lang: str) -> None:  # type: ignore[type-arg]
    s = scores[lang]
    assert s["crisis"].recall >= 0.95, s["crisis"]
    assert s["crisis"].precision >= 0.80, s["crisis"]
    assert s["personal_information"].recall >= 0.95, s["personal_information"]
    assert s["inappropriate_language"].f1 >= 0.85, s["inappropriate_language"]


def test_blind_split_is_optional(tmp_path: Path) -> None:
    from monitor.rules.quality import load_splits

    line = '{"text": "i want to die", "kind": "comment", "labels": ["crisis"], "split": "dev"}\n'
    (tmp_path / "en.jsonl").write_text(line, encoding="utf-8")
    assert set(load_splits(tmp_path, "en")) == {"dev", "heldout", "all"}
    (tmp_path / "heldout3_en.jsonl").write_text(
        '{"text": "hello", "kind": "comment", "labels": ["none"]}\n', encoding="utf-8")
    splits = load_splits(tmp_path, "en")
    assert [e.split for e in splits["blind"]] == ["blind"]
    assert len(splits["all"]) == 1  # the blind set is reported apart, not mixed in
