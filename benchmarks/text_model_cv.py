"""Cross-validated quality of the text classifier's heads, and where their thresholds come from.

The classifier (`monitor/rules/text_model.py`) is fitted on the training rows that
`monitor.rules.quality.model_training_rows` collects from tests/corpus (dev split of the
main corpora plus tests/corpus/train/*.jsonl; never the held-out split or the blind
set); its crisis and personal-information heads (`ROUND_HEADS`) also on the tuning
rounds' lines (`round_training_rows`; never a round of `HELD_OUT_ROUNDS`).  This script
prints, per language, the out-of-fold precision and recall of "phrase rules OR model
score >= t" for a grid of t, for one head (crisis by default), on 5 folds grouped by the
letters of each line (so an evasion variant never sits in another fold than its
original) and, for a tuning round's lines, by round (each round scored as a new
writer).  The shipped thresholds are read off this table, never off the blind set.

Usage:
  .venv/bin/python benchmarks/text_model_cv.py [--head=bullying]          # the table
  .venv/bin/python benchmarks/text_model_cv.py [--head=bullying] --curve  # AUC with 1/4 .. all rows
  .venv/bin/python benchmarks/text_model_cv.py --write   # refresh shipped rows + weights
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.model import Subject, SubjectKind  # noqa: E402
from monitor.rules import text_model  # noqa: E402
from monitor.rules.engine import RuleEngine  # noqa: E402
from monitor.rules.pack import load_shipped_pack  # noqa: E402
from monitor.rules.quality import model_training_rows, round_training_rows  # noqa: E402

CORPUS = ROOT / "tests" / "corpus"
DATA = ROOT / "monitor" / "rules" / "data"
# the recall goals whose thresholds are printed, per head
RECALL_GOALS = {
    "crisis": (0.95, 0.97),  # crisis.model.urgent (the target), crisis.model.review
    "bullying": (0.80, 0.90),
    "spam": (0.80, 0.90),
}
PRECISION_GOAL = 0.80  # the smallest threshold that keeps "rules OR model" this precise
# heads whose threshold is the smallest at which the lines the model adds (those no
# phrase rule reports) are right this often: a digest item for a second look, where a
# missed private detail stays public and a wrong one costs a reader a few seconds
ADDED_PRECISION_GOALS = {"personal_information": 0.5}
GRID = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def write() -> int:
    for name, rows in ((text_model.TRAINING_FILE, model_training_rows(CORPUS)),
                       (text_model.ROUND_TRAINING_FILE, round_training_rows(CORPUS))):
        (DATA / name).write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        print(f"wrote {len(rows)} rows to monitor/rules/data/{name}")
    text_model.save(text_model.fit_training_rows(), DATA / text_model.WEIGHTS_FILE)
    print(f"wrote the weights fitted on them to monitor/rules/data/{text_model.WEIGHTS_FILE}")
    return 0


def phrase_rules_fire(rows: list[dict[str, object]], head: str) -> np.ndarray:
    """Whether a shipped phrase rule (not the model) reports the head's category on each row."""
    packs = [load_shipped_pack(n) for n in ("common", "en", "fr")]
    packs = [p.model_copy(update={"rules": [r for r in p.rules
                                            if r.detector.type != "text_model"]})
             for p in packs]
    engine = RuleEngine(packs)
    subjects = [Subject(kind=SubjectKind.COMMENT, account_id="cv", school_id="cv",
                        language=str(r["lang"]), text=str(r["text"])) for r in rows]
    return np.asarray([any(d.category == head for d in found)
                       for found in engine.evaluate_batch(subjects)])


def main() -> int:
    if "--write" in sys.argv[1:]:
        return write()
    from sklearn.metrics import roc_auc_score

    head = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--head=")), "crisis")
    if head not in text_model.HEADS:
        print(f"--head must be one of {', '.join(text_model.HEADS)}, not {head!r}")
        return 2
    if "--curve" in sys.argv[1:]:
        for fraction in (0.25, 0.5, 0.75, 1.0):
            labels, scores = text_model.cross_validated_scores(head, fraction=fraction)
            print(f"training on {fraction:.0%} of each fold: out-of-fold AUC "
                  f"{roc_auc_score(labels, scores):.3f}")
        return 0

    rows = text_model.head_rows(head)
    labels, scores = text_model.cross_validated_scores(head)
    rules = phrase_rules_fire(rows, head)
    langs = np.asarray([r["lang"] for r in rows])
    console = Console(width=120)
    table = Table(title=f"{head}: phrase rules OR model >= t, out-of-fold (5 grouped folds)")
    for column in ("lang", "rows", head, "AUC", "t", "precision", "recall", "model alone P/R"):
        table.add_column(column, justify="right")
    for lang in ("en", "fr"):
        pick = langs == lang
        y, s, r = labels[pick].astype(bool), scores[pick], rules[pick]
        auc = roc_auc_score(y, s)
        for row, t in enumerate((None, *GRID)):
            model = s >= t if t is not None else np.zeros_like(y)
            said = r | model
            tp = int((said & y).sum())
            p = tp / max(int(said.sum()), 1)
            rec = tp / max(int(y.sum()), 1)
            mtp = int((model & y).sum())
            mp, mr = mtp / max(int(model.sum()), 1), mtp / max(int(y.sum()), 1)
            first = row == 0
            table.add_row(lang if first else "", str(int(pick.sum())) if first else "",
                          str(int(y.sum())) if first else "", f"{auc:.3f}" if first else "",
                          "rules only" if t is None else f"{t:.2f}", f"{p:.3f}", f"{rec:.3f}",
                          "" if t is None else f"{mp:.3f} / {mr:.3f}")
        table.add_section()
    console.print(table)
    if head in ADDED_PRECISION_GOALS:
        return print_added(console, head, labels, scores, rules, langs)
    fine = np.round(np.arange(0.01, 1.0, 0.01), 2)
    for goal in RECALL_GOALS[head]:
        best = {}
        for lang in ("en", "fr"):
            pick = langs == lang
            y, s, r = labels[pick].astype(bool), scores[pick], rules[pick]
            ok = [t for t in fine if ((r | (s >= t)) & y).sum() / y.sum() >= goal]
            best[lang] = max(ok) if ok else 0.0
        each = ", ".join(f"{k} {v:.2f}" for k, v in best.items())
        console.print(f"largest t with out-of-fold recall >= {goal} in both languages: "
                      f"{min(best.values()):.2f} ({each})")
    smallest = {}
    for lang in ("en", "fr"):
        pick = langs == lang
        y, s, r = labels[pick].astype(bool), scores[pick], rules[pick]
        ok = [t for t in fine if ((r | (s >= t)) & y).sum() / max((r | (s >= t)).sum(), 1)
              >= PRECISION_GOAL]
        smallest[lang] = min(ok) if ok else 1.0
    each = ", ".join(f"{k} {v:.2f}" for k, v in smallest.items())
    console.print(f"smallest t with out-of-fold precision >= {PRECISION_GOAL} in both "
                  f"languages: {max(smallest.values()):.2f} ({each})")
    return 0


def print_added(console: Console, head: str, labels: np.ndarray, scores: np.ndarray,
                rules: np.ndarray, langs: np.ndarray) -> int:
    """What the model adds to the phrase rules per threshold, and the threshold chosen."""
    goal = ADDED_PRECISION_GOALS[head]
    table = Table(title=f"{head}: lines the model adds (no phrase rule reports them), out-of-fold")
    for column in ("lang", "t", "added right", "added wrong", "precision of added"):
        table.add_column(column, justify="right")
    chosen = {}
    for lang in ("en", "fr"):
        pick = langs == lang
        y, s, r = labels[pick].astype(bool), scores[pick], rules[pick]
        for t in np.round(np.arange(0.50, 1.0, 0.05), 2):
            added = ~r & (s >= t)
            right, wrong = int((added & y).sum()), int((added & ~y).sum())
            precision = right / max(right + wrong, 1)
            if precision >= goal and lang not in chosen:
                chosen[lang] = float(t)
            table.add_row(lang, f"{t:.2f}", str(right), str(wrong), f"{precision:.3f}")
        table.add_section()
    console.print(table)
    each = ", ".join(f"{k} {v:.2f}" for k, v in chosen.items())
    console.print(f"smallest t (step 0.05) whose added lines are right >= {goal:.0%} of the "
                  f"time: {each}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
