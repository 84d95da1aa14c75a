"""A loopback fake of the Graph API endpoints the Facebook and Instagram connectors use.

It runs the real facebook-sdk client over real HTTP (127.0.0.1, a free port), so the
tests exercise URL building, versions, the batch format and error parsing as in
production.  Shapes follow Meta's documentation: edges are
``{"data": [...], "paging": {"cursors": {"before", "after"}, "next": URL}}`` with
``next`` pointing at ``https://graph.facebook.com`` (the connector must not follow
the host), times are ``2026-11-20T14:03:00+0000``, errors are
``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}``, the batch
reply is ``[{"code", "headers": [{"name", "value"}], "body": "<json>"}]``, and
``/{ig-user}/tags`` pages on ``cursors.after`` with no ``next`` link.  Feeds and
comment streams are newest first; Instagram comments oldest first.

Every HTTP request is recorded in `requests` (batch operations also in
`batch_items`); `fault()` scripts replies for the next matching requests (whole HTTP
requests or batch operations alike): any status, body, raw text, headers or delay.
`latency` delays every HTTP request's answer (a batch counts once), as a distant API
would; the server answers each connection in its own thread with a deep listen queue.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

TOKEN = "EAAGfakePageToken0123456789abcdef"
GRAPH_HOST = "https://graph.facebook.com"


def graph_time(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def error_body(code: int, subcode: int | None = None, message: str = "An error occurred",
               kind: str = "OAuthException", **extra: Any) -> dict[str, Any]:
    err: dict[str, Any] = {"message": message, "type": kind, "code": code,
                           "fbtrace_id": "AbCdEfGh123", **extra}
    if subcode is not None:
        err["error_subcode"] = subcode
    return {"error": err}


@dataclass
class Reply:
    """A scripted reply: `body` is JSON-encoded unless `raw` is given."""

    status: int = 200
    body: Any = None
    raw: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    content_type: str = "application/json; charset=UTF-8"

    def text(self) -> str:
        return self.raw if self.raw is not None else json.dumps(self.body)


def error(code: int, subcode: int | None = None, message: str = "An error occurred",
          status: int = 400, **extra: Any) -> Reply:
    return Reply(status=status, body=error_body(code, subcode, message, **extra))


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: dict[str, str]


@dataclass
class FakePage:
    id: str
    fields: dict[str, Any]
    posts: list[dict[str, Any]] = field(default_factory=list)
    tagged: list[dict[str, Any]] = field(default_factory=list)
    roles: list[dict[str, Any]] = field(default_factory=list)
    assigned_users: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class FakeIGUser:
    id: str
    fields: dict[str, Any]
    media: list[dict[str, Any]] = field(default_factory=list)
    tags: list[dict[str, Any]] = field(default_factory=list)


def _cursor(offset: int) -> str:
    return base64.b64encode(f"offset:{offset}".encode()).decode()


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    return int(base64.b64decode(cursor).decode().split(":")[1])


class _Server(ThreadingHTTPServer):
    """One daemon thread per connection, and a listen queue deep enough for a benchmark."""

    daemon_threads = True
    request_queue_size = 1024


class FakeGraphAPI:
    """Start with `FakeGraphAPI().start()`; `base_url` is the URL to configure.

    `latency` (seconds) is added to every HTTP request; `record=False` keeps only the
    count of HTTP requests (`request_count`), not the requests and batch items.
    """

    def __init__(self, token: str = TOKEN, version: str = "v21.0", *, latency: float = 0.0,
                 record: bool = True) -> None:
        self.token = token
        self.version = version
        self.latency = latency
        self.record = record
        self.request_count = 0
        self.pages: dict[str, FakePage] = {}
        self.ig_users: dict[str, FakeIGUser] = {}
        self.comments: dict[str, dict[str, Any]] = {}  # every comment by id, for hiding
        self.requests: list[Recorded] = []
        self.batch_items: list[Recorded] = []
        self.usage_headers: dict[str, str] = {}
        self.empty_first_page: set[str] = set()  # relative paths whose first page is empty
        self.nested_limit = 25
        self._faults: list[tuple[str, str, Reply]] = []
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeGraphAPI:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True  # no delayed-ACK stall between headers and body

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

            def do_DELETE(self) -> None:
                fake._handle(self, "DELETE")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # ------------------------------------------------------------------ scripting
    def fault(self, method: str, path: str, *replies: Reply) -> None:
        """Reply with `replies`, in order, to the next requests for `path` (no version;
        '' is the batch endpoint), instead of the normal answer."""
        with self._lock:
            self._faults.extend((method, path.strip("/"), r) for r in replies)

    def reset_log(self) -> None:
        with self._lock:
            self.requests.clear()
            self.batch_items.clear()
            self.request_count = 0

    def add_page(self, page_id: str, **fields: Any) -> FakePage:
        base = {"id": page_id, "name": f"Page {page_id}", "is_published": True,
                "is_unclaimed": False, "is_owned": True, "verification_status": "not_verified",
                "is_webhooks_subscribed": False, "can_post": True,
                "is_permanently_closed": False, "link": f"https://www.facebook.com/{page_id}",
                "username": f"page{page_id}"}
        page = FakePage(page_id, {**base, **fields})
        self.pages[page_id] = page
        return page

    def add_post(self, page_id: str, post_id: str, at: int, message: str = "",
                 author: dict[str, str] | None = None) -> dict[str, Any]:
        page = self.pages[page_id]
        post = {"id": post_id, "message": message, "_t": at,
                "from": author or {"id": page_id, "name": page.fields["name"]},
                "permalink_url": f"https://www.facebook.com/{post_id}", "comments": []}
        page.posts.append(post)
        return post

    def add_comment(self, page_id: str, post_id: str, comment_id: str, at: int, message: str,
                    author: dict[str, str], parent: str | None = None) -> None:
        post = next(p for p in self.pages[page_id].posts if p["id"] == post_id)
        comment = {"id": comment_id, "message": message, "from": author, "_t": at,
                   "permalink_url": f"https://www.facebook.com/{comment_id}", "is_hidden": False}
        if parent:
            comment["parent"] = {"id": parent}
        post["comments"].append(comment)
        self.comments[comment_id] = comment

    def add_tagged(self, page_id: str, post_id: str, at: int, message: str,
                   author: dict[str, str]) -> None:
        self.pages[page_id].tagged.append(
            {"id": post_id, "message": message, "from": author, "_t": at,
             "permalink_url": f"https://www.facebook.com/{post_id}"})

    def add_ig_user(self, user_id: str, username: str, **fields: Any) -> FakeIGUser:
        base = {"id": user_id, "username": username, "name": username.title(),
                "biography": "Our class", "website": "https://school.example",
                "followers_count": 10, "follows_count": 1, "media_count": 0}
        user = FakeIGUser(user_id, {**base, **fields})
        self.ig_users[user_id] = user
        return user

    def add_media(self, user_id: str, media_id: str, at: int, caption: str = "") -> None:
        user = self.ig_users[user_id]
        user.media.append({"id": media_id, "caption": caption, "media_type": "IMAGE",
                           "permalink": f"https://www.instagram.com/p/{media_id}/",
                           "username": user.fields["username"], "_t": at, "comments": []})

    def add_ig_comment(self, user_id: str, media_id: str, comment_id: str, at: int, text: str,
                       username: str, from_id: str | None = None,
                       parent: str | None = None) -> None:
        media = next(m for m in self.ig_users[user_id].media if m["id"] == media_id)
        comment: dict[str, Any] = {"id": comment_id, "text": text, "username": username,
                                   "_t": at, "hidden": False, "replies": []}
        if from_id:
            comment["from"] = {"id": from_id, "username": username}
        if parent:
            comment["parent_id"] = parent
            next(c for c in media["comments"] if c["id"] == parent)["replies"].append(comment)
        else:
            media["comments"].append(comment)
        self.comments[comment_id] = comment

    def add_ig_tag(self, user_id: str, media_id: str, at: int, caption: str,
                   username: str) -> None:
        self.ig_users[user_id].tags.append(
            {"id": media_id, "caption": caption, "media_type": "IMAGE", "username": username,
             "permalink": f"https://www.instagram.com/p/{media_id}/", "_t": at})

    # ------------------------------------------------------------------ HTTP
    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        length = int(handler.headers.get("Content-Length") or 0)
        raw_body = handler.rfile.read(length).decode() if length else ""
        body = dict(parse_qsl(raw_body, keep_blank_values=True))
        with self._lock:
            self.request_count += 1
            if self.record:
                self.requests.append(Recorded(method, parts.path, query, body))
        if self.latency:
            time.sleep(self.latency)
        segments = parts.path.strip("/").split("/")
        if not segments or segments[0] != self.version:
            reply = Reply(400, error_body(2635, message=f"version {segments[0]!r} unsupported"))
        else:
            rel = "/".join(segments[1:])
            token = body.get("access_token") or query.get("access_token")
            reply = self._dispatch(method, rel, query, body, token)
        if reply.delay:
            time.sleep(reply.delay)
        payload = reply.text().encode()
        try:
            handler.send_response(reply.status)
            handler.send_header("Content-Type", reply.content_type)
            handler.send_header("Content-Length", str(len(payload)))
            for name, value in {**self.usage_headers, **reply.headers}.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(payload)
        except OSError:  # the client gave up (a timeout test)
            pass

    def _scripted(self, method: str, rel: str) -> Reply | None:
        with self._lock:
            for i, (m, path, reply) in enumerate(self._faults):
                if m == method and path == rel:
                    del self._faults[i]
                    return reply
        return None

    def _dispatch(self, method: str, rel: str, query: dict[str, str], body: dict[str, str],
                  token: str | None) -> Reply:
        scripted = self._scripted(method, rel)
        if scripted is not None:
            return scripted
        if token != self.token:
            return error(190, 467, "Invalid OAuth access token - Cannot parse access token")
        if rel == "" and method == "POST" and "batch" in body:
            return self._batch(body)
        try:
            result = self._route(method, rel.split("/"), {**query, **body})
        except KeyError as exc:
            return error(100, 33, f"Unsupported request: object {exc} does not exist",
                         kind="GraphMethodException")
        return result if isinstance(result, Reply) else Reply(200, result)

    def _batch(self, body: dict[str, str]) -> Reply:
        ops = json.loads(body["batch"])
        if len(ops) > 50:
            return error(1, message="Too many requests in batch message. Maximum is 50")
        out = []
        for op in ops:
            url = urlsplit(op["relative_url"])
            query = dict(parse_qsl(url.query, keep_blank_values=True))
            rel = url.path.strip("/")
            if self.record:
                with self._lock:
                    self.batch_items.append(Recorded(op["method"], rel, query, {}))
            reply = self._dispatch(op["method"], rel, query, {}, body.get("access_token"))
            if reply.delay:
                time.sleep(reply.delay)
            headers = [{"name": "Content-Type", "value": reply.content_type}]
            headers += [{"name": k, "value": v}
                        for k, v in {**self.usage_headers, **reply.headers}.items()]
            out.append({"code": reply.status, "headers": headers, "body": reply.text()})
        return Reply(200, out)

    # ------------------------------------------------------------------ resources
    def _route(self, method: str, seg: list[str], args: dict[str, str]) -> Any:
        with self._lock:
            if method == "POST" and len(seg) == 1:
                return self._hide(seg[0], args)
            if len(seg) == 1:
                return self._object(seg[0], args)
            node, edge = seg
            if node in self.pages:
                page = self.pages[node]
                if edge == "feed":
                    posts = [self._render_post(p, node) for p in _since(page.posts, args)]
                    return self._edge(posts, f"{node}/feed", args)
                if edge == "tagged":
                    return self._edge([_render(t) for t in _since(page.tagged, args)],
                                      f"{node}/tagged", args)
                if edge in ("roles", "assigned_users"):
                    return self._edge(list(getattr(page, edge)), f"{node}/{edge}", args)
            if node in self.ig_users:
                user = self.ig_users[node]
                if edge == "media":
                    media = [self._render_media(m) for m in _since(user.media, args)]
                    return self._edge(media, f"{node}/media", args)
                if edge == "tags":
                    newest_first = sorted(user.tags, key=lambda t: -t["_t"])
                    tags = [_render(t, "timestamp") for t in newest_first]
                    return self._edge(tags, f"{node}/tags", args, links=False)
            if edge == "comments":
                return self._comments(node, args)
            raise KeyError(node)

    def _object(self, node: str, args: dict[str, str]) -> Any:
        obj = self.pages[node].fields if node in self.pages else self.ig_users[node].fields
        wanted = args.get("fields", "id").split(",")
        return {k: obj[k] for k in wanted if k in obj}

    def _hide(self, node: str, args: dict[str, str]) -> Any:
        comment = self.comments[node]
        key = "is_hidden" if "is_hidden" in args else "hide"
        comment["is_hidden" if key == "is_hidden" else "hidden"] = args[key] == "true"
        return {"success": True}

    def _comments(self, node: str, args: dict[str, str]) -> Any:
        for page in self.pages.values():
            for post in page.posts:
                if post["id"] == node:
                    comments = sorted(post["comments"], key=lambda c: -c["_t"])
                    return self._edge([_render(c) for c in comments], f"{node}/comments", args)
        for user in self.ig_users.values():
            for media in user.media:
                if media["id"] == node:
                    comments = [self._render_ig_comment(c) for c in media["comments"]]
                    return self._edge(comments, f"{node}/comments", args)
        raise KeyError(node)

    def _render_post(self, post: dict[str, Any], page_id: str) -> dict[str, Any]:
        out = _render({k: v for k, v in post.items() if k != "comments"})
        comments = sorted(post["comments"], key=lambda c: -c["_t"])  # reverse_chronological
        if comments:
            args = {"filter": "stream", "order": "reverse_chronological",
                    "fields": "id,message,from,created_time,parent,permalink_url,is_hidden",
                    "limit": str(self.nested_limit)}
            out["comments"] = self._edge([_render(c) for c in comments], f"{post['id']}/comments",
                                         args)
        return out

    def _render_media(self, media: dict[str, Any]) -> dict[str, Any]:
        out = _render({k: v for k, v in media.items() if k != "comments"}, "timestamp")
        out["comments_count"] = len(media["comments"])
        if media["comments"]:
            args = {"fields": "id,text,timestamp,username", "limit": str(self.nested_limit)}
            out["comments"] = self._edge([self._render_ig_comment(c) for c in media["comments"]],
                                         f"{media['id']}/comments", args)
        return out

    def _render_ig_comment(self, comment: dict[str, Any]) -> dict[str, Any]:
        out = _render({k: v for k, v in comment.items() if k != "replies"}, "timestamp")
        if comment["replies"]:
            out["replies"] = {"data": [_render(r, "timestamp") for r in comment["replies"]]}
        return out

    def _edge(self, items: list[dict[str, Any]], path: str, args: dict[str, str],
              links: bool = True) -> dict[str, Any]:
        """One page of an edge, with cursors and (unless `links` is off) a `next` URL."""
        limit = int(args.get("limit", "25"))
        if path in self.empty_first_page and "after" not in args:
            return {"data": [], "paging": {"cursors": {"before": _cursor(0), "after": _cursor(0)},
                                           "next": self._link(path, args, 0)}}
        start = _offset(args.get("after"))
        chunk = items[start:start + limit]
        if not chunk:
            return {"data": []}
        paging: dict[str, Any] = {"cursors": {"before": _cursor(start),
                                              "after": _cursor(start + len(chunk))}}
        if links and start + limit < len(items):
            paging["next"] = self._link(path, args, start + limit)
        return {"data": chunk, "paging": paging}

    def _link(self, path: str, args: dict[str, str], offset: int) -> str:
        query = {k: v for k, v in args.items() if k not in ("after", "access_token", "batch")}
        query.update(access_token=self.token, after=_cursor(offset))
        return f"{GRAPH_HOST}/{self.version}/{path}?{urlencode(query)}"


def _since(items: list[dict[str, Any]], args: dict[str, str]) -> list[dict[str, Any]]:
    since = int(args.get("since", "0"))
    return sorted((i for i in items if i["_t"] >= since), key=lambda i: -i["_t"])


def _render(obj: dict[str, Any], time_key: str = "created_time") -> dict[str, Any]:
    out = {k: v for k, v in obj.items() if not k.startswith("_")}
    out[time_key] = graph_time(obj["_t"])
    return out
