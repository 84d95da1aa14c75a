"""Professional office hours (section 7): "mon-fri 08:00-16:30", several ranges by ';'."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time

_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_RANGE = re.compile(
    r"^\s*(?:(?P<d1>[a-z]{3})(?:\s*-\s*(?P<d2>[a-z]{3}))?\s+)?"
    r"(?P<t1>\d{1,2}:\d{2})\s*-\s*(?P<t2>\d{1,2}:\d{2})\s*$"
)


@dataclass(frozen=True, slots=True)
class HoursRange:
    days: frozenset[int]
    start: time
    end: time

    def contains(self, moment: datetime) -> bool:
        return moment.weekday() in self.days and self.start <= moment.time() < self.end


def _day(name: str) -> int:
    try:
        return _DAYS.index(name)
    except ValueError:
        raise ValueError(f"unknown day {name!r} (use mon, tue, ... sun)") from None


def parse_office_hours(spec: str) -> tuple[HoursRange, ...]:
    """Parse e.g. "mon-fri 08:00-16:30; sat 10:00-12:00"; raise ValueError naming the part."""
    ranges = []
    for part in spec.lower().split(";"):
        if not part.strip():
            continue
        m = _RANGE.match(part)
        if m is None:
            raise ValueError(
                f"cannot read office hours {part.strip()!r}: expected 'mon-fri 08:00-16:30'"
            )
        if m["d1"]:
            first, last = _day(m["d1"]), _day(m["d2"] or m["d1"])
            days = (
                frozenset(range(first, last + 1))
                if first <= last
                else frozenset([*range(first, 7), *range(0, last + 1)])
            )
        else:
            days = frozenset(range(7))
        start, end = time.fromisoformat(m["t1"].zfill(5)), time.fromisoformat(m["t2"].zfill(5))
        if end <= start:
            raise ValueError(f"office hours {part.strip()!r} end before they start")
        ranges.append(HoursRange(days, start, end))
    if not ranges:
        raise ValueError("office hours are empty")
    return tuple(ranges)


def within(ranges: tuple[HoursRange, ...], local_moment: datetime) -> bool:
    return any(r.contains(local_moment) for r in ranges)
