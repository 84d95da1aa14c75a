"""Shadow mode: run the packs over exported history and count what they would have found.

A board tunes its packs on its own past comments before going live, so the first
week of alerts is not a flood.  Input is the replay JSON Lines format (see
`connectors/replay.py`); settings events are diffed per account so exposure changes
show up too.  Nothing is stored or sent.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from monitor.model import Audience, Author, Item, ItemKind, SettingsChange, Subject, SubjectKind
from monitor.rules.engine import RuleEngine
from monitor.timeutil import parse_timestamp

_BATCH = 2_000


@dataclass
class ShadowReport:
    """Findings counted by (ISO week, section, severity) and by rule."""

    by_week: Counter[tuple[str, str, str]]
    by_rule: Counter[str]
    subjects: int
    skipped: list[str]


def _week(at: datetime) -> str:
    year, week, _ = at.isocalendar()
    return f"{year}-W{week:02d}"


def _subjects(path: Path, language: str, skipped: list[str]) -> Iterator[tuple[datetime, Subject]]:
    audiences: dict[str, tuple[Audience, dict[str, Any]]] = {}
    with path.open(encoding="utf-8", errors="replace") as fh:
        for lineno, raw in enumerate(fh, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            try:
                event = json.loads(line)
                if not isinstance(event, dict):
                    raise ValueError("expected a JSON object")
                at = parse_timestamp(event["at"])
                account = str(event.get("account", "replay"))
                if event.get("type") == "settings":
                    subject = _settings_subject(event, account, language, audiences)
                else:
                    subject = _item_subject(event, at, account, language)
            except (ValueError, KeyError, TypeError) as exc:
                skipped.append(f"{path}:{lineno}: {type(exc).__name__}: {exc}")
                continue
            if subject is not None:
                yield at, subject


def _item_subject(event: dict[str, Any], at: datetime, account: str, language: str) -> Subject:
    kind = ItemKind(event["type"])
    author = event.get("author") or {}
    if not isinstance(author, dict):
        raise ValueError("'author' must be an object")
    text = event.get("text", "")
    if not isinstance(text, str):
        raise ValueError("'text' must be a string")
    item = Item(platform="replay", account_id=account, kind=kind, external_id=str(event["id"]),
                author=Author(id=str(author.get("id", "")), handle=str(author.get("handle", ""))),
                text=text, created_at=at)
    return Subject(kind=SubjectKind(kind.value), account_id=account, school_id="shadow",
                   language=str(event.get("language", language)), text=text, item=item)


def _settings_subject(event: dict[str, Any], account: str, language: str,
                      seen: dict[str, tuple[Audience, dict[str, Any]]]) -> Subject | None:
    audience = Audience[str(event.get("audience", "public")).upper()]
    fields = event.get("fields", {})
    if not isinstance(fields, dict):
        raise ValueError("'fields' must be an object")
    before = seen.get(account)
    seen[account] = (audience, fields)
    if before is None:
        return None
    old_audience, old_fields = before
    changes = [SettingsChange(k, old_fields.get(k), fields.get(k))
               for k in sorted(set(old_fields) | set(fields)) if old_fields.get(k) != fields.get(k)]
    if old_audience != audience:
        changes.append(SettingsChange("audience", old_audience.name.lower(), audience.name.lower()))
    if not changes:
        return None
    text = "; ".join(f"{c.field}: {c.old} -> {c.new}" for c in changes)
    return Subject(kind=SubjectKind.SETTINGS_CHANGE, account_id=account, school_id="shadow",
                   language=language, text=text, changes=tuple(changes),
                   audience_before=old_audience, audience_after=audience)


def shadow(engine: RuleEngine, path: Path, language: str = "en") -> ShadowReport:
    """Evaluate every event of `path` in batches and count the findings."""
    report = ShadowReport(Counter(), Counter(), 0, [])
    batch: list[tuple[datetime, Subject]] = []

    def flush() -> None:
        results = engine.evaluate_batch([s for _, s in batch])
        for (at, _), detections in zip(batch, results, strict=True):
            for d in detections:
                report.by_week[(_week(at), d.section, d.severity.value)] += 1
                report.by_rule[d.rule_id] += 1
        report.subjects += len(batch)
        batch.clear()

    for pair in _subjects(path, language, report.skipped):
        batch.append(pair)
        if len(batch) >= _BATCH:
            flush()
    if batch:
        flush()
    return report
