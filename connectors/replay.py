"""Replay: read a JSON Lines file of timestamped events as if a platform returned them.

It feeds the demo and the tests, and lets IT dry-run the rules on exported history.
Each line is one event; an event is returned by the first poll whose clock is at or
after its `at` time, so a test can move time forward and see events "arrive".  The
cursor is the number of lines consumed; a malformed line is reported with its
line number and skipped, the lines around it are still processed.

Event shape (one JSON object per line)::

    {"at": "2026-11-20T14:03:00Z", "account": "grade5-x", "type": "comment",
     "id": "c-1", "parent": "p-1", "author": {"id": "u1", "handle": "sam", "name": "Sam"},
     "text": "Great trip!", "url": "https://x.com/i/status/c-1"}
    {"at": "...", "account": "grade5-x", "type": "settings", "audience": "private",
     "fields": {"protected": true}, "roles": [{"id": "9", "name": "Ms Lee",
     "role": "admin", "email": "lee@central.example"}]}

`type` is one of comment, reply, mention, tag, own_post, settings.  `account`
may be omitted when the file holds one account's history.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from connectors.base import AccountPoll, Connector, ConnectorError, MalformedPayloadError
from monitor.model import (
    Audience,
    Author,
    Item,
    ItemKind,
    PollResult,
    RoleHolder,
    SettingsSnapshot,
)
from monitor.timeutil import parse_timestamp

CURSOR = "line"


class ReplayOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Sleep this long in every poll, as a distant API would (tests and benchmarks of
    # scale-out); bounded so a typo cannot stall a worker for minutes per account.
    delay_seconds: float = Field(default=0, ge=0, le=5)


class ReplayConnector(Connector, platform="replay"):
    """Replays a JSON Lines file of recorded events (demo, tests, rule dry-runs)."""

    Options = ReplayOptions

    def poll(self, account: Any, cursors: Mapping[str, str], now: datetime) -> PollResult:
        return self._replay(account, _read(account), cursors, now)

    def poll_many(
        self, polls: Sequence[AccountPoll], now: datetime
    ) -> dict[str, PollResult | ConnectorError]:
        """Read each replay file once per cycle, however many accounts share it."""
        files: dict[Path | None, list[str] | ConnectorError] = {}
        results: dict[str, PollResult | ConnectorError] = {}
        for p in polls:
            key = p.account.replay_file
            if key not in files:
                try:
                    files[key] = _read(p.account)
                except ConnectorError as exc:
                    files[key] = exc
            lines = files[key]
            try:
                if isinstance(lines, ConnectorError):
                    raise lines
                results[p.account.id] = self._replay(p.account, lines, p.cursors, now)
            except ConnectorError as exc:
                results[p.account.id] = exc
        return results

    def _replay(
        self, account: Any, lines: list[str], cursors: Mapping[str, str], now: datetime
    ) -> PollResult:
        path = account.replay_file
        delay = ReplayOptions.model_validate(account.options).delay_seconds
        if delay:
            time.sleep(delay)
        start = int(cursors.get(CURSOR, "0") or 0)
        items: list[Item] = []
        snapshots: list[SettingsSnapshot] = []
        warnings: list[str] = []
        consumed = start
        for index in range(start, len(lines)):
            line = lines[index].strip()
            lineno = index + 1
            if not line or line.startswith("#"):
                consumed = index + 1
                continue
            try:
                event = json.loads(line)
                if not isinstance(event, dict):
                    raise ValueError("expected a JSON object")
                at = parse_timestamp(event["at"])
            except (ValueError, KeyError, TypeError) as exc:
                warnings.append(f"{path}:{lineno}: skipped malformed event: {_describe(exc)}")
                consumed = index + 1
                continue
            if at > now:
                break  # not yet "published"; a later poll returns it
            consumed = index + 1
            if event.get("account", account.id) != account.id:
                continue
            try:
                if event.get("type") == "settings":
                    snapshots.append(_snapshot(event, at))
                else:
                    items.append(_item(event, at, account.id))
            except (ValueError, KeyError, TypeError) as exc:
                warnings.append(f"{path}:{lineno}: skipped malformed event: {_describe(exc)}")
        return PollResult(
            items=items,
            settings_snapshot=snapshots[-1] if snapshots else None,
            earlier_snapshots=snapshots[:-1],
            new_cursors={CURSOR: str(consumed)} if consumed != start else {},
            warnings=warnings,
        )


def _read(account: Any) -> list[str]:
    path = account.replay_file
    if path is None:
        raise ConnectorError("replay account has no replay_file")
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConnectorError(f"replay file {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MalformedPayloadError(f"replay file {path} unreadable: {exc}") from None


def _describe(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"missing key {exc.args[0]!r}"
    return str(exc) or type(exc).__name__


def _item(event: dict[str, Any], at: datetime, account_id: str) -> Item:
    try:
        kind = ItemKind(event["type"])
    except ValueError:
        raise ValueError(
            f"unknown type {event['type']!r} (expected one of "
            f"{', '.join(k.value for k in ItemKind)}, settings)"
        ) from None
    author = event.get("author") or {}
    if not isinstance(author, dict):
        raise ValueError("'author' must be an object")
    text = event.get("text", "")
    if not isinstance(text, str):
        raise ValueError("'text' must be a string")
    return Item(
        platform="replay",
        account_id=account_id,
        kind=kind,
        external_id=str(event["id"]),
        parent_id=str(event["parent"]) if event.get("parent") else None,
        author=Author(
            id=str(author.get("id", "")),
            handle=str(author.get("handle", "")),
            display_name=str(author.get("name", "")),
        ),
        text=text,
        url=event.get("url"),
        created_at=at,
        raw=event,
    )


def _snapshot(event: dict[str, Any], at: datetime) -> SettingsSnapshot:
    try:
        audience = Audience[str(event.get("audience", "public")).upper()]
    except KeyError:
        raise ValueError("'audience' must be private, restricted or public") from None
    roles = tuple(
        RoleHolder(
            platform_user_id=str(r["id"]),
            name=str(r.get("name", "")),
            role=str(r.get("role", "")),
            email=r.get("email"),
        )
        for r in event.get("roles", [])
    )
    fields = event.get("fields", {})
    if not isinstance(fields, dict):
        raise ValueError("'fields' must be an object")
    return SettingsSnapshot(
        taken_at=at, audience=audience, fields=fields, role_holders=roles, raw=event
    )
