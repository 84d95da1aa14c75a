"""Pause Python's cyclic garbage collector while the engine evaluates a batch.

Why: a batch allocates a handful of small objects per comment (its context, the
normalised views, matches, findings) and keeps them until the batch ends.  The cyclic
collector runs every 700 allocations and walks the young objects each time, and every
tenth run walks the older ones too: on the benchmark that was about a sixth of the
engine's time (`rules_bench.py` ran 16,600 comments/s with it and 19,200/s with it
rarely running).  None of those objects form reference cycles, so reference counting
frees them all; nothing needs the cyclic collector until the batch is over, when it
is switched back on and runs as usual.

Pausing is process-wide (the collector has one switch), so it is counted: with several
threads evaluating at once, the collector comes back on when the last one finishes,
and only if it was on when the first one started.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_pausers = 0
_was_enabled = False


@contextmanager
def paused() -> Iterator[None]:
    """Keep the cyclic collector off inside the block (nests and is thread-safe)."""
    global _pausers, _was_enabled
    with _lock:
        if _pausers == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _pausers += 1
    try:
        yield
    finally:
        with _lock:
            _pausers -= 1
            if _pausers == 0 and _was_enabled:
                gc.enable()
