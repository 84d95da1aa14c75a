"""X (Twitter) connector: mentions, replies in the account's threads, own posts, profile.

One poll of one account runs these streams, each with its own cursor so that a
crash or a rate limit in one stream never loses or repeats another's progress:

* ``settings_at``: when the profile (``protected`` and friends) was last read;
  read again only after ``account.settings_interval``.
* ``own_since_id``: the account's own posts (``GET /2/users/:id/tweets``).  Each
  post that starts a conversation is put under watch.
* ``mentions_since_id``: ``GET /2/users/:id/mentions``.
* ``conversations``: JSON ``{conversation_id: [since_id, started_iso, checked_iso]}``
  for the threads the account started.  Recent search only reaches back 7 days,
  so a thread is watched for 7 days after its first post and then dropped; the
  structure stays bounded (``max_conversations``).  ``checked_iso`` lets a poll that
  is cut short by a rate limit serve the least recently checked threads first.
  One search ORs as many threads as fit in ``search_query_max_length`` characters
  (about 13 in X's 512), from the oldest of their ``since_id``s; each thread then
  keeps only what is newer than its own.  So a quiet poll of an account costs two
  requests (own posts, mentions) plus one per 13 watched threads, and the profile
  read once per ``settings_interval``.

Cursors advance only through `PollResult.new_cursors`; the engine stores them in
the same transaction as the items, so a restart resumes exactly.  On first use a
stream looks back 7 days (``start_time``), not through the whole history.

Rate limits: X counts bearer-token (app-only) requests per app and per endpoint,
so a 429 blocks that endpoint for every account using the same token; requests
signed for a user (hiding a reply) count per account.  The connector keeps those
blocks in a shared ledger, slows down when ``x-rate-limit-remaining`` reaches
``rate_limit_reserve``, and never uses tweepy's ``wait_on_rate_limit`` (it spins
without a reset header and would block a worker thread for up to 15 minutes).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import requests
import tweepy
from pydantic import BaseModel, ConfigDict, Field

from connectors._http import (
    RateLimitLedger,
    RetryPolicy,
    call_with_retries,
    header_int,
)
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
from monitor.model import Audience, Author, Item, ItemKind, PollResult, SettingsSnapshot
from monitor.secrets import MissingSecretError
from monitor.timeutil import parse_timestamp

if TYPE_CHECKING:
    from monitor.config import AccountConfig

log = logging.getLogger(__name__)

# tweepy logs every request's headers (the bearer token, the OAuth signature) at
# DEBUG; a service started with --debug must not write them to its log files.
logging.getLogger("tweepy.client").setLevel(logging.INFO)

TWEEPY_HOST = "https://api.twitter.com"
DEFAULT_API_BASE_URL = "https://api.x.com"
SEARCH_WINDOW = timedelta(days=7)  # recent search and conversation watch

MENTIONS = "mentions_since_id"
OWN_POSTS = "own_since_id"
CONVERSATIONS = "conversations"
SETTINGS_AT = "settings_at"

EXPANSIONS = ["author_id"]
TWEET_FIELDS = [
    "author_id",  # also implied by the expansion; asked for so it never depends on it
    "created_at",
    "conversation_id",
    "in_reply_to_user_id",
    "referenced_tweets",
    "entities",
    "note_tweet",  # the full text of posts longer than 280 characters
]
USER_FIELDS = ["username", "name"]
SETTINGS_FIELDS = [
    "protected",
    "name",
    "description",
    "location",
    "url",
    "pinned_tweet_id",
    "verified_type",
]
OAUTH1_KEYS = (
    "consumer_key_env",
    "consumer_secret_env",
    "access_token_env",
    "access_token_secret_env",
)
# Error codes X still sends (v1.1 style) when the credentials themselves are bad.
AUTH_ERROR_CODES = frozenset({32, 64, 89, 99, 135, 215, 326})

RETRYABLE = (tweepy.TwitterServerError, requests.Timeout, requests.ConnectionError)


class RequestRejectedError(ConnectorError):
    """X refused one request as invalid (400/404); a poll may skip just that request."""


class XOptions(BaseModel):
    """Keys an X account may set in its ``options`` table."""

    model_config = ConfigDict(extra="forbid")

    timeout_seconds: float = Field(10.0, gt=0, le=120)
    max_pages: int = Field(10, ge=1, le=100)
    max_conversations: int = Field(100, ge=1, le=1000)
    retry_attempts: int = Field(3, ge=1, le=10)
    retry_wait_seconds: float = Field(0.5, ge=0, le=60)
    retry_max_wait_seconds: float = Field(4.0, ge=0, le=300)
    rate_limit_backoff_seconds: float = Field(900.0, gt=0, le=86400)
    rate_limit_reserve: int = Field(1, ge=0)
    # X's limit for a recent-search query on self-serve access; 4096 on Enterprise.
    # A value below one term (about 35) searches each watched thread on its own.
    search_query_max_length: int = Field(512, ge=1, le=4096)

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            attempts=self.retry_attempts,
            wait_seconds=self.retry_wait_seconds,
            max_wait_seconds=self.retry_max_wait_seconds,
        )


class _RebasedSession(requests.Session):
    """The one place that sends tweepy's requests to ``account.api_base_url``.

    tweepy 4.17 builds every URL as ``"https://api.twitter.com" + route`` and sends
    no timeout.  Rewriting the URL here, before requests prepares it, keeps OAuth
    1.0a signatures valid (they cover the host) and gives each request a timeout
    so one slow account cannot hold a worker thread forever.
    """

    def __init__(self, base_url: str, timeout: float, pool_size: int = 10) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        # one session serves every account on a token, from up to `pool_size` threads:
        # with a smaller pool urllib3 would discard (and log) each extra connection
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
        self.mount("https://", adapter)
        self.mount("http://", adapter)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        if isinstance(url, str) and url.startswith(TWEEPY_HOST + "/"):
            url = self.base_url + url[len(TWEEPY_HOST) :]
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, *args, **kwargs)


class _XClient(tweepy.Client):
    """tweepy.Client returning raw `requests.Response`s through a `_RebasedSession`.

    Raw responses give us the rate-limit headers and let us report malformed JSON
    ourselves instead of tweepy crashing on it.
    """

    def __init__(
        self, base_url: str, timeout: float, pool_size: int = 10, **credentials: str | None
    ) -> None:
        super().__init__(return_type=requests.Response, wait_on_rate_limit=False, **credentials)
        self.session = _RebasedSession(base_url, timeout, pool_size)


@dataclass(frozen=True, slots=True)
class _Client:
    """A cached client and what it was built from, to rebuild it when that changes."""

    client: _XClient = field(repr=False)
    key: str
    scope: str  # the rate-limit scope of its credentials
    secrets: tuple[str, ...] = field(repr=False)  # for redaction of error text only


@dataclass(slots=True)
class _Ctx:
    """Everything one poll or hide of one account needs."""

    account: AccountConfig
    options: XOptions
    client: _Client
    user_context: bool = False

    def scope(self, endpoint: str) -> str:
        """Where a 429 counts: the app for bearer requests, the account for user context."""
        return f"{self.client.scope}:{endpoint}"

    def account_scope(self, endpoint: str) -> str:
        return f"account:{self.account.id}:{endpoint}"


@dataclass(slots=True)
class _Outcome:
    """What a poll has gathered so far; kept when a rate limit cuts the poll short."""

    items: dict[str, Item] = field(default_factory=dict)
    cursors: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    snapshot: SettingsSnapshot | None = None

    def add(self, item: Item) -> None:
        self.items.setdefault(item.external_id, item)  # first classification wins

    @property
    def progressed(self) -> bool:
        return bool(self.items or self.cursors or self.snapshot)


class XConnector(Connector, platform="x"):
    """X (Twitter) API v2: mentions, replies to own posts, own posts, profile privacy."""

    Options = XOptions
    required_credentials = ("bearer_token_env",)
    default_api_base_url = DEFAULT_API_BASE_URL
    # Accounts polled at once.  X answers in 50-300 ms and a quiet poll is two or three
    # requests, so 10,000 accounts need a few dozen requests in flight to fit in a
    # minute; a 429 still blocks the whole app scope in the shared ledger.
    max_concurrency = 64

    def __init__(
        self, ledger: RateLimitLedger | None = None, *, max_concurrency: int | None = None
    ) -> None:
        self._ledger = ledger or RateLimitLedger()
        if max_concurrency is not None:
            if max_concurrency < 1:
                raise ValueError("max_concurrency must be at least 1")
            self.max_concurrency = max_concurrency
        # Clients by what they are built from: every account on one bearer token shares
        # one client (one connection pool); `_slots` says which one each account uses.
        self._clients: dict[str, _Client] = {}
        self._slots: dict[tuple[str, bool], str] = {}
        self._lock = threading.Lock()

    # -- public API -------------------------------------------------------------

    def poll(self, account: AccountConfig, cursors: Mapping[str, str], now: datetime) -> PollResult:
        """Fetch what is new since `cursors`; see the module docstring for the streams."""
        ctx = self._context(account, user_context=False)
        out = _Outcome()
        watch = _Watch.load(cursors.get(CONVERSATIONS), now, out.warnings)
        try:
            self._poll_settings(ctx, cursors, now, out)
            self._poll_own_posts(ctx, cursors, now, watch, out)
            self._poll_mentions(ctx, cursors, now, watch, out)
            self._poll_conversations(ctx, now, watch, out)
        except RateLimitedError as exc:
            if not (out.progressed or watch.changed):
                raise
            out.warnings.append(f"poll cut short, the rest follows later: {exc.reason}")
        if watch.changed:
            out.cursors[CONVERSATIONS] = watch.dump(ctx.options.max_conversations)
        return PollResult(
            items=list(out.items.values()),
            settings_snapshot=out.snapshot,
            new_cursors=out.cursors,
            warnings=out.warnings,
        )

    def poll_many(
        self, polls: Sequence[AccountPoll], now: datetime
    ) -> dict[str, PollResult | ConnectorError]:
        """Poll accounts in parallel so one slow account only costs its own timeout."""
        if not polls:
            return {}
        workers = min(self.max_concurrency, len(polls))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="x-poll") as pool:
            futures = {p.account.id: pool.submit(self._poll_one, p, now) for p in polls}
            return {account_id: f.result() for account_id, f in futures.items()}

    def hide(self, account: AccountConfig, external_id: str) -> None:
        """Hide a reply in a thread the account started (``PUT /2/tweets/:id/hidden``).

        Hiding is reversible and the reply stays on record; the connector never deletes.
        """
        if account.moderation != "hide":
            raise ConnectorError(
                f"moderation is {account.moderation!r} for {account.id}; not hiding"
            )
        if not external_id.isdigit():
            raise ConnectorError(f"{external_id!r} is not an X post id")
        ctx = self._context(account, user_context=True)
        body = self._request(ctx, "hide", partial(ctx.client.client.hide_reply, external_id))
        data = body.get("data")
        if not isinstance(data, dict) or data.get("hidden") is not True:
            raise MalformedPayloadError(f"X did not confirm hiding post {external_id}")

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for c in clients:
            c.client.session.close()

    # -- streams ----------------------------------------------------------------

    def _poll_settings(
        self, ctx: _Ctx, cursors: Mapping[str, str], now: datetime, out: _Outcome
    ) -> None:
        """Read the profile when `settings_interval` has passed since the last read."""
        if not _settings_due(cursors.get(SETTINGS_AT), now, ctx.account.settings_interval):
            return
        call = partial(
            ctx.client.client.get_user, id=ctx.account.external_id, user_fields=SETTINGS_FIELDS
        )
        body = self._request(ctx, "user", call)
        out.snapshot = _snapshot(body, ctx.account.external_id, now)
        out.cursors[SETTINGS_AT] = now.isoformat()

    def _poll_own_posts(
        self,
        ctx: _Ctx,
        cursors: Mapping[str, str],
        now: datetime,
        watch: _Watch,
        out: _Outcome,
    ) -> None:
        """Own posts are items too, and each new thread root goes under watch."""
        since = None if watch.lost else cursors.get(OWN_POSTS)
        fetch = partial(ctx.client.client.get_users_tweets, ctx.account.external_id)
        tweets, users = self._timeline(ctx, "own_posts", fetch, since, now, out)
        for tweet in tweets:
            item = _item(tweet, users, ItemKind.OWN_POST, ctx.account.id, now, out.warnings)
            if item is not None:
                out.add(item)
                if tweet.get("conversation_id") == item.external_id:
                    watch.start(item.external_id, item.created_at, now)
        watch.changed |= watch.lost  # rebuilt: the fresh watch replaces the unreadable one
        _advance(out, OWN_POSTS, since, tweets)

    def _poll_mentions(
        self,
        ctx: _Ctx,
        cursors: Mapping[str, str],
        now: datetime,
        watch: _Watch,
        out: _Outcome,
    ) -> None:
        """Mentions; one inside a watched thread is a reply, one by the account is its own."""
        since = cursors.get(MENTIONS)
        fetch = partial(ctx.client.client.get_users_mentions, ctx.account.external_id)
        tweets, users = self._timeline(ctx, "mentions", fetch, since, now, out)
        for tweet in tweets:
            kind = _kind(tweet, ctx.account.external_id, watch, ItemKind.MENTION)
            item = _item(tweet, users, kind, ctx.account.id, now, out.warnings)
            if item is not None:
                out.add(item)
        _advance(out, MENTIONS, since, tweets)

    def _poll_conversations(self, ctx: _Ctx, now: datetime, watch: _Watch, out: _Outcome) -> None:
        """Search the watched threads for replies, several threads per request.

        A group's query ORs its threads and starts after the oldest of their
        `since_id`s; each thread keeps only the posts newer than its own (so nothing
        is returned twice) and advances its own `since_id`.
        """
        pending = watch.by_last_checked()  # least recently checked first
        while pending:
            group = _search_group(pending, ctx.options.search_query_max_length)
            since = min((watch.since(c) for c in group), key=int)
            query = " OR ".join(f"conversation_id:{c}" for c in group)
            fetch = partial(ctx.client.client.search_recent_tweets, query)
            try:
                tweets, users, complete = self._pages(
                    ctx, "search", fetch, "next_token", out.warnings, since_id=since
                )
            except RequestRejectedError as exc:
                # e.g. a since_id X now deems older than its 7-day window: the thread
                # that set it must not block every later poll of the account, so stop
                # watching it and search the others again without it
                oldest = min(group, key=lambda c: (int(watch.since(c)), c))
                out.warnings.append(f"stopped watching X thread {oldest}: {exc.reason}")
                watch.drop(oldest)
                pending.remove(oldest)
                continue
            del pending[: len(group)]
            found: dict[str, list[dict[str, Any]]] = {c: [] for c in group}
            for tweet in tweets:
                thread = str(tweet.get("conversation_id", ""))
                if thread not in found and len(group) == 1:
                    thread = group[0]  # X always sends it; tolerate a reply without it
                if thread in found:
                    if _id_at_most(tweet, watch.since(thread)):
                        continue  # an earlier poll of this thread returned it
                    found[thread].append(tweet)
                kind = _kind(tweet, ctx.account.external_id, watch, ItemKind.REPLY)
                item = _item(tweet, users, kind, ctx.account.id, now, out.warnings)
                if item is not None:
                    out.add(item)
            # A complete answer covered every thread of the group up to its newest post,
            # so a quiet thread moves up too and later searches stay short.
            newest = _newest_id(since, tweets) if complete else since
            for thread, thread_tweets in found.items():
                own = _newest_id(watch.since(thread), thread_tweets)
                watch.checked(thread, max(own, newest, key=int), now)

    # -- requests ---------------------------------------------------------------

    def _timeline(
        self,
        ctx: _Ctx,
        endpoint: str,
        fetch: Callable[..., requests.Response],
        since: str | None,
        now: datetime,
        out: _Outcome,
    ) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        """A user timeline since `since`, or of the last 7 days on first use."""
        bound: dict[str, Any] = (
            {"since_id": since} if since else {"start_time": now - SEARCH_WINDOW}
        )
        tweets, users, _ = self._pages(
            ctx, endpoint, fetch, "pagination_token", out.warnings, **bound
        )
        return tweets, users

    def _pages(
        self,
        ctx: _Ctx,
        endpoint: str,
        fetch: Callable[..., requests.Response],
        token_param: str,
        warnings: list[str],
        **params: Any,
    ) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]], bool]:
        """Follow ``meta.next_token`` until it is absent or `max_pages` is reached.

        The flag is False when `max_pages` cut the result short.
        """
        tweets: list[dict[str, Any]] = []
        users: dict[str, dict[str, Any]] = {}
        params = {k: v for k, v in params.items() if v is not None} | {
            "max_results": 100,
            "expansions": EXPANSIONS,
            "tweet_fields": TWEET_FIELDS,
            "user_fields": USER_FIELDS,
        }
        for _ in range(ctx.options.max_pages):
            body = self._request(ctx, endpoint, partial(fetch, **params))
            page_tweets, page_users, next_token = _page(body, endpoint)
            tweets += page_tweets
            users |= page_users
            if not next_token:
                return tweets, users, True
            params[token_param] = next_token
        warnings.append(
            f"{endpoint}: stopped after {ctx.options.max_pages} pages; "
            "older posts of this batch were skipped (raise options.max_pages)"
        )
        return tweets, users, False

    def _request(
        self, ctx: _Ctx, endpoint: str, call: Callable[[], requests.Response]
    ) -> dict[str, Any]:
        """One API call with the rate-limit ledger, bounded retries and error mapping."""
        scope = ctx.scope(endpoint)
        wait = self._ledger.wait_for([scope, ctx.account_scope(endpoint)])
        if wait is not None:
            raise RateLimitedError(
                f"X rate limit for {endpoint} reached; next try in {wait:.0f}s", retry_after=wait
            )
        try:
            response = call_with_retries(call, ctx.options.retry_policy(), RETRYABLE)
        except tweepy.TooManyRequests as exc:
            raise self._rate_limited(ctx, scope, endpoint, exc) from None
        except tweepy.HTTPException as exc:
            raise _http_error(exc, endpoint, ctx.client.secrets) from None
        except requests.Timeout:
            raise TransientError(
                f"X did not answer {endpoint} within {ctx.options.timeout_seconds:g}s "
                f"({ctx.options.retry_attempts} attempts)"
            ) from None
        except requests.RequestException as exc:
            raise TransientError(
                f"cannot reach X for {endpoint}: {type(exc).__name__} "
                f"({ctx.options.retry_attempts} attempts)"
            ) from None
        self._slow_down(ctx, scope, response.headers)
        return _json_object(response, endpoint)

    def _rate_limited(
        self, ctx: _Ctx, scope: str, endpoint: str, exc: tweepy.TooManyRequests
    ) -> RateLimitedError:
        """Block the scope until X's reset (or a default backoff when X gives none)."""
        now = self._ledger.now()
        headers = exc.response.headers
        if header_int(headers, "x-user-limit-24hour-remaining") == 0:
            scope = ctx.account_scope(endpoint)  # this user's daily cap, not the app's
        reset = exc.reset_time or _daily_reset(headers)
        until = reset if reset is not None else now + ctx.options.rate_limit_backoff_seconds
        until = max(until, now + 1)
        self._ledger.block(scope, until)
        who = "this account" if scope.startswith("account:") else "accounts on this app token"
        return RateLimitedError(
            f"X rate limit for {endpoint} reached (429) for {who}; next try in {until - now:.0f}s",
            retry_after=until - now,
        )

    def _slow_down(self, ctx: _Ctx, scope: str, headers: Mapping[str, str]) -> None:
        """Stop using an endpoint once only `rate_limit_reserve` requests are left."""
        remaining = header_int(headers, "x-rate-limit-remaining")
        reset = header_int(headers, "x-rate-limit-reset")
        if (
            remaining is not None
            and reset is not None
            and remaining <= ctx.options.rate_limit_reserve
        ):
            self._ledger.block(scope, float(reset))

    # -- clients ----------------------------------------------------------------

    def _poll_one(self, p: AccountPoll, now: datetime) -> PollResult | ConnectorError:
        try:
            return self.poll(p.account, p.cursors, now)
        except ConnectorError as exc:
            return exc
        except Exception as exc:  # a bug must not stop the other accounts' polls
            log.exception("x: unexpected error polling %s", p.account.id)
            return ConnectorError(f"unexpected error in the X connector: {type(exc).__name__}")

    def _context(self, account: AccountConfig, *, user_context: bool) -> _Ctx:
        options = XOptions.model_validate(account.options)
        client = self._client(account, options, user_context)
        return _Ctx(account=account, options=options, client=client, user_context=user_context)

    def _client(self, account: AccountConfig, options: XOptions, user_context: bool) -> _Client:
        """The client for an account's credentials, rebuilt when the token or URL changes.

        Accounts on one bearer token share one client, so 10,000 accounts hold a
        connection pool per token instead of one each; user-context clients (OAuth
        1.0a, for hiding) stay per account.
        """
        creds = self._oauth1(account) if user_context else {"bearer_token": self._bearer(account)}
        base_url = self.base_url(account)
        key = _fingerprint(base_url, str(options.timeout_seconds), *creds.values())
        if user_context:
            key = f"{key}:{account.id}"
        slot = (account.id, user_context)
        stale: _Client | None = None
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                scope = (
                    f"account:{account.id}"
                    if user_context
                    else f"app:{_fingerprint(*creds.values())}"
                )
                client = _Client(
                    client=_XClient(
                        base_url, options.timeout_seconds, self.max_concurrency, **creds
                    ),
                    key=key,
                    scope=scope,
                    secrets=tuple(creds.values()),
                )
                self._clients[key] = client
            old = self._slots.get(slot)
            self._slots[slot] = key
            if old is not None and old != key and old not in self._slots.values():
                stale = self._clients.pop(old, None)  # its token or URL changed
        if stale is not None:
            stale.client.session.close()
        return client

    def _bearer(self, account: AccountConfig) -> str:
        if "bearer_token_env" not in account.credentials:
            raise AuthError(f"account {account.id} has no credentials.bearer_token_env")
        try:
            return self.secret(account, "bearer_token_env").reveal()
        except MissingSecretError as exc:
            raise AuthError(str(exc)) from None

    def _oauth1(self, account: AccountConfig) -> dict[str, str]:
        """OAuth 1.0a user-context keys; hiding a reply needs them, a bearer token cannot."""
        missing = [k for k in OAUTH1_KEYS if k not in account.credentials]
        if missing:
            raise ConnectorError(
                "hiding a reply on X needs OAuth 1.0a user-context credentials of the account; "
                f"add credentials.{', credentials.'.join(missing)}"
            )
        try:
            return {k.removesuffix("_env"): self.secret(account, k).reveal() for k in OAUTH1_KEYS}
        except MissingSecretError as exc:
            raise AuthError(str(exc)) from None


class _Watch:
    """The threads under watch: ``{conversation_id: [since_id, started_iso, checked_iso]}``."""

    def __init__(self, entries: dict[str, list[str]], *, lost: bool = False) -> None:
        self._entries = entries
        self.lost = lost  # the stored cursor was unreadable: rebuild from 7 days of own posts
        self.changed = False

    @classmethod
    def load(cls, raw: str | None, now: datetime, warnings: list[str]) -> _Watch:
        if not raw:
            return cls({})
        try:
            parsed = json.loads(raw)
            entries = {str(k): _watch_entry(v) for k, v in parsed.items()}
        except (ValueError, TypeError, AttributeError):
            warnings.append("the stored list of watched X threads was unreadable; rebuilt it")
            return cls({}, lost=True)
        watch = cls(entries)
        watch._expire(now)
        return watch

    def _expire(self, now: datetime) -> None:
        for cid in [c for c, e in self._entries.items() if now - _ts(e[1]) >= SEARCH_WINDOW]:
            del self._entries[cid]
            self.changed = True

    def __contains__(self, conversation_id: object) -> bool:
        return conversation_id in self._entries

    def start(self, conversation_id: str, started: datetime, now: datetime) -> None:
        if conversation_id in self._entries or now - started >= SEARCH_WINDOW:
            return
        self._entries[conversation_id] = [conversation_id, started.isoformat(), ""]
        self.changed = True

    def drop(self, conversation_id: str) -> None:
        self._entries.pop(conversation_id, None)
        self.changed = True

    def since(self, conversation_id: str) -> str:
        return self._entries[conversation_id][0]

    def checked(self, conversation_id: str, since_id: str, now: datetime) -> None:
        entry = self._entries[conversation_id]
        self._entries[conversation_id] = [since_id, entry[1], now.isoformat()]
        self.changed = True

    def by_last_checked(self) -> list[str]:
        return sorted(self._entries, key=lambda c: (self._entries[c][2], c))

    def dump(self, limit: int) -> str:
        newest = sorted(self._entries.items(), key=lambda kv: kv[1][1], reverse=True)[:limit]
        return json.dumps(dict(sorted(newest)), separators=(",", ":"))


def _watch_entry(value: Any) -> list[str]:
    if not isinstance(value, list) or len(value) not in (2, 3):
        raise ValueError("bad watch entry")
    since, started, *rest = (str(v) for v in value)
    if not since.isdigit():
        raise ValueError("bad since_id")
    _ts(started)
    return [since, started, rest[0] if rest else ""]


def _ts(value: str) -> datetime:
    return parse_timestamp(value)


# -- payload parsing ---------------------------------------------------------------


def _json_object(response: requests.Response, endpoint: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise MalformedPayloadError(f"X returned malformed JSON for {endpoint}") from None
    if not isinstance(body, dict):
        raise MalformedPayloadError(
            f"X returned {type(body).__name__} instead of an object for {endpoint}"
        )
    return body


def _page(
    body: dict[str, Any], endpoint: str
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]], str | None]:
    """Tweets, users by id and the next token of one page; empty pages have no ``data``."""
    data = body.get("data", [])
    includes = body.get("includes", {})
    meta = body.get("meta", {})
    users = includes.get("users", []) if isinstance(includes, dict) else None
    if not isinstance(data, list) or not isinstance(meta, dict) or not isinstance(users, list):
        raise MalformedPayloadError(f"X returned an unexpected page shape for {endpoint}")
    next_token = meta.get("next_token")
    return (
        [t for t in data if isinstance(t, dict)],
        {str(u["id"]): u for u in users if isinstance(u, dict) and "id" in u},
        str(next_token) if next_token else None,
    )


def _kind(
    tweet: Mapping[str, Any], account_user_id: str, watch: _Watch, default: ItemKind
) -> ItemKind:
    if str(tweet.get("author_id", "")) == account_user_id:
        return ItemKind.OWN_POST
    if tweet.get("conversation_id") in watch:
        return ItemKind.REPLY
    return default


def _item(
    tweet: dict[str, Any],
    users: Mapping[str, dict[str, Any]],
    kind: ItemKind,
    account_id: str,
    now: datetime,
    warnings: list[str],
) -> Item | None:
    """Normalise one tweet; a tweet without a usable id is skipped with a warning."""
    tweet_id = str(tweet.get("id", ""))
    if not tweet_id.isdigit():
        warnings.append(f"skipped an X post without a valid id: {tweet_id[:40]!r}")
        return None
    author_id = str(tweet.get("author_id", ""))
    user = users.get(author_id, {})
    username = str(user.get("username", ""))
    raw: dict[str, Any] = {"data": tweet, "includes": {"users": [user] if user else []}}
    return Item(
        platform="x",
        account_id=account_id,
        kind=kind,
        external_id=tweet_id,
        author=Author(id=author_id, handle=username, display_name=str(user.get("name", ""))),
        text=_text(tweet),
        created_at=_created_at(tweet, now, warnings),
        url=f"https://x.com/{username or 'i'}/status/{tweet_id}",
        parent_id=_replied_to(tweet),
        raw=raw,
    )


def _text(tweet: Mapping[str, Any]) -> str:
    note = tweet.get("note_tweet")
    if isinstance(note, dict) and isinstance(note.get("text"), str):
        return str(note["text"])
    text = tweet.get("text", "")
    return text if isinstance(text, str) else ""


def _created_at(tweet: Mapping[str, Any], now: datetime, warnings: list[str]) -> datetime:
    try:
        return parse_timestamp(tweet.get("created_at"))
    except ValueError:
        warnings.append(f"X post {tweet.get('id')} has no valid created_at; used the poll time")
        return now


def _replied_to(tweet: Mapping[str, Any]) -> str | None:
    refs = tweet.get("referenced_tweets")
    if not isinstance(refs, list):
        return None
    for ref in refs:
        if isinstance(ref, dict) and ref.get("type") == "replied_to" and ref.get("id"):
            return str(ref["id"])
    return None


def _search_group(pending: Sequence[str], max_length: int) -> list[str]:
    """The leading threads whose ``conversation_id:`` terms, ORed, fit in `max_length`."""
    group: list[str] = []
    length = 0
    for conversation_id in pending:
        term = len("conversation_id:") + len(conversation_id) + (len(" OR ") if group else 0)
        if group and length + term > max_length:
            break
        group.append(conversation_id)
        length += term
    return group


def _id_at_most(tweet: Mapping[str, Any], since: str) -> bool:
    tweet_id = str(tweet.get("id", ""))
    return tweet_id.isdigit() and since.isdigit() and int(tweet_id) <= int(since)


def _newest_id(since: str | None, tweets: Sequence[Mapping[str, Any]]) -> str:
    ids = [int(str(t.get("id"))) for t in tweets if str(t.get("id", "")).isdigit()]
    if since and since.isdigit():
        ids.append(int(since))
    return str(max(ids)) if ids else (since or "")


def _advance(
    out: _Outcome, stream: str, since: str | None, tweets: Sequence[Mapping[str, Any]]
) -> None:
    newest = _newest_id(since, tweets)
    if newest and newest != since:
        out.cursors[stream] = newest


def _settings_due(last: str | None, now: datetime, interval: timedelta) -> bool:
    if not last:
        return True
    try:
        read_at = parse_timestamp(last)
    except ValueError:
        return True
    return read_at > now or now - read_at >= interval


def _snapshot(body: dict[str, Any], user_id: str, now: datetime) -> SettingsSnapshot:
    data = body.get("data")
    if not isinstance(data, dict):
        raise _user_lookup_error(body, user_id)
    fields = {name: data.get(name) for name in ["username", *SETTINGS_FIELDS]}
    audience = Audience.PRIVATE if data.get("protected") is True else Audience.PUBLIC
    return SettingsSnapshot(taken_at=now, audience=audience, fields=fields, raw=body)


def _user_lookup_error(body: Mapping[str, Any], user_id: str) -> ConnectorError:
    """X answers 200 with only ``errors`` for a missing or suspended user."""
    errors = body.get("errors")
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return MalformedPayloadError(f"X returned no data for user {user_id}")
    problem = str(errors[0].get("type", ""))
    detail = str(errors[0].get("detail") or errors[0].get("title") or "")[:200]
    if problem.endswith("resource-not-found"):
        return ConnectorError(
            f"X has no user {user_id}: {detail} (check the account's external_id)"
        )
    return PermissionDeniedError(f"X refused to show user {user_id}: {detail}")


# -- errors ------------------------------------------------------------------------


def _http_error(exc: tweepy.HTTPException, endpoint: str, secrets: Sequence[str]) -> ConnectorError:
    """Map tweepy's HTTP errors to the connector errors; the reason never holds a secret."""
    status = exc.response.status_code
    detail = _redact(_describe(exc), secrets)
    if isinstance(exc, tweepy.TwitterServerError):
        return TransientError(f"X kept failing for {endpoint} ({status}: {detail})")
    if isinstance(exc, tweepy.Unauthorized):
        return AuthError(f"X rejected the credentials (401: {detail}); renew the token")
    if isinstance(exc, tweepy.Forbidden):
        if _is_auth_problem(exc):
            return AuthError(f"X rejected the credentials (403: {detail}); renew the token")
        return PermissionDeniedError(
            f"X refused {endpoint} (403: {detail}); check the app's access level "
            "and the account's permissions"
        )
    if isinstance(exc, tweepy.NotFound):
        return RequestRejectedError(f"X found nothing for {endpoint} (404: {detail})")
    return RequestRejectedError(f"X rejected {endpoint} ({status}: {detail})")


def _problem(exc: tweepy.HTTPException) -> dict[str, Any]:
    try:
        body = exc.response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _describe(exc: tweepy.HTTPException) -> str:
    body = _problem(exc)
    parts = [str(body[k]) for k in ("title", "reason") if body.get(k)]
    parts += [str(m) for m in exc.api_messages]
    text = "; ".join(dict.fromkeys(parts)) or str(getattr(exc.response, "reason", "") or "")
    return text[:200]


def _is_auth_problem(exc: tweepy.HTTPException) -> bool:
    if AUTH_ERROR_CODES.intersection(c for c in exc.api_codes if isinstance(c, int)):
        return True
    return str(_problem(exc).get("type", "")).endswith("unsupported-authentication")


def _redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _daily_reset(headers: Mapping[str, str]) -> float | None:
    """X's 24-hour caps answer 429 with ``x-*-limit-24hour-reset`` instead."""
    for prefix in ("x-user-limit-24hour", "x-app-limit-24hour"):
        if header_int(headers, f"{prefix}-remaining") == 0:
            reset = header_int(headers, f"{prefix}-reset")
            if reset is not None:
                return float(reset)
    return None


def _fingerprint(*parts: str) -> str:
    """A short hash to compare or group credentials without keeping them as keys."""
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()[:16]
