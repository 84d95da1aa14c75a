"""A loopback fake of the X API v2 endpoints the X connector uses.

It runs the real tweepy client over real HTTP (127.0.0.1, a free port) so the tests
exercise URL building, query parameters, headers and error parsing as in production.
Response shapes follow X's documentation: ``data`` / ``includes.users`` / ``meta``
with ``result_count``, ``newest_id``, ``oldest_id`` and ``next_token``; an empty page
is ``{"meta": {"result_count": 0}}``.  Results are newest first, ``since_id`` is
exclusive, and only requested ``tweet.fields`` are returned (``id`` and ``text``
always), as the API does.

Every request is recorded (`requests`), and `fault()` scripts failures for the
next matching requests: any status, headers and body, a raw (malformed) body, or
a delay.  `latency` delays every answer, as a distant API would (the benchmarks use
50 ms); the server answers each connection in its own thread with a deep listen
queue, so it keeps up with many parallel clients.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

BEARER = "AAAAfake-bearer-token-for-tests-0123456789"
UNAUTHORIZED = {"title": "Unauthorized", "type": "about:blank", "status": 401,
                "detail": "Unauthorized"}
RATE_LIMITED = {"title": "Too Many Requests", "type": "about:blank", "status": 429,
                "detail": "Too Many Requests"}
FORBIDDEN = {
    "client_id": "12345",
    "detail": "When authenticating requests to the Twitter API v2 endpoints, you must use keys "
    "and tokens from a Twitter developer App that is attached to a Project.",
    "registration_url": "https://developer.twitter.com/en/docs/projects/overview",
    "title": "Client Forbidden",
    "required_enrollment": "Appropriate Level of API Access",
    "reason": "client-not-enrolled",
    "type": "https://api.twitter.com/2/problems/client-forbidden",
}
UNSUPPORTED_AUTH = {
    "title": "Unsupported Authentication",
    "detail": "Authenticating with OAuth 2.0 Application-Only is forbidden for this endpoint.  "
    "Supported authentication types are [OAuth 1.0a User Context, OAuth 2.0 User Context].",
    "type": "https://api.twitter.com/2/problems/unsupported-authentication",
    "status": 403,
}


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int = 500
    body: Any = None  # JSON-encodable, or bytes sent as is
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    times: int = 1
    passthrough: bool = False  # after the delay, answer normally


@dataclass
class FakeTweet:
    id: str
    author_id: str
    text: str
    created_at: datetime
    conversation_id: str
    in_reply_to_user_id: str | None = None
    replied_to: str | None = None
    mentions: tuple[str, ...] = ()  # user ids

    def to_json(self, fields: set[str], users: dict[str, dict[str, Any]]) -> dict[str, Any]:
        full: dict[str, Any] = {
            "id": self.id,
            "text": self.text,
            "edit_history_tweet_ids": [self.id],
            "author_id": self.author_id,
            "created_at": self.created_at.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "conversation_id": self.conversation_id,
        }
        if self.in_reply_to_user_id:
            full["in_reply_to_user_id"] = self.in_reply_to_user_id
        if self.replied_to:
            full["referenced_tweets"] = [{"type": "replied_to", "id": self.replied_to}]
        if self.mentions:
            full["entities"] = {"mentions": [
                {"start": 0, "end": 1 + len(users[u]["username"]), "username": users[u]["username"],
                 "id": u} for u in self.mentions
            ]}
        keep = {"id", "text", "edit_history_tweet_ids"} | fields
        return {k: v for k, v in full.items() if k in keep}


class _Server(ThreadingHTTPServer):
    """One daemon thread per connection, and a listen queue deep enough for a benchmark."""

    daemon_threads = True
    request_queue_size = 1024


class FakeXApi:
    """Start with `with FakeXApi() as api:`; `api.url` is the base URL to configure.

    `latency` (seconds) is added to every answer; `record=False` keeps only the
    count of requests (`request_count`), not the requests themselves.
    """

    def __init__(self, bearer: str = BEARER, *, latency: float = 0.0, record: bool = True) -> None:
        self.bearers = {bearer}  # add more to test several apps against one server
        self.users: dict[str, dict[str, Any]] = {}
        self.tweets: dict[str, FakeTweet] = {}
        self.requests: list[Recorded] = []
        self.request_count = 0
        self.latency = latency
        self.record = record
        self.faults: list[Fault] = []
        self.hidden: dict[str, bool] = {}
        self.rate_headers: dict[str, str] = {}
        # indexes so a timeline or search does not scan every tweet (benchmarks hold 50,000)
        self._by_author: dict[str, list[FakeTweet]] = {}
        self._by_mention: dict[str, list[FakeTweet]] = {}
        self._by_conversation: dict[str, list[FakeTweet]] = {}
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    # -- lifecycle ------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> FakeXApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def start(self) -> FakeXApi:
        """Start serving without a `with` block (stop with `stop()`)."""
        return self.__enter__()

    def stop(self) -> None:
        self.__exit__(None, None, None)

    # -- scripting ------------------------------------------------------------

    def add_user(self, user_id: str, username: str, name: str, **profile: Any) -> None:
        self.users[user_id] = {"id": user_id, "username": username, "name": name, **profile}

    def add_tweet(
        self,
        tweet_id: str,
        author_id: str,
        text: str,
        created_at: datetime,
        *,
        conversation_id: str | None = None,
        replied_to: str | None = None,
        in_reply_to_user_id: str | None = None,
        mentions: tuple[str, ...] = (),
    ) -> None:
        tweet = FakeTweet(
            id=tweet_id, author_id=author_id, text=text, created_at=created_at,
            conversation_id=conversation_id or tweet_id, replied_to=replied_to,
            in_reply_to_user_id=in_reply_to_user_id, mentions=mentions,
        )
        with self._lock:
            old = self.tweets.get(tweet_id)
            if old is not None:
                for index in (self._by_author, self._by_mention, self._by_conversation):
                    for bucket in index.values():
                        if old in bucket:
                            bucket.remove(old)
            self.tweets[tweet_id] = tweet
            self._by_author.setdefault(author_id, []).append(tweet)
            for uid in mentions:
                self._by_mention.setdefault(uid, []).append(tweet)
            self._by_conversation.setdefault(tweet.conversation_id, []).append(tweet)

    def fault(self, method: str, path: str, **kwargs: Any) -> Fault:
        """Script the next `times` requests matching `method` and the `path` regex."""
        f = Fault(method=method, path=re.compile(path), **kwargs)
        with self._lock:
            self.faults.append(f)
        return f

    def requests_to(self, path_regex: str, method: str = "GET") -> list[Recorded]:
        pattern = re.compile(path_regex)
        return [r for r in self.requests if r.method == method and pattern.fullmatch(r.path)]

    # -- serving --------------------------------------------------------------

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if f.method == method and f.path.fullmatch(path) and f.times > 0:
                    f.times -= 1
                    return f
        return None

    def handle(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
               body: bytes) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.request_count += 1
            if self.record:
                self.requests.append(Recorded(method, path, query, headers, body))
        if self.latency:
            time.sleep(self.latency)
        fault = self._take_fault(method, path)
        if fault is not None:
            time.sleep(fault.delay)
            if not fault.passthrough:
                raw = fault.body
                if not isinstance(raw, bytes):
                    raw = json.dumps(raw).encode()
                return fault.status, fault.headers, raw
        status, payload = self._route(method, path, query, headers, body)
        return status, dict(self.rate_headers), json.dumps(payload).encode()

    def _route(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
               body: bytes) -> tuple[int, Any]:
        auth = headers.get("authorization", "")
        if method == "PUT" and (m := re.fullmatch(r"/2/tweets/(\d+)/hidden", path)):
            if not auth.startswith("OAuth "):
                return 403, UNSUPPORTED_AUTH
            hidden = json.loads(body or b"{}").get("hidden")
            self.hidden[m.group(1)] = bool(hidden)
            return 200, {"data": {"hidden": bool(hidden)}}
        if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in self.bearers:
            return 401, UNAUTHORIZED
        if m := re.fullmatch(r"/2/users/(\d+)/mentions", path):
            found = self._by_mention.get(m.group(1), [])
            return 200, self._timeline(query, found, "pagination_token")
        if m := re.fullmatch(r"/2/users/(\d+)/tweets", path):
            found = self._by_author.get(m.group(1), [])
            return 200, self._timeline(query, found, "pagination_token")
        if path == "/2/tweets/search/recent":
            # `conversation_id:1` or `conversation_id:1 OR conversation_id:2 ...`
            terms = query.get("query", "").split(" OR ")
            convs = [re.fullmatch(r"conversation_id:(\d+)", t) for t in terms]
            if not all(convs):
                return 400, {"title": "Invalid Request", "detail": "unsupported query in fake"}
            found = [t for c in convs if c for t in self._by_conversation.get(c.group(1), [])]
            return 200, self._timeline(query, found, "next_token")
        if m := re.fullmatch(r"/2/users/(\d+)", path):
            return 200, self._user(m.group(1), query)
        return 404, {"title": "Not Found Error", "detail": f"no route {path}"}

    def _user(self, uid: str, query: dict[str, str]) -> dict[str, Any]:
        user = self.users.get(uid)
        if user is None:
            return {"errors": [{
                "value": uid, "detail": f"Could not find user with id: [{uid}].",
                "title": "Not Found Error", "resource_type": "user", "parameter": "id",
                "resource_id": uid, "type": "https://api.twitter.com/2/problems/resource-not-found",
            }]}
        fields = set(query.get("user.fields", "").split(",")) | {"id", "name", "username"}
        return {"data": {k: v for k, v in user.items() if k in fields}}

    def _timeline(
        self, query: dict[str, str], candidates: list[FakeTweet], token_param: str
    ) -> dict[str, Any]:
        since = int(query.get("since_id", "0"))
        start = query.get("start_time")
        start_at = datetime.fromisoformat(start.replace("Z", "+00:00")) if start else None
        size = int(query.get("max_results", "10"))
        offset = int(query.get(token_param, "0") or 0)
        found = sorted(
            {t.id: t for t in candidates
             if int(t.id) > since and (start_at is None or t.created_at >= start_at)}.values(),
            key=lambda t: int(t.id), reverse=True,
        )
        page = found[offset : offset + size]
        if not page:
            return {"meta": {"result_count": 0}}
        fields = set(query.get("tweet.fields", "").split(","))
        if "author_id" in query.get("expansions", ""):
            fields.add("author_id")  # an expansion's id field always comes with it
        out: dict[str, Any] = {
            "data": [t.to_json(fields, self.users) for t in page],
            "meta": {"newest_id": page[0].id, "oldest_id": page[-1].id, "result_count": len(page)},
        }
        if "author_id" in query.get("expansions", ""):
            ids = dict.fromkeys(t.author_id for t in page)
            out["includes"] = {"users": [
                {k: self.users[i][k] for k in ("id", "name", "username")}
                for i in ids if i in self.users
            ]}
        if offset + size < len(found):
            out["meta"]["next_token"] = str(offset + size)
        return out


def _handler(api: FakeXApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # headers and body leave in two writes: without TCP_NODELAY a kept-alive
        # connection waits for the client's delayed ACK (40 ms on Linux) on every answer
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, payload = api.handle(
                self.command, parts.path, dict(parse_qsl(parts.query)), headers, body
            )
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

        def do_GET(self) -> None:
            self._serve()

        def do_PUT(self) -> None:
            self._serve()

    return Handler


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)
