"""Shared HTTP helpers for connectors: bounded retries and a rate-limit ledger.

Private (leading underscore) so `load_connectors` does not import it as a connector.
Nothing here knows a platform: the connector decides which exceptions are worth a
retry and which rate-limit "scope" (an app, an account) a response belongs to.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to insist on timeouts and 5xx before giving up for this poll.

    Bounded on purpose: the engine polls again in a few minutes anyway, and a long
    retry loop in one account would hold a worker thread the others may need.
    """

    attempts: int = 3
    wait_seconds: float = 0.5
    max_wait_seconds: float = 4.0


def call_with_retries(
    call: Callable[[], T],
    policy: RetryPolicy,
    retry_on: tuple[type[BaseException], ...],
) -> T:
    """Run `call`, retrying `retry_on` exceptions with jittered exponential backoff.

    Jitter keeps many accounts that failed together from retrying in lock-step.
    The last exception is re-raised unchanged so the caller can map it.
    """
    retrying = Retrying(
        stop=stop_after_attempt(policy.attempts),
        wait=wait_random_exponential(multiplier=policy.wait_seconds, max=policy.max_wait_seconds),
        retry=retry_if_exception_type(retry_on),
        reraise=True,
    )
    return retrying(call)


def header_int(headers: Mapping[str, str], name: str) -> int | None:
    """An integer header such as x-rate-limit-reset, or None when absent or garbled."""
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


class RateLimitLedger:
    """Remembers, per scope, until when no request may be sent.

    A scope is any string the connector chooses, e.g. ``app:<fingerprint>:mentions``
    (every account using that app token waits) or ``account:<id>:hide`` (only that
    account waits).  Thread-safe because `poll_many` polls accounts in parallel and
    they share app scopes.  Times are wall-clock epoch seconds because the
    platforms' reset headers are.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._clock()

    def wait_for(self, scopes: Iterable[str]) -> float | None:
        """Seconds still to wait before any of `scopes` may be used, or None if free."""
        now = self._clock()
        with self._lock:
            waits = [self._until.get(s, 0.0) - now for s in scopes]
        longest = max(waits, default=0.0)
        return longest if longest > 0 else None

    def block(self, scope: str, until: float) -> None:
        """Forbid `scope` until epoch `until` (never shortens an existing block)."""
        with self._lock:
            self._until[scope] = max(until, self._until.get(scope, 0.0))
            self._forget_expired()

    def _forget_expired(self) -> None:
        now = self._clock()
        for scope in [s for s, t in self._until.items() if t <= now]:
            del self._until[scope]
