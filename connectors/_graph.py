"""The Graph API client and polling skeleton shared by Facebook and Instagram.

Both platforms speak the same Graph API through the same `facebook.GraphAPI`
(facebook-sdk 3.1.0), so what is about Graph rather than about pages or media lives
here once: routing to the configured host and version, bounded retries, error
mapping, usage-based slow-down, the batch format, time-window cursors and the
batched `poll_many`.  The platform modules only say which edges to read and how a
payload becomes `Item`s and a `SettingsSnapshot`.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit

import facebook
import requests
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from connectors.base import (
    AccountPoll,
    AuthError,
    Connector,
    ConnectorError,
    MalformedPayloadError,
    PermissionDeniedError,
    RateLimitedError,
    TransientError,
)
from monitor.config import Duration
from monitor.model import Author, Item, ItemKind, PollResult
from monitor.secrets import MissingSecretError
from monitor.timeutil import parse_timestamp

if TYPE_CHECKING:
    from monitor.config import AccountConfig

AUTH_CODES = frozenset({102, 190})
APP_RATE_CODES = frozenset({4, 17})  # app-level and token (user) level: every page of the token
OBJECT_RATE_CODES = frozenset({32, 613, *range(80000, 80015)})  # one page / IG account
TRANSIENT_CODES = frozenset({1, 2})
_SUBCODES = {458: "app not installed", 460: "password changed", 463: "expired",
             464: "unconfirmed user", 467: "invalid", 492: "invalid session"}
_VERSIONED = re.compile(r"^v\d+\.\d+(/|$)")
_TOKEN_PARAM = re.compile(r"(access_token=)[^&\s'\"]+")


# --------------------------------------------------------------------------- routing
def route_url(url: str, base_url: str, version: str) -> str:
    """Send a URL the SDK built on its hard-coded host to `base_url`, with a version.

    facebook-sdk 3.1.0 concatenates `FACEBOOK_GRAPH_URL + path`; `get_object` adds
    `graph.version` but `request()` (used for batches and `paging.next`) does not,
    so a path that does not start with `vN.N` gets the configured version here.
    """
    if not url.startswith(facebook.FACEBOOK_GRAPH_URL):
        return url
    rest = url[len(facebook.FACEBOOK_GRAPH_URL):]
    if not _VERSIONED.match(rest):
        rest = f"{version}/{rest}" if rest else version
    return f"{base_url}/{rest}"


class _ServerError(Exception):
    """A 5xx the SDK would otherwise half-parse; raised so the call is retried."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class _RoutedSession(requests.Session):
    """The one place that works around facebook-sdk's fixed host, and reads usage headers.

    The SDK accepts `session=`; overriding `request` (rather than mounting an adapter)
    rewrites the URL before requests picks proxies and cookies for it.
    """

    def __init__(self, base_url: str, version: str, meter: UsageMeter,
                 pool_size: int = 10) -> None:
        super().__init__()
        self._base_url = base_url
        self._version = version
        self._meter = meter
        self.hooks["response"].append(self._on_response)
        # one session per token serves up to `pool_size` threads at once
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
        self.mount("https://", adapter)
        self.mount("http://", adapter)

    def request(self, method: str | bytes, url: str | bytes,
                *args: Any, **kwargs: Any) -> requests.Response:
        target = route_url(url.decode() if isinstance(url, bytes) else url,
                           self._base_url, self._version)
        response = super().request(method, target, *args, **kwargs)
        if response.status_code >= 500 and not _final_error(response):
            raise _ServerError(response.status_code)
        return response

    def _on_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._meter.observe(response.headers)


def _final_error(response: requests.Response) -> bool:
    """A 5xx whose JSON names an auth, permission or rate error is not worth retrying."""
    try:
        code = _as_int(response.json().get("error", {}).get("code"))
    except (ValueError, AttributeError):
        return False
    return code in AUTH_CODES | APP_RATE_CODES | OBJECT_RATE_CODES or _is_permission(code)


def new_graph(token: str, *, base_url: str, version: str, timeout: float,
              meter: UsageMeter, pool_size: int = 10) -> facebook.GraphAPI:
    """Build the SDK client; its constructor only accepts versions 2.8–3.1, so set it after."""
    graph = facebook.GraphAPI(access_token=token, timeout=timeout,
                              session=_RoutedSession(base_url, version, meter, pool_size))
    graph.version = version
    return graph


# --------------------------------------------------------------------------- usage
@dataclass
class Usage:
    """The fullest usage seen since the last `take()`: app-wide and per Graph object."""

    app_percent: float = 0.0
    objects: dict[str, tuple[float, float]] = field(default_factory=dict)  # id -> (%, minutes)


class UsageMeter:
    """Collects `X-App-Usage` and `X-Business-Use-Case-Usage` from every response.

    Graph reports usage as percentages of a rolling one-hour budget; reading them lets
    the connector slow down before the platform blocks the app for everyone.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._usage = Usage()

    def observe(self, headers: Mapping[str, str]) -> None:
        lower = {k.lower(): v for k, v in headers.items()}
        app = _loads(lower.get("x-app-usage"))
        buc = _loads(lower.get("x-business-use-case-usage"))
        with self._lock:
            if isinstance(app, dict):
                self._usage.app_percent = max(self._usage.app_percent, _percent(app))
            if isinstance(buc, dict):
                for object_id, entries in buc.items():
                    for entry in entries if isinstance(entries, list) else []:
                        if not isinstance(entry, dict):
                            continue
                        minutes = _as_float(entry.get("estimated_time_to_regain_access"))
                        old = self._usage.objects.get(str(object_id), (0.0, 0.0))
                        self._usage.objects[str(object_id)] = (
                            max(old[0], _percent(entry)), max(old[1], minutes))

    def take(self) -> Usage:
        with self._lock:
            usage, self._usage = self._usage, Usage()
        return usage


def _loads(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _percent(entry: Mapping[str, Any]) -> float:
    return max(_as_float(entry.get(k)) for k in ("call_count", "total_cputime", "total_time"))


def _as_float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


def _as_int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- errors
class GraphRateLimitedError(RateLimitedError):
    """A Graph rate-limit error; `app_wide` says whether every page of the token is blocked."""

    def __init__(self, reason: str, *, app_wide: bool, retry_after: float | None = None) -> None:
        super().__init__(reason, retry_after=retry_after)
        self.app_wide = app_wide


class _RetryableError(Exception):
    """A failure worth another attempt (timeout, connection, 5xx, Graph code 1/2)."""


def _is_permission(code: int | None) -> bool:
    return code is not None and (code == 10 or 200 <= code <= 299)


def map_graph_error(result: object,
                    redact: Callable[[str], str]) -> ConnectorError | _RetryableError:
    """Turn a Graph `{"error": {...}}` body into the connector error it means.

    The SDK raises `GraphAPIError` whatever the HTTP status and has no subcode
    attribute, so the body itself is read.  Messages are redacted: Graph echoes a
    malformed token in its message.
    """
    error = result.get("error") if isinstance(result, dict) else None
    if not isinstance(error, dict):
        return MalformedPayloadError(f"unexpected Graph API reply: {redact(str(result))[:200]}")
    code = _as_int(error.get("code"))
    subcode = _as_int(error.get("error_subcode"))
    message = redact(str(error.get("message", "")))[:300]
    label = f"code {code}" + (f", subcode {subcode}" if subcode else "")
    if code in AUTH_CODES:
        state = _SUBCODES.get(subcode or 0, "invalid or revoked")
        return AuthError(f"access token {state} ({label}); renew the token: {message}")
    if _is_permission(code):
        return PermissionDeniedError(f"the token lacks a permission ({label}): {message}")
    if code in APP_RATE_CODES or code in OBJECT_RATE_CODES:
        return GraphRateLimitedError(f"Graph API rate limit ({label}): {message}",
                                     app_wide=code in APP_RATE_CODES)
    if code in TRANSIENT_CODES or error.get("is_transient") is True:
        return _RetryableError(f"{label}: {message}")
    return ConnectorError(f"Graph API error ({label}): {message}")


# --------------------------------------------------------------------------- client
@dataclass(frozen=True, slots=True)
class GraphOp:
    """One GET: `key` names it in the reply, `optional` failures become warnings."""

    key: str
    path: str
    params: Mapping[str, str]
    optional: bool = False

    @property
    def relative_url(self) -> str:
        return f"{self.path}?{urlencode(dict(self.params))}" if self.params else self.path


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 3
    wait: float = 1.0
    max_wait: float = 30.0


class GraphClient:
    """One token against one host and version, with retries and error mapping.

    The token is only held by the SDK object and by `_redact`; it never reaches
    a reason string.
    """

    def __init__(self, token: str, *, base_url: str, version: str, timeout: float,
                 retry: RetryPolicy, pool_size: int = 10) -> None:
        self.meter = UsageMeter()
        self._token = token
        self._base_path = urlsplit(base_url).path.strip("/")
        self._retry = retry
        self._graph = new_graph(token, base_url=base_url, version=version, timeout=timeout,
                                meter=self.meter, pool_size=pool_size)

    def close(self) -> None:
        self._graph.session.close()

    def _redact(self, text: str) -> str:
        if self._token:
            text = text.replace(self._token, "***")
        return _TOKEN_PARAM.sub(r"\1***", text)

    def get(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        return _expect_dict(self._call(path, lambda: self._graph.get_object(path, **params)), path)

    def follow(self, url: str) -> dict[str, Any]:
        """Fetch a `paging.next` link: its path and query only, never its host or token."""
        parts = urlsplit(url)
        path = parts.path.strip("/")
        if self._base_path and path.startswith(self._base_path + "/"):
            path = path[len(self._base_path) + 1:]
        args = {k: v for k, v in parse_qsl(parts.query, keep_blank_values=True)
                if k != "access_token"}
        return _expect_dict(self._call("next page", lambda: self._graph.request(path, args)),
                            "next page")

    def post(self, path: str, data: Mapping[str, str]) -> dict[str, Any]:
        url = f"{self._graph.version}/{path}"
        return _expect_dict(
            self._call(path, lambda: self._graph.request(url, post_args=dict(data))), path)

    def batch(self, ops: Sequence[GraphOp]) -> list[dict[str, Any] | ConnectorError]:
        """Run up to 50 GETs in one HTTP request; each item succeeds or fails on its own.

        facebook-sdk has no batch method and returns the raw item list unchecked, so
        every item's `code` and `body` is checked here.  An item that failed
        transiently (5xx, code 1/2, or `null` because it did not finish in time) is
        fetched again on its own with the normal retries.
        """
        body = json.dumps([{"method": "GET", "relative_url": op.relative_url} for op in ops])
        raw = self._call("batch", lambda: self._graph.request(
            "", post_args={"batch": body, "include_headers": "true"}))
        if not isinstance(raw, list) or len(raw) != len(ops):
            raise MalformedPayloadError("Graph batch reply is not a list of one item per request")
        return [self._batch_item(op, item) for op, item in zip(ops, raw, strict=True)]

    def _batch_item(self, op: GraphOp, item: object) -> dict[str, Any] | ConnectorError:
        if item is None:
            return self._single(op)
        if not isinstance(item, dict):
            return MalformedPayloadError(f"{op.key}: batch item is not an object")
        headers = item.get("headers")
        if isinstance(headers, list):
            self.meter.observe({str(h.get("name")): str(h.get("value")) for h in headers
                                if isinstance(h, dict)})
        try:
            body = item.get("body")
            body = json.loads(body) if isinstance(body, str) else body
        except ValueError:
            return MalformedPayloadError(f"{op.key}: batch item body is not valid JSON")
        if isinstance(body, dict) and body.get("error"):
            error = map_graph_error(body, self._redact)
            return self._single(op) if isinstance(error, _RetryableError) else error
        code = _as_int(item.get("code"))
        if code is not None and code >= 500:
            return self._single(op)
        if not isinstance(body, dict):
            return MalformedPayloadError(f"{op.key}: batch item body is not a JSON object")
        return body

    def _single(self, op: GraphOp) -> dict[str, Any] | ConnectorError:
        try:
            return self.get(op.path, op.params)
        except ConnectorError as exc:
            return exc

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        """Call the SDK with bounded, jittered retries; raise only ConnectorErrors."""
        retrying = Retrying(
            stop=stop_after_attempt(self._retry.attempts),
            wait=wait_random_exponential(multiplier=self._retry.wait, max=self._retry.max_wait),
            retry=retry_if_exception_type(_RetryableError),
            reraise=True,
        )
        try:
            return retrying(self._once, what, fn)
        except _RetryableError as exc:
            raise TransientError(
                f"{what}: {exc} (gave up after {self._retry.attempts} attempts)") from None

    def _once(self, what: str, fn: Callable[[], Any]) -> Any:
        # Every `raise ... from None`: requests' messages carry the URL, and the URL the token.
        try:
            return fn()
        except facebook.GraphAPIError as exc:
            error = map_graph_error(exc.result, self._redact)
        except _ServerError as exc:
            error = _RetryableError(str(exc))
        except (requests.Timeout, requests.ConnectionError) as exc:
            error = _RetryableError(self._redact(f"{type(exc).__name__}: {exc}")[:300])
        except (ValueError, KeyError):  # JSON decode error, or no Content-Type header
            error = MalformedPayloadError(f"{what}: Graph API reply is not valid JSON")
        raise error from None


def _expect_dict(result: object, what: str) -> dict[str, Any]:
    if not isinstance(result, dict):
        raise MalformedPayloadError(f"{what}: Graph API reply is not a JSON object")
    return result


# --------------------------------------------------------------------------- options
class GraphOptions(BaseModel):
    """Per-account options; the defaults suit production, tests shrink the waits."""

    model_config = ConfigDict(extra="forbid")

    graph_version: str = Field(default="v21.0", pattern=r"^v\d+\.\d+$")
    timeout: float = Field(default=20.0, gt=0)
    retry_attempts: int = Field(default=3, ge=1, le=10)
    retry_wait: float = Field(default=1.0, gt=0)
    retry_max_wait: float = Field(default=30.0, gt=0)
    page_size: int = Field(default=25, ge=1, le=100)
    max_pages: int = Field(default=50, ge=1)
    batch_size: int = Field(default=50, ge=1, le=50)
    overlap: Duration = timedelta(minutes=5)
    initial_lookback: Duration = timedelta(days=1)
    comment_window: Duration = timedelta(days=7)
    usage_threshold: float = Field(default=80.0, gt=0, le=100)
    slowdown: Duration = timedelta(minutes=10)
    rate_limit_wait: Duration = timedelta(minutes=15)


# --------------------------------------------------------------------------- cursors
@dataclass(frozen=True)
class StreamCursor:
    """Where a time-ordered stream stopped: the newest time returned, plus the ids
    already returned within `overlap` of it.

    Graph filters by `since` (whole seconds) and items can show up a little late, so
    each poll re-reads from `newest - overlap` and drops the ids in `seen`: nothing is
    skipped, nothing is returned twice, and the cursor stays small.  Stored as JSON.
    """

    newest: datetime | None = None
    seen: Mapping[str, int] = field(default_factory=dict)  # id -> epoch seconds

    @classmethod
    def load(cls, text: str | None) -> StreamCursor:
        if not text:
            return cls()
        data = json.loads(text)
        seen = data.get("seen", {})
        if not isinstance(seen, dict):
            raise ValueError("'seen' must be an object")
        return cls(parse_timestamp(data["t"]), {str(k): int(v) for k, v in seen.items()})

    def dump(self) -> str:
        payload = {"t": self.newest.isoformat() if self.newest else None, "seen": dict(self.seen)}
        return json.dumps(payload, sort_keys=True, separators=(",", ":"))

    def floor(self, now: datetime, overlap: timedelta, lookback: timedelta) -> datetime:
        """The oldest creation time that can still be new."""
        return self.newest - overlap if self.newest else now - lookback

    def select(self, items: Iterable[Item], *, floor: datetime,
               overlap: timedelta) -> tuple[list[Item], StreamCursor]:
        fresh: list[Item] = []
        ids: set[str] = set()
        for item in items:
            at, key = item.created_at, item.external_id
            if key in ids or at < floor:
                continue
            if self.newest is not None and at <= self.newest and key in self.seen:
                continue
            fresh.append(item)
            ids.add(key)
        if not fresh:
            return fresh, self
        newest = max([i.created_at for i in fresh] + ([self.newest] if self.newest else []))
        keep_from = int((newest - overlap).timestamp())
        seen = {k: v for k, v in self.seen.items() if v >= keep_from}
        seen.update({i.external_id: int(i.created_at.timestamp()) for i in fresh
                     if i.created_at.timestamp() >= keep_from})
        return fresh, StreamCursor(newest, seen)


def load_cursor(cursors: Mapping[str, str], name: str, warnings: list[str]) -> StreamCursor:
    try:
        return StreamCursor.load(cursors.get(name))
    except (ValueError, KeyError, TypeError, AttributeError):
        warnings.append(f"stored cursor {name!r} was unreadable; restarting from the lookback")
        return StreamCursor()


def epoch(at: datetime) -> str:
    return str(int(at.timestamp()))


# --------------------------------------------------------------------------- gates
class Gates:
    """Not-before times per app (token) and per Graph object, with the reason."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until: dict[str, tuple[datetime, str]] = {}

    def block(self, key: str, until: datetime, reason: str) -> None:
        with self._lock:
            old = self._until.get(key)
            if old is None or old[0] < until:
                self._until[key] = (until, reason)

    def remaining(self, keys: Iterable[str], now: datetime) -> tuple[float, str] | None:
        with self._lock:
            waits = [(until, reason) for k in keys if (v := self._until.get(k)) is not None
                     for until, reason in [v] if until > now]
        if not waits:
            return None
        until, reason = max(waits)
        return (until - now).total_seconds(), reason


# --------------------------------------------------------------------------- polling
@dataclass
class PollContext:
    """One account's poll in progress."""

    account: AccountConfig
    cursors: Mapping[str, str]
    now: datetime
    options: Any  # the connector's GraphOptions subclass
    client: GraphClient
    client_key: str
    settings_due: bool
    warnings: list[str] = field(default_factory=list)
    new_cursors: dict[str, str] = field(default_factory=dict)

    def required(self, replies: Mapping[str, dict[str, Any] | ConnectorError],
                 key: str) -> dict[str, Any]:
        reply = replies[key]
        if isinstance(reply, ConnectorError):
            raise reply
        return reply

    def collect(self, edge: object, *, floor: datetime | None, time_key: str,
                after: tuple[str, Mapping[str, str]] | None = None) -> list[dict[str, Any]]:
        """All objects of an edge, following `paging.next` until it is absent.

        An empty page may still carry `next`, so emptiness alone never stops.  With
        `after` (path, params), an edge without `next` links (Instagram tags) is paged
        on `cursors.after` while pages are non-empty.  With `floor`, paging stops at
        the first page reaching older objects: these edges are newest first.
        """
        out: list[dict[str, Any]] = []
        pages = 0
        while isinstance(edge, dict):
            data = edge.get("data", [])
            if not isinstance(data, list):
                raise MalformedPayloadError("Graph edge 'data' is not a list")
            out.extend(d for d in data if isinstance(d, dict))
            if floor is not None and any(_older(d, time_key, floor) for d in data):
                break
            paging = edge.get("paging")
            paging = paging if isinstance(paging, dict) else {}
            link = paging.get("next")
            cursor = (paging.get("cursors") or {}).get("after") if after else None
            if not link and not (after and cursor and data):
                break
            pages += 1
            if pages >= self.options.max_pages:
                self.warnings.append(f"stopped after {pages} pages; older items were not read")
                break
            if link:
                edge = self.client.follow(str(link))
            else:
                assert after is not None
                edge = self.client.get(after[0], {**after[1], "after": str(cursor)})
        return out


def _older(obj: object, key: str, floor: datetime) -> bool:
    try:
        return parse_timestamp(obj[key]) < floor  # type: ignore[index]
    except (KeyError, TypeError, ValueError):
        return False


def make_item(ctx: PollContext, obj: Mapping[str, Any], *, platform: str, kind: ItemKind,
              text_key: str, time_key: str, url_key: str, author: Author,
              parent_id: str | None = None, url: str | None = None) -> Item | None:
    """Build an Item, or warn and skip an object without a usable id or time."""
    try:
        external_id = str(obj["id"])
        created_at = parse_timestamp(obj[time_key])
    except (KeyError, ValueError) as exc:
        ctx.warnings.append(f"skipped a {kind.value} without a usable id or time: {exc}")
        return None
    text = obj.get(text_key)
    return Item(
        platform=platform, account_id=ctx.account.id, kind=kind, external_id=external_id,
        author=author, text=text if isinstance(text, str) else "", created_at=created_at,
        url=str(obj[url_key]) if obj.get(url_key) else url, parent_id=parent_id, raw=dict(obj),
    )


_SEVERITY = (AuthError, PermissionDeniedError, RateLimitedError, MalformedPayloadError,
             TransientError, ConnectorError)


class GraphConnector(Connector):
    """Graph API connector skeleton (abstract: no platform)."""

    Options = GraphOptions
    credential_key: ClassVar[str]
    default_api_base_url = "https://graph.facebook.com"
    # Batches in flight at once.  One batch carries 25 pages of a quiet cycle, so 16
    # keeps 10,000 pages (400 batches) well inside a minute at 50-300 ms a batch while
    # staying gentle with the app's usage budget.
    max_concurrency = 16

    def __init__(self, *, max_concurrency: int | None = None) -> None:
        if max_concurrency is not None:
            if max_concurrency < 1:
                raise ValueError("max_concurrency must be at least 1")
            self.max_concurrency = max_concurrency
        self._lock = threading.Lock()
        self._clients: dict[tuple[Any, ...], GraphClient] = {}
        self._gates = Gates()

    # The platform modules implement these two.
    def plan(self, ctx: PollContext) -> list[GraphOp]:
        raise NotImplementedError

    def finish(self, ctx: PollContext,
               replies: Mapping[str, dict[str, Any] | ConnectorError]) -> PollResult:
        raise NotImplementedError

    def hide_args(self) -> dict[str, str]:
        raise NotImplementedError

    # ------------------------------------------------------------------ engine API
    def poll(self, account: AccountConfig, cursors: Mapping[str, str], now: datetime) -> PollResult:
        result = self.poll_many([AccountPoll(account, cursors)], now)[account.id]
        if isinstance(result, ConnectorError):
            raise result
        return result

    def poll_many(self, polls: Sequence[AccountPoll],
                  now: datetime) -> dict[str, PollResult | ConnectorError]:
        """Batch the first requests of all accounts sharing a token, then finish each
        account in its own worker so a slow or failing one only holds up itself."""
        results: dict[str, PollResult | ConnectorError] = {}
        groups: dict[str, list[tuple[PollContext, list[GraphOp]]]] = {}
        for p in polls:
            try:
                ctx = self._context(p, now)
                groups.setdefault(ctx.client_key, []).append((ctx, self.plan(ctx)))
            except ConnectorError as exc:
                results[p.account.id] = exc
        chunks = [chunk for group in groups.values() for chunk in _chunks(group)]
        with ThreadPoolExecutor(max_workers=self.max_concurrency,
                                thread_name_prefix=f"poll-{self.platform}") as pool:
            batches = {pool.submit(self._run_batch, chunk): chunk for chunk in chunks}
            finishing: dict[Future[PollResult | ConnectorError], PollContext] = {}
            for fut in as_completed(list(batches)):
                # popped, so a batch's parsed reply is freed once its accounts are finished
                # instead of every reply of the cycle being held until the end
                chunk = batches.pop(fut)
                try:
                    replies = fut.result()
                except ConnectorError as exc:
                    for ctx, _ in chunk:
                        results[ctx.account.id] = self._failed(ctx, exc)
                    continue
                for (ctx, ops), reply in zip(chunk, replies, strict=True):
                    finishing[pool.submit(self._finish, ctx, ops, reply)] = ctx
                del fut, replies
            for done in as_completed(finishing):
                results[finishing[done].account.id] = done.result()
        return results

    def hide(self, account: AccountConfig, external_id: str) -> None:
        """Hide one comment (moderation = "hide" only); the API call hides, never deletes."""
        if account.moderation != "hide":
            raise ConnectorError(f"moderation is off for account {account.id}; not hiding")
        if not external_id or "/" in external_id or "?" in external_id:
            raise ConnectorError(f"not a Graph id: {external_id!r}")
        options = self._options(account)
        client, key = self._client(account, options)
        try:
            reply = client.post(external_id, self.hide_args())
        except AuthError:
            self._evict(key)
            raise
        if reply.get("success") is not True:
            raise ConnectorError(f"Graph API did not confirm hiding {external_id}")

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    # ------------------------------------------------------------------ internals
    def _options(self, account: AccountConfig) -> Any:
        try:
            return self.options_for(account)
        except ValidationError as exc:
            raise ConnectorError(f"invalid options: {exc.errors()[0]['msg']}") from None

    def _client(self, account: AccountConfig, options: Any) -> tuple[GraphClient, str]:
        """The cached client for this token; the secret is read only to build one."""
        env = account.credentials.get(self.credential_key)
        if env is None:
            raise AuthError(f"credentials.{self.credential_key} is not configured")
        key = (env, self.base_url(account), options.graph_version, options.timeout,
               options.retry_attempts, options.retry_wait, options.retry_max_wait)
        name = "|".join(str(k) for k in key)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                try:
                    token = self.secret(account, self.credential_key).reveal()
                except MissingSecretError as exc:
                    raise AuthError(str(exc)) from None
                client = GraphClient(
                    token, base_url=self.base_url(account), version=options.graph_version,
                    timeout=options.timeout, retry=RetryPolicy(
                        options.retry_attempts, options.retry_wait, options.retry_max_wait),
                    pool_size=self.max_concurrency)
                self._clients[key] = client
        return client, name

    def _evict(self, name: str) -> None:
        """Drop a client whose token failed, so a renewed token is read on the next poll."""
        with self._lock:
            for key in [k for k in self._clients if "|".join(str(p) for p in k) == name]:
                self._clients.pop(key).close()

    def _context(self, p: AccountPoll, now: datetime) -> PollContext:
        options = self._options(p.account)
        client, key = self._client(p.account, options)
        keys = [f"app:{key}", f"object:{p.account.external_id}"]
        stored = p.cursors.get("not_before")
        if stored:
            try:
                self._gates.block(f"object:{p.account.external_id}", parse_timestamp(stored),
                                  "Graph API usage was near its limit")
            except ValueError:
                pass
        blocked = self._gates.remaining(keys, now)
        if blocked is not None:
            wait, reason = blocked
            raise RateLimitedError(f"slowing down: {reason}", retry_after=max(1.0, wait))
        settings_at = p.cursors.get("settings_at")
        try:
            due = not settings_at or now - parse_timestamp(settings_at) >= (
                p.account.settings_interval)
        except ValueError:
            due = True
        return PollContext(p.account, p.cursors, now, options, client, key, due)

    def _run_batch(self, chunk: list[tuple[PollContext, list[GraphOp]]]
                   ) -> list[dict[str, dict[str, Any] | ConnectorError]]:
        client = chunk[0][0].client
        ops = [op for _, account_ops in chunk for op in account_ops]
        try:
            replies = client.batch(ops)
        finally:
            self._absorb(chunk[0][0])
        out: list[dict[str, dict[str, Any] | ConnectorError]] = []
        index = 0
        for _, account_ops in chunk:
            out.append({op.key: replies[index + i] for i, op in enumerate(account_ops)})
            index += len(account_ops)
        return out

    def _finish(self, ctx: PollContext, ops: list[GraphOp],
                replies: dict[str, dict[str, Any] | ConnectorError]) -> PollResult | ConnectorError:
        errors: list[ConnectorError] = []
        for op in ops:
            reply = replies[op.key]
            if not isinstance(reply, ConnectorError):
                continue
            if op.optional and not isinstance(reply, AuthError):
                ctx.warnings.append(f"{op.key} not read: {reply.reason}")
            else:
                errors.append(reply)
        try:
            if errors:
                raise min(errors, key=lambda e: next(
                    i for i, cls in enumerate(_SEVERITY) if isinstance(e, cls)))
            result = self.finish(ctx, replies)
        except ConnectorError as exc:
            self._absorb(ctx)
            return self._failed(ctx, exc)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            return MalformedPayloadError(f"unexpected Graph API payload ({type(exc).__name__})")
        self._absorb(ctx)
        blocked = self._gates.remaining(
            [f"app:{ctx.client_key}", f"object:{ctx.account.external_id}"], ctx.now)
        if blocked is not None:
            wait, reason = blocked
            result.new_cursors["not_before"] = (ctx.now + timedelta(seconds=wait)).isoformat()
            result.warnings.append(f"slowing down for {wait:.0f} s: {reason}")
        elif ctx.cursors.get("not_before"):
            result.new_cursors["not_before"] = ""  # served its purpose
        return result

    def _absorb(self, ctx: PollContext) -> None:
        """Turn the usage headers seen so far into not-before times, before the limit bites."""
        usage = ctx.client.meter.take()
        opts, now = ctx.options, ctx.now
        if usage.app_percent >= opts.usage_threshold:
            wait = opts.rate_limit_wait if usage.app_percent >= 100 else opts.slowdown
            self._gates.block(f"app:{ctx.client_key}", now + wait,
                              f"app usage at {usage.app_percent:.0f} % of the Graph API limit")
        for object_id, (percent, minutes) in usage.objects.items():
            if minutes > 0:
                self._gates.block(f"object:{object_id}", now + timedelta(minutes=minutes),
                                  f"Graph API asks to wait {minutes:.0f} min for {object_id}")
            elif percent >= opts.usage_threshold:
                self._gates.block(f"object:{object_id}", now + opts.slowdown,
                                  f"usage for {object_id} at {percent:.0f} % of its limit")

    def _failed(self, ctx: PollContext, exc: ConnectorError) -> ConnectorError:
        if isinstance(exc, AuthError):
            self._evict(ctx.client_key)
        if isinstance(exc, GraphRateLimitedError):
            app_key, object_key = f"app:{ctx.client_key}", f"object:{ctx.account.external_id}"
            known = self._gates.remaining([app_key, object_key], ctx.now)
            wait = known[0] if known else ctx.options.rate_limit_wait.total_seconds()
            self._gates.block(app_key if exc.app_wide else object_key,
                              ctx.now + timedelta(seconds=wait), exc.reason)
            return GraphRateLimitedError(exc.reason, app_wide=exc.app_wide, retry_after=wait)
        return exc


def _chunks(group: list[tuple[PollContext, list[GraphOp]]]
            ) -> list[list[tuple[PollContext, list[GraphOp]]]]:
    """Split one token's accounts into batches of at most `batch_size` requests,
    never splitting one account's requests across two batches."""
    limit = min(ctx.options.batch_size for ctx, _ in group)
    chunks: list[list[tuple[PollContext, list[GraphOp]]]] = []
    size = limit + 1
    for entry in group:
        if size + len(entry[1]) > limit:
            chunks.append([])
            size = 0
        chunks[-1].append(entry)
        size += len(entry[1])
    return chunks
