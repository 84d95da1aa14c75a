"""The second-stage crisis classifier: training data, determinism, examples, speed."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from monitor.model import Subject, SubjectKind
from monitor.rules import crisis_model
from monitor.rules.cli import app
from monitor.rules.engine import RuleEngine
from monitor.rules.examples import run_examples
from monitor.rules.pack import load_shipped_pack
from monitor.rules.quality import load_splits

CORPUS = Path(__file__).parent / "corpus"


def test_training_data_is_exactly_the_dev_split() -> None:
    want = [(e.text, "crisis" in e.labels) for lang in ("en", "fr")
            for e in load_splits(CORPUS, lang)["dev"]]
    got = [(r["text"], r["crisis"]) for r in crisis_model.training_rows()]
    assert got == want


def test_fit_is_deterministic_and_fast() -> None:
    rows = crisis_model.training_rows()
    texts = [crisis_model.prepare(r["text"]) for r in rows]
    labels = [int(r["crisis"]) for r in rows]
    start = time.perf_counter()
    a = crisis_model.fit(texts, labels)
    assert time.perf_counter() - start < 4.0  # < 2 s on the dev VM; slack for CI
    b = crisis_model.fit(texts, labels)
    assert np.array_equal(a.scores(texts), b.scores(texts))


def test_pack_examples_run() -> None:
    pack = load_shipped_pack("common")
    model_rules = [r for r in pack.rules if r.detector.type == "crisis_model"]
    assert {r.id for r in model_rules} == {"crisis.model.urgent", "crisis.model.review"}
    one = pack.model_copy(update={"rules": model_rules})
    assert run_examples(one) == []


def test_one_scoring_call_per_batch(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    model = crisis_model.model()
    calls: list[int] = []
    original = type(model).scores

    def counting(self, texts):  # type: ignore[no-untyped-def]
        calls.append(len(texts))
        return original(self, texts)

    monkeypatch.setattr(type(model), "scores", counting)
    subjects = [Subject(kind=SubjectKind.COMMENT, account_id="a", school_id="s", language="en",
                        text=f"see you at the concert number {i}") for i in range(50)]
    RuleEngine.shipped().evaluate_batch(subjects)
    assert calls == []  # shipped off: the model costs nothing unless a board turns it on
    pack = load_shipped_pack("common")
    enabled = [r.model_copy(update={"enabled": True}) for r in pack.rules
               if r.detector.type == "crisis_model"]
    RuleEngine([pack.model_copy(update={"rules": enabled})]).evaluate_batch(subjects)
    assert len(calls) == 1 and calls[0] == 50


def test_speed_sanity() -> None:
    model = crisis_model.model()
    texts = [f"thanks for the great concert tonight, my kid loved it #{i}" for i in range(5000)]
    start = time.perf_counter()
    model.scores(texts)
    assert time.perf_counter() - start < 0.5  # about 0.03 s on the dev VM


def test_homework_is_killing_me_is_not_urgent() -> None:
    result = CliRunner().invoke(app, ["test", "this homework is killing me"])
    assert result.exit_code == 0, result.output
    assert "urgent" not in result.output
    assert "crisis.model" not in result.output
