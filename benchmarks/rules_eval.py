"""Detection quality of the shipped packs on the labelled corpus (tests/corpus/*.jsonl).

Prints precision, recall and F1 per category and language, for the dev split (the
lines the patterns were tuned on), the held-out split (written before any tuning) and
both, plus a "blind" split read from tests/corpus/heldout3_<lang>.jsonl when that
file exists (a set written by someone else and never read while tuning; skipped
silently when absent, and not part of "all").
Usage: `.venv/bin/python benchmarks/rules_eval.py [-v] [--only=SPLIT,...] [--markdown]
[--pooled]`; --pooled also prints each category's counts summed over the tuning rounds
evaluated, per language (`--only=indep50,indep51 --pooled`: a held-out pair as one
figure); --markdown also prints the summary table of docs/detection-quality.md (one row per
split: P / R per category, F1 for inappropriate language; held-out rounds marked); -v also
lists every misclassified line (blind lines too: do not run -v while tuning if the
blind set must stay unseen); `--only=pi_dev4` prints those splits alone (a first look at
a new tuning round without measuring the blind set once more).  Exit code 0 (the
targets are asserted by tests/test_rules_corpus.py, not here).
Since session 10 the classifier's crisis and personal-information heads are fitted on
the tuning rounds, so those categories' figures on a round are in-sample unless the
round is in `HELD_OUT_ROUNDS` (marked "held out" by --markdown).
"""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.model import Detection  # noqa: E402
from monitor.rules.engine import RuleEngine  # noqa: E402
from monitor.rules.quality import (  # noqa: E402
    CATEGORIES,
    HELD_OUT_ROUNDS,
    ROUND_PREFIXES,
    Example,
    Scores,
    categories,
    detect,
    errors,
    load_splits,
    score,
)

# Which findings count as "crisis reported" at each stage of the duty-of-care rules
STAGES = {
    "phrase rules only": lambda d: d.category == "crisis" and d.detector != "text_model",
    "+ classifier, urgent": lambda d: d.category == "crisis",
    "+ classifier review (digest) too": lambda d: d.category in ("crisis", "crisis_review"),
}


def crisis_stages(examples: list[Example], found: list[list[Detection]]) -> dict[str, Scores]:
    """Crisis precision and recall when each stage of the crisis rules is counted."""
    out = {}
    for stage, counts in STAGES.items():
        said = [any(counts(d) for d in detections) for detections in found]
        want = ["crisis" in e.labels for e in examples]
        out[stage] = Scores(sum(w and s for w, s in zip(want, said, strict=True)),
                            sum(s and not w for w, s in zip(want, said, strict=True)),
                            sum(w and not s for w, s in zip(want, said, strict=True)))
    return out


def _cell(s: Scores, f1: bool = False) -> str:
    """A docs table cell: blank without positives, in parentheses under ten of them."""
    positives = s.tp + s.fn
    if not positives:
        return ""
    text = f"{s.f1:.3f}" if f1 else f"{s.precision:.3f} / {s.recall:.3f}"
    return text if positives >= 10 else f"({text})"


def markdown(evaluated: list[tuple[str, str, list[Example], list[list[Detection]]]]) -> str:
    """The summary table of docs/detection-quality.md, one row per language and split."""
    lines = ["| lang | split | crisis P / R | personal information P / R "
             "| inappropriate language F1 | bullying P / R | spam P / R |",
             "|---|---|---|---|---|---|---|"]
    for lang, split, examples, found in evaluated:
        if split in ("dev", "heldout"):  # "all" is both
            continue
        s = score(examples, [categories(d) for d in found])
        name = f"{split} ({len(examples)})"
        if split == "blind":
            name = f"**{name}**"
        elif split in HELD_OUT_ROUNDS:
            name = f"{name}, held out"
        cells = [_cell(s["crisis"]), _cell(s["personal_information"]),
                 _cell(s["inappropriate_language"], f1=True), _cell(s["bullying"]),
                 _cell(s["spam"])]
        lines.append(f"| {lang} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pooled(evaluated: list[tuple[str, str, list[Example], list[list[Detection]]]]) -> str:
    """Each category's counts summed over the rounds evaluated, per language."""
    lines = []
    for lang in ("en", "fr"):
        rounds = [(split, examples, found) for lg, split, examples, found in evaluated
                  if lg == lang and split.startswith(ROUND_PREFIXES)]
        if not rounds:
            continue
        totals = {c: Scores(0, 0, 0) for c in CATEGORIES}
        for _, examples, found in rounds:
            for c, s in score(examples, [categories(d) for d in found]).items():
                t = totals[c]
                totals[c] = Scores(t.tp + s.tp, t.fp + s.fp, t.fn + s.fn)
        names = "+".join(split for split, _, _ in rounds)
        for c, t in totals.items():
            lines.append(f"{lang} {names} {c}: P {t.precision:.3f} R {t.recall:.3f} "
                         f"(tp {t.tp}, fp {t.fp}, fn {t.fn})")
    return "\n".join(lines)


def main() -> int:
    verbose = "-v" in sys.argv[1:]
    only = {name for a in sys.argv[1:] if a.startswith("--only=")
            for name in a.removeprefix("--only=").split(",") if name}

    console = Console(width=120)
    engine = RuleEngine.shipped()
    table = Table(title="Detection quality (shipped packs)")
    for column in ("lang", "split", "category", "n+", "precision", "recall", "F1"):
        table.add_column(column, justify="left" if column in ("lang", "split", "category")
                         else "right")
    problems: list[str] = []
    # each split is evaluated once; the crisis-by-stage table reads the same detections
    evaluated: list[tuple[str, str, list[Example], list[list[Detection]]]] = []
    for lang in ("en", "fr"):
        for split, examples in load_splits(ROOT / "tests" / "corpus", lang).items():
            if not examples or (only and split not in only):
                continue
            found = detect(engine, examples, lang)
            evaluated.append((lang, split, examples, found))
            predictions = [categories(d) for d in found]
            if split in ("all", "blind") or split in only:
                problems += [f"{lang} {line}" for line in errors(examples, predictions)]
            for category, s in score(examples, predictions).items():
                table.add_row(lang, f"{split} ({len(examples)})", category, str(s.tp + s.fn),
                              f"{s.precision:.3f}", f"{s.recall:.3f}", f"{s.f1:.3f}")
            table.add_section()
    console.print(table)
    stages = Table(title="Crisis by stage (the phrase rules, then the classifier)")
    for column in ("lang", "split", "stage", "tp", "fp", "fn", "precision", "recall"):
        stages.add_column(column, justify="left" if column in ("lang", "split", "stage")
                          else "right")
    for lang, split, examples, found in evaluated:
        if split in ("all", "blind") or split.startswith(ROUND_PREFIXES):
            for stage, s in crisis_stages(examples, found).items():
                stages.add_row(lang, f"{split} ({len(examples)})", stage, str(s.tp),
                               str(s.fp), str(s.fn), f"{s.precision:.3f}", f"{s.recall:.3f}")
            stages.add_section()
    console.print(stages)
    console.print(f"categories: {', '.join(CATEGORIES)}; {len(problems)} misclassified lines")
    if "--markdown" in sys.argv[1:]:
        print(markdown(evaluated))
    if "--pooled" in sys.argv[1:]:
        print(pooled(evaluated))
    if verbose:
        for line in problems:
            console.print(line, markup=False, highlight=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
