"""Measure detection quality on a labelled corpus: precision, recall and F1 per category.

Shared by `benchmarks/rules_eval.py` (prints the figures) and the test suite (asserts
the targets), so the numbers in docs/detection-quality.md and the regression gate are
computed the same way.  A corpus line is ``{"text", "kind", "labels", "split"}``;
a category is predicted when any rule of that category fires.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from monitor.model import Detection, Subject, SubjectKind
from monitor.rules.engine import RuleEngine
from monitor.rules.text_model import HEADS as MODEL_HEADS
from monitor.rules.text_model import ROUND_HEADS

CATEGORIES = ("crisis", "bullying", "inappropriate_language", "personal_information", "spam")
_CATEGORY_OF_RULE = {"protected_student": "personal_information"}


@dataclass(frozen=True, slots=True)
class Scores:
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    kind: str
    labels: frozenset[str]
    split: str


def load_corpus(path: Path, split: str | None = None) -> list[Example]:
    """Read a corpus; `split` overrides every line's split (e.g. "blind" for heldout3)."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out.append(Example(row["text"], row.get("kind", "comment"),
                               frozenset(row["labels"]) - {"none"},
                               split or row.get("split", "dev")))
    return out


BLIND_SPLIT = "blind"


def blind_corpus_path(corpus_dir: Path, language: str) -> Path:
    """`heldout3_<lang>.jsonl`: a set written by someone else, never read while tuning.

    (`heldout2`, the first blind set, was measured so often while tuning that it became
    training data: `train/<lang>_former_blind.jsonl`.)
    """
    return corpus_dir / f"heldout3_{language}.jsonl"


TRAIN_DIR = "train"


def letters_key(text: str) -> str:
    """A line's identity for de-duplication: its lower-case letters only (a line without
    letters, emoji only, is its own identity: "🔥🔥🔥" is not "😔🔪🩸")."""
    return "".join(c for c in text.casefold() if c.isalpha()) or text.strip()


def model_training_rows(corpus_dir: Path) -> list[dict[str, object]]:
    """Rows the text classifier is fitted on: {"text", "lang", one bool per head}, in a
    fixed order.

    The dev split of each main corpus, then every `train/<lang>_*.jsonl` by name.  Never
    the held-out split, the blind set or a tuning round (pi_dev*, indep*): a training
    line whose letters equal one of theirs is left out, so no line the model is measured
    on is ever trained on.  Repeated lines are kept once.
    """
    splits = {lang: load_splits(corpus_dir, lang) for lang in ("en", "fr")}
    sources: list[tuple[str, list[Example]]] = [(lang, splits[lang]["dev"]) for lang in splits]
    for path in sorted((corpus_dir / TRAIN_DIR).glob("*.jsonl")):
        sources.append((path.name[:2], load_corpus(path, split="train")))
    unseen = _letters_of(splits, lambda split: split.startswith(ROUND_PREFIXES))
    seen: set[str] = set()
    rows: list[dict[str, object]] = []
    for lang, examples in sources:
        for e in examples:
            key = letters_key(e.text)
            if e.split == "train" and (key in unseen or e.text in seen):
                continue  # dev lines stay whole: their evasion variants share letters
            seen.add(e.text)
            rows.append({"text": e.text, "lang": lang,
                         **{head: head in e.labels for head in MODEL_HEADS}})
    return rows


def _letters_of(splits: dict[str, dict[str, list[Example]]],
                measured: Callable[[str], bool]) -> set[str]:
    """The letters of every line a head must never be fitted on: the held-out split, the
    blind set, and the splits `measured` names."""
    return {letters_key(e.text) for by_split in splits.values()
            for split, examples in by_split.items()
            if split in ("heldout", BLIND_SPLIT) or measured(split)
            for e in examples}


def round_training_rows(corpus_dir: Path) -> list[dict[str, object]]:
    """Rows only the heads of `ROUND_HEADS` (crisis, personal information) are also
    fitted on: {"text", "lang", "round", one bool per such head}, from every tuning
    round (pi_dev*, indep*) except `HELD_OUT_ROUNDS`.

    Why these: each round is a new writer's idea of private detail, and some seventy of
    them (6,000 personal-information lines) are what lets a linear model find the kinds
    no pattern was written for (the main training rows hold 550); their ordinary
    comments teach the crisis head what a new writer's non-crisis posts look like.  The
    bullying and spam heads never see them.  A round line whose letters equal a
    held-out or blind line, or a line already kept, is left out.
    """
    splits = {lang: load_splits(corpus_dir, lang) for lang in ("en", "fr")}
    unseen = _letters_of(splits, HELD_OUT_ROUNDS.__contains__)
    seen = {str(r["text"]) for r in model_training_rows(corpus_dir)}
    rows: list[dict[str, object]] = []
    for lang, by_split in splits.items():
        for split, examples in by_split.items():
            if not split.startswith(ROUND_PREFIXES) or split in HELD_OUT_ROUNDS:
                continue
            for e in examples:
                if letters_key(e.text) in unseen or e.text in seen:
                    continue
                seen.add(e.text)
                rows.append({"text": e.text, "lang": lang, "round": split,
                             **{head: head in e.labels for head in ROUND_HEADS}})
    return rows


INDEPENDENT_SPLIT = "indep"
# Tuning rounds, one file per round and language (`pi_dev_en.jsonl`, `pi_dev2_en.jsonl`,
# ..., `indep_en.jsonl`, `indep2_en.jsonl`, ...), each measured before it was tuned on:
# "pi_dev" written to tune the personal-information detectors; INDEPENDENT_SPLIT
# written like the blind set, by an annotator given only the description of the
# corpus and its own idea of each category (see the docs)
ROUND_PREFIXES = ("pi_dev", INDEPENDENT_SPLIT)
# Rounds no detector or head was tuned or fitted on: each session's release check (in
# session 9 indep22/23; in session 10 indep50/51 in English, indep54/55 in French, and
# indep70-75, six French rounds written after the last refit)
HELD_OUT_ROUNDS = frozenset({"indep22", "indep23", "indep50", "indep51", "indep54", "indep55",
                             *(f"indep{n}" for n in range(70, 76))})


def load_splits(corpus_dir: Path, language: str) -> dict[str, list[Example]]:
    """Examples per split: dev, heldout, all (the main corpus) and blind when present.

    The blind set lives in its own file and is reported on its own; it is not part of
    "all", so the figures of the main corpus stay comparable over time.  Absent: skipped.
    """
    corpus = load_corpus(corpus_dir / f"{language}.jsonl")
    splits = {
        "dev": [e for e in corpus if e.split == "dev"],
        "heldout": [e for e in corpus if e.split == "heldout"],
        "all": corpus,
    }
    blind = blind_corpus_path(corpus_dir, language)
    if blind.is_file():
        splits[BLIND_SPLIT] = load_corpus(blind, split=BLIND_SPLIT)
    for prefix in ROUND_PREFIXES:
        for path in sorted(corpus_dir.glob(f"{prefix}*_{language}.jsonl"),
                           key=lambda p: (len(p.name), p.name)):  # pi_dev before pi_dev2
            name = path.name.removesuffix(f"_{language}.jsonl")
            splits[name] = load_corpus(path, split=name)
    return splits


def detect(engine: RuleEngine, examples: Iterable[Example], language: str
           ) -> list[list[Detection]]:
    """What the engine finds on each example (one batch)."""
    subjects = [Subject(kind=SubjectKind(e.kind), account_id="corpus", school_id="corpus",
                        language=language, text=e.text) for e in examples]
    return engine.evaluate_batch(subjects)


def categories(detections: Iterable[Detection]) -> frozenset[str]:
    """The corpus categories a comment's detections report."""
    return (frozenset(_CATEGORY_OF_RULE.get(d.category, d.category) for d in detections)
            & frozenset(CATEGORIES))


def predict(engine: RuleEngine, examples: Iterable[Example], language: str) -> list[frozenset[str]]:
    return [categories(found) for found in detect(engine, examples, language)]


def score(examples: list[Example], predictions: list[frozenset[str]]) -> dict[str, Scores]:
    out = {}
    for category in CATEGORIES:
        tp = fp = fn = 0
        for example, predicted in zip(examples, predictions, strict=True):
            want, got = category in example.labels, category in predicted
            tp += want and got
            fp += got and not want
            fn += want and not got
        out[category] = Scores(tp, fp, fn)
    return out


def errors(examples: list[Example], predictions: list[frozenset[str]]) -> list[str]:
    """Human-readable misclassifications, for tuning on the dev split."""
    lines = []
    for example, predicted in zip(examples, predictions, strict=True):
        if set(example.labels) != set(predicted):
            lines.append(f"[{example.split}] want={sorted(example.labels)} "
                         f"got={sorted(predicted)}: {example.text!r}")
    return lines
