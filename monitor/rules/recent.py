"""A bounded, thread-safe window of recently seen comments, for repetition and bursts.

Why in memory: spam arrives in bursts within minutes, and the engine must decide per
comment without a database round trip.  The window is bounded in entries and in time,
so a flood cannot exhaust memory.  It does not survive a restart and is not shared
between workers; that is why a burst's detections also carry a `group_key`, by which
the store (`monitor.store.record_finding`) records one finding per burst and window
whatever process saw its comments, and why a service replays stored comments into it
(`monitor.evaluate.Evaluator.remember_recent`): sightings carry the item's identity, so
a comment replayed twice is still counted once.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field


def fingerprint(normalised_text: str) -> str:
    """Hash of a comment's normalised words, so 'FREE iPhone!!' == 'free iphone!'."""
    words = "".join(c if c.isalnum() else " " for c in normalised_text).split()
    return hashlib.blake2b(" ".join(words).encode("utf-8", "replace"), digest_size=12).hexdigest()


_ITEMS_PER_ENTRY = 1_000  # identities kept per key; a larger flood may count a replay twice


@dataclass
class _Entry:
    first_seen: float
    last_seen: float
    authors: dict[str, int] = field(default_factory=dict)
    items: set[str] = field(default_factory=set)


class RecentWindow:
    """Counts (key -> authors) seen within `window_seconds`, keeping at most `capacity` keys."""

    def __init__(self, window_seconds: float = 3600.0, capacity: int = 10_000) -> None:
        self.window = window_seconds
        self.capacity = capacity
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def observe(self, key: str, author: str, at: float | None = None,
                item: str | None = None) -> tuple[int, int]:
        """Record one sighting; return (times this author sent it, distinct authors).

        `item` identifies the comment: a second sighting of the same item (a replay of
        a comment this window has already seen) changes no count.
        """
        now = time.time() if at is None else at
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or now - entry.first_seen > self.window:
                entry = _Entry(now, now)
                self._entries[key] = entry
            if item is not None:
                if item in entry.items:
                    return entry.authors.get(author, 0), len(entry.authors)
                if len(entry.items) < _ITEMS_PER_ENTRY:
                    entry.items.add(item)
            entry.last_seen = now
            entry.authors[author] = entry.authors.get(author, 0) + 1
            self._entries.move_to_end(key)
            self._evict(now)
            return entry.authors[author], len(entry.authors)

    def first_in_burst(self, key: str, at: float | None = None) -> bool:
        """True the first time `key` is seen within the window (then remembers it)."""
        now = time.time() if at is None else at
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and now - entry.last_seen <= self.window:
                entry.last_seen = now
                self._entries.move_to_end(key)
                return False
            self._entries[key] = _Entry(now, now)
            self._entries.move_to_end(key)
            self._evict(now)
            return True

    def _evict(self, now: float) -> None:
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        while self._entries:
            oldest = next(iter(self._entries.values()))
            if now - oldest.last_seen <= self.window:
                break
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
