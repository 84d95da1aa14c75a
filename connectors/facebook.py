"""Facebook Pages through the Graph API (facebook-sdk 3.1.0, see `connectors._graph`).

Per poll and page, one batch slot each for the feed (posts with their comments by
field expansion), the posts the page is tagged in and, when `settings_interval` has
passed, the page fields and the people who can run the page.  Pages sharing a token
share batches, so a quiet cycle costs about one HTTP request per 25 pages.

Why the feed is re-read `comment_window` back: `since` filters posts by their
creation time, so a new comment on an older post is only seen if that post is
still inside the window.  The cursor keeps such comments from being returned twice.

Cursors: `feed` and `tagged` are `StreamCursor` JSON, `settings_at` the ISO time of
the last settings read, `not_before` the ISO time before which usage says not to poll.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from connectors._graph import (
    GraphConnector,
    GraphOp,
    GraphOptions,
    PollContext,
    epoch,
    load_cursor,
    make_item,
)
from connectors.base import ConnectorError
from monitor.model import Audience, Author, Item, ItemKind, PollResult, RoleHolder, SettingsSnapshot

COMMENT_FIELDS = "id,message,from,created_time,parent,permalink_url,is_hidden"
# `from` is added to the documented post fields: /feed also holds visitors' posts,
# which must not be judged as the page's own posts.
FEED_FIELDS = ("id,message,from,created_time,permalink_url,"
               f"comments.filter(stream).order(reverse_chronological){{{COMMENT_FIELDS}}}")
TAGGED_FIELDS = "id,message,from,created_time,permalink_url"
# Fields that change who sees the page or who runs it; no counters (they change every hour).
PAGE_FIELDS = ("id", "name", "username", "link", "is_published", "is_unclaimed", "is_owned",
               "verification_status", "is_webhooks_subscribed", "can_post",
               "is_permanently_closed")
ROLE_FIELDS = "id,name,tasks"


class FacebookOptions(GraphOptions):
    business_id: str | None = Field(default=None, pattern=r"^\d{1,32}$")
    """Needed by /{page}/assigned_users (business users with tasks on the page)."""


class FacebookConnector(GraphConnector, platform="facebook"):
    """Facebook Pages: posts, comments, replies, tags, page settings and roles (Graph API)."""

    Options = FacebookOptions
    required_credentials = ("page_token_env",)
    credential_key = "page_token_env"

    def hide_args(self) -> dict[str, str]:
        return {"is_hidden": "true"}

    def plan(self, ctx: PollContext) -> list[GraphOp]:
        page, opts, now = ctx.account.external_id, ctx.options, ctx.now
        feed = load_cursor(ctx.cursors, "feed", [])
        tagged = load_cursor(ctx.cursors, "tagged", [])
        feed_since = min(feed.floor(now, opts.overlap, opts.initial_lookback),
                         now - opts.comment_window)
        limit = str(opts.page_size)
        ops = [
            GraphOp("feed", f"{page}/feed",
                    {"fields": FEED_FIELDS, "since": epoch(feed_since), "limit": limit}),
            GraphOp("tagged", f"{page}/tagged", {
                "fields": TAGGED_FIELDS, "limit": limit,
                "since": epoch(tagged.floor(now, opts.overlap, opts.initial_lookback))}),
        ]
        if ctx.settings_due:
            # Role edges are optional: /roles is refused for New Pages Experience pages
            # and /assigned_users needs business permissions; the page fields still count.
            ops += [GraphOp("page", page, {"fields": ",".join(PAGE_FIELDS)}),
                    GraphOp("roles", f"{page}/roles", {"fields": ROLE_FIELDS}, optional=True)]
            if opts.business_id:
                ops.append(GraphOp("assigned_users", f"{page}/assigned_users",
                                   {"business": opts.business_id, "fields": ROLE_FIELDS},
                                   optional=True))
        return ops

    def finish(self, ctx: PollContext,
               replies: Mapping[str, dict[str, Any] | ConnectorError]) -> PollResult:
        opts = ctx.options
        feed_cursor = load_cursor(ctx.cursors, "feed", ctx.warnings)
        floor = feed_cursor.floor(ctx.now, opts.overlap, opts.initial_lookback)
        candidates: list[Item] = []
        for post in ctx.collect(ctx.required(replies, "feed"), floor=None, time_key="created_time"):
            candidates += self._post_items(ctx, post, floor)
        items, feed_next = feed_cursor.select(candidates, floor=floor, overlap=opts.overlap)

        tag_cursor = load_cursor(ctx.cursors, "tagged", ctx.warnings)
        tag_floor = tag_cursor.floor(ctx.now, opts.overlap, opts.initial_lookback)
        tags = [self._item(ctx, t, ItemKind.TAG, None)
                for t in ctx.collect(ctx.required(replies, "tagged"), floor=None,
                                     time_key="created_time")]
        new_tags, tag_next = tag_cursor.select([t for t in tags if t], floor=tag_floor,
                                               overlap=opts.overlap)
        snapshot = self._snapshot(ctx, replies) if "page" in replies else None

        cursors = {name: new.dump() for name, old, new in
                   (("feed", feed_cursor, feed_next), ("tagged", tag_cursor, tag_next))
                   if new is not old}
        if snapshot is not None:
            cursors["settings_at"] = ctx.now.isoformat()
        return PollResult(items=items + new_tags, settings_snapshot=snapshot,
                          new_cursors=cursors, warnings=ctx.warnings)

    # ------------------------------------------------------------------ payload -> model
    def _post_items(self, ctx: PollContext, post: dict[str, Any], floor: Any) -> list[Item]:
        page_id = ctx.account.external_id
        author = _author(post.get("from"))
        own = not author.id or author.id == page_id
        kind = ItemKind.OWN_POST if own else ItemKind.COMMENT  # a visitor's post on the page
        first = self._item(ctx, post, kind, None)
        out = [first] if first else []
        comments = ctx.collect(post.get("comments"), floor=floor, time_key="created_time")
        for comment in comments:
            parent = comment.get("parent")
            parent_id = str(parent["id"]) if isinstance(parent, dict) and "id" in parent else None
            kind = ItemKind.REPLY if parent_id else ItemKind.COMMENT
            if _author(comment.get("from")).id == page_id:
                kind = ItemKind.OWN_POST
            item = self._item(ctx, comment, kind, parent_id or str(post.get("id", "")) or None)
            if item:
                out.append(item)
        return out

    def _item(self, ctx: PollContext, obj: dict[str, Any], kind: ItemKind,
              parent_id: str | None) -> Item | None:
        author = _author(obj.get("from"))
        if not author.id and kind is ItemKind.OWN_POST:
            author = Author(id=ctx.account.external_id, handle=ctx.account.handle)
        elif author.id == ctx.account.external_id:
            author = Author(id=author.id, handle=ctx.account.handle,
                            display_name=author.display_name)
        return make_item(ctx, obj, platform="facebook", kind=kind, text_key="message",
                         time_key="created_time", url_key="permalink_url", author=author,
                         parent_id=parent_id)

    def _snapshot(self, ctx: PollContext,
                  replies: Mapping[str, dict[str, Any] | ConnectorError]) -> SettingsSnapshot:
        page = ctx.required(replies, "page")
        edges: dict[str, list[dict[str, Any]]] = {}
        for key in ("roles", "assigned_users"):  # optional: a failure is already a warning
            reply = replies.get(key)
            edges[key] = ctx.collect(reply, floor=None, time_key="") \
                if isinstance(reply, dict) else []
        roles, assigned = edges["roles"], edges["assigned_users"]
        holders: dict[str, RoleHolder] = {}
        for person in roles + assigned:
            if "id" not in person:
                continue
            holder = _role_holder(person)
            old = holders.get(holder.platform_user_id)
            if old is not None:  # listed by both edges: keep every task
                tasks = sorted((set(old.role.split(",")) | set(holder.role.split(","))) - {""})
                holder = RoleHolder(old.platform_user_id, old.name or holder.name,
                                    ",".join(tasks), old.email or holder.email)
            holders[holder.platform_user_id] = holder
        fields = {k: page.get(k) for k in PAGE_FIELDS if k != "id"}
        published = page.get("is_published", True) is not False
        return SettingsSnapshot(
            taken_at=ctx.now, audience=Audience.PUBLIC if published else Audience.PRIVATE,
            fields=fields, role_holders=tuple(sorted(holders.values(),
                                                     key=lambda h: h.platform_user_id)),
            raw={"page": page, "roles": roles, "assigned_users": assigned},
        )


def _author(value: object) -> Author:
    if not isinstance(value, dict):
        return Author(id="")
    return Author(id=str(value.get("id", "")), handle=str(value.get("username", "") or ""),
                  display_name=str(value.get("name", "") or ""))


def _role_holder(person: Mapping[str, Any]) -> RoleHolder:
    """Page roles were named (`role`, older versions); New Pages give `tasks` instead."""
    tasks = person.get("tasks")
    role = person.get("role") or (",".join(sorted(str(t) for t in tasks))
                                  if isinstance(tasks, list) else "")
    email = person.get("email")
    return RoleHolder(platform_user_id=str(person["id"]), name=str(person.get("name", "")),
                      role=str(role), email=str(email) if email else None)
