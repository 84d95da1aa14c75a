"""Instructions the rule engine executes for 5,000 comments, counted by callgrind.

Why: wall-clock throughput on a shared VM moves by 10-15% between passes of the same
code, more than most changes to the engine; an instruction count does not.  The engine
is warmed on 20,000 comments first (models loaded, RE2 DFA states built, as in a
running service), then instrumentation is switched on for the next N comments only.
Run it under callgrind, with string hashing fixed (it moves the count by 2-3%):

  PYTHONHASHSEED=0 valgrind --tool=callgrind --instr-atstart=no \\
      --callgrind-out-file=/tmp/rules.callgrind \\
      .venv/bin/python benchmarks/rules_instructions.py [N]

and read "Collected" on valgrind's last line.  Run without valgrind it only times the
same N comments (one pass, no warm-up repeat): `rules_bench.py` is the throughput figure.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from rules_bench import BATCH, warmed_engine  # noqa: E402

WARM = 20_000


def _instrument(on: bool) -> None:
    """Switch callgrind's counting on or off for this process (no-op outside valgrind)."""
    try:
        subprocess.run(["callgrind_control", "-i", "on" if on else "off", str(os.getpid())],
                       capture_output=True, check=False)
    except FileNotFoundError:
        pass


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5_000
    engine, timed = warmed_engine(WARM, n)
    gc.collect()
    gc.freeze()
    _instrument(True)
    start = time.perf_counter()
    for i in range(0, n, BATCH):
        engine.evaluate_batch(timed[i : i + BATCH])
    elapsed = time.perf_counter() - start
    _instrument(False)
    print(f"{n} comments after {WARM} to warm up: {elapsed:.2f} s "
          f"(under callgrind, read its 'Collected' count instead)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
