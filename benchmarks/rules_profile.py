"""Where the rule engine's time goes: microseconds per comment for each stage of
`RuleEngine.evaluate_batch`, and the rules whose detectors cost most.

Why: `rules_bench.py` gives one throughput figure; to decide what to speed up, a
newcomer needs the split between normalisation, the RE2 Set prefilter, the two batched
models and the per-rule detectors, on the same input (the corpus-made comments of
`rules_bench.py`, an engine warmed on 20,000 of them first).  It times the engine's
own stages in the order `evaluate_batch` runs them, so it reaches into its private
methods on purpose; a rename there breaks this script, not the product.  The rules run
twice: once with a clock per rule (the detector table), once through the engine's own
loop, which also builds the findings (its row is outside the total).
Wall-clock, one pass, on a shared VM: read the shares, not the last digit.
Usage: `.venv/bin/python benchmarks/rules_profile.py [N]` (N comments timed, 10,000).
"""

from __future__ import annotations

import collections
import gc
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from rules_bench import BATCH, warmed_engine  # noqa: E402

from monitor.rules import collector  # noqa: E402
from monitor.rules.detectors import Context  # noqa: E402
from monitor.rules.normalize import normalize  # noqa: E402

WARM = 20_000


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    engine, timed = warmed_engine(WARM, n)
    gc.collect()
    gc.freeze()

    start = time.perf_counter()
    for s in timed:
        normalize(s.text)
    normalise_s = time.perf_counter() - start

    stages: collections.Counter[str] = collections.Counter()
    whole_loop = 0.0
    per_rule: collections.Counter[str] = collections.Counter()
    passed: collections.Counter[str] = collections.Counter()
    fired: collections.Counter[str] = collections.Counter()
    for i in range(0, n, BATCH):
        probabilities: dict[str, float] = {}
        memo: dict[str, bytes] = {}
        with collector.paused():  # as evaluate_batch runs its stages
            t = time.perf_counter()
            prepared = [engine._prepare(Context(s, probabilities, memo))
                        for s in timed[i : i + BATCH]]
            stages["normalisation + Set prefilter"] += time.perf_counter() - t
            t = time.perf_counter()
            engine._classify(prepared, probabilities)
            stages["profanity model (batched)"] += time.perf_counter() - t
            t = time.perf_counter()
            engine._score_batches(prepared)
            stages["text classifier (batched)"] += time.perf_counter() - t
            for ctx, rules in prepared:
                for compiled in rules:
                    t = time.perf_counter()
                    found = compiled.detector.detect(ctx)
                    per_rule[compiled.rule.id] += time.perf_counter() - t
                    passed[compiled.rule.id] += 1
                    fired[compiled.rule.id] += bool(found)
            # the same rules again through the engine's own loop, which also builds the
            # findings: timed apart, since the per-rule clocks above cost time of their own
            t = time.perf_counter()
            for ctx, rules in prepared:
                engine._run(ctx, rules)
            whole_loop += time.perf_counter() - t
            del prepared
    stages["rule detectors"] = sum(per_rule.values())
    total = sum(stages.values())

    def us(seconds: float) -> str:
        return f"{seconds * 1e6 / n:.1f}"

    table = Table(title=f"Stages, µs per comment ({n:,} comments, batches of {BATCH:,})")
    for column in ("stage", "µs", "share"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for stage, seconds in stages.items():
        table.add_row(stage, us(seconds), f"{seconds / total:.0%}")
    table.add_row("(of which normalisation alone)", us(normalise_s), f"{normalise_s / total:.0%}")
    table.add_row("(rule loop with its findings, one clock)", us(whole_loop), "")
    table.add_row("total", us(total), f"{n / total:,.0f} comments/s")
    rules = Table(title="Costliest rule detectors")
    for column in ("rule", "passed the prefilter", "fired", "µs per comment", "µs per call"):
        rules.add_column(column, justify="left" if column == "rule" else "right",
                         min_width=26 if column == "rule" else None)
    for rule_id, seconds in per_rule.most_common(12):
        rules.add_row(rule_id, f"{passed[rule_id]:,}", f"{fired[rule_id]:,}", us(seconds),
                      f"{seconds * 1e6 / passed[rule_id]:.0f}")
    console = Console()
    console.print(table)
    console.print(rules)
    print(f"rules run per comment after the prefilter: {sum(passed.values()) / n:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
