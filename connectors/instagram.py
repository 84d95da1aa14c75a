"""Instagram professional accounts through the Graph API (see `connectors._graph`).

Per poll and account, one batch slot each for recent media (with their comments and
replies by field expansion), the media the account is tagged in and, when
`settings_interval` has passed, the account's profile fields.  Accounts sharing a
token share batches.

Why the choices:
- `/{ig-user}/media` is re-read `comment_window` back, because a new comment on an
  older media is only visible through that media; the cursor drops what was returned.
- comments come oldest first, so a media whose nested comments have a `next` link is
  paged to the end (bounded by `max_pages`) through `/{ig-media}/comments`.
- `/{ig-user}/tags` has no `since` and no `next` link: it is paged on
  `cursors.after` while pages are non-empty, and stops at the first page reaching
  media older than the cursor (tags are newest first).
- only business and creator accounts are served by this API, and those are always
  public, so the snapshot's audience is PUBLIC; its fields are what a person can read
  about the account (no follower counters, which change every hour).

Cursors: `media` and `tags` are `StreamCursor` JSON, `settings_at` and `not_before`
ISO times, as for Facebook.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
from monitor.model import Audience, Author, Item, ItemKind, PollResult, SettingsSnapshot

COMMENT_FIELDS = "id,text,timestamp,username,from{id,username},hidden,parent_id"
MEDIA_FIELDS = ("id,caption,media_type,permalink,timestamp,username,comments_count,"
                f"comments{{{COMMENT_FIELDS},replies{{{COMMENT_FIELDS}}}}}")
TAG_FIELDS = "id,caption,media_type,permalink,timestamp,username"
PROFILE_FIELDS = ("id", "username", "name", "biography", "website",
                  "followers_count", "follows_count", "media_count")
MONITORED_FIELDS = ("username", "name", "biography", "website")


class InstagramOptions(GraphOptions):
    pass


class InstagramConnector(GraphConnector, platform="instagram"):
    """Instagram business accounts: media, comments, replies, tags, profile (Graph API)."""

    Options = InstagramOptions
    required_credentials = ("access_token_env",)
    credential_key = "access_token_env"

    def hide_args(self) -> dict[str, str]:
        return {"hide": "true"}

    def plan(self, ctx: PollContext) -> list[GraphOp]:
        user, opts, now = ctx.account.external_id, ctx.options, ctx.now
        media = load_cursor(ctx.cursors, "media", [])
        since = min(media.floor(now, opts.overlap, opts.initial_lookback),
                    now - opts.comment_window)
        ops = [
            GraphOp("media", f"{user}/media", {"fields": MEDIA_FIELDS, "since": epoch(since),
                                               "limit": str(opts.page_size)}),
            GraphOp("tags", f"{user}/tags", {"fields": TAG_FIELDS, "limit": str(opts.page_size)}),
        ]
        if ctx.settings_due:
            ops.append(GraphOp("profile", user, {"fields": ",".join(PROFILE_FIELDS)}))
        return ops

    def finish(self, ctx: PollContext,
               replies: Mapping[str, dict[str, Any] | ConnectorError]) -> PollResult:
        opts = ctx.options
        media_cursor = load_cursor(ctx.cursors, "media", ctx.warnings)
        floor = media_cursor.floor(ctx.now, opts.overlap, opts.initial_lookback)
        candidates: list[Item] = []
        for media in ctx.collect(ctx.required(replies, "media"), floor=None, time_key="timestamp"):
            candidates += self._media_items(ctx, media)
        items, media_next = media_cursor.select(candidates, floor=floor, overlap=opts.overlap)

        tag_cursor = load_cursor(ctx.cursors, "tags", ctx.warnings)
        tag_floor = tag_cursor.floor(ctx.now, opts.overlap, opts.initial_lookback)
        tag_op = (f"{ctx.account.external_id}/tags",
                  {"fields": TAG_FIELDS, "limit": str(opts.page_size)})
        tagged = ctx.collect(ctx.required(replies, "tags"), floor=tag_floor,
                             time_key="timestamp", after=tag_op)
        tags = [self._item(ctx, t, ItemKind.TAG, None, None) for t in tagged]
        new_tags, tag_next = tag_cursor.select([t for t in tags if t], floor=tag_floor,
                                               overlap=opts.overlap)
        snapshot = self._snapshot(ctx, ctx.required(replies, "profile")) \
            if "profile" in replies else None

        cursors = {name: new.dump() for name, old, new in
                   (("media", media_cursor, media_next), ("tags", tag_cursor, tag_next))
                   if new is not old}
        if snapshot is not None:
            cursors["settings_at"] = ctx.now.isoformat()
        return PollResult(items=items + new_tags, settings_snapshot=snapshot,
                          new_cursors=cursors, warnings=ctx.warnings)

    # ------------------------------------------------------------------ payload -> model
    def _media_items(self, ctx: PollContext, media: dict[str, Any]) -> list[Item]:
        media_id, url = str(media.get("id", "")), media.get("permalink")
        first = self._item(ctx, media, ItemKind.OWN_POST, None, None)
        out = [first] if first else []
        for comment in ctx.collect(media.get("comments"), floor=None, time_key="timestamp"):
            item = self._item(ctx, comment, ItemKind.COMMENT, media_id or None, url)
            out += [item] if item else []
            for reply in ctx.collect(comment.get("replies"), floor=None, time_key="timestamp"):
                parent = str(reply.get("parent_id") or comment.get("id", "")) or None
                item = self._item(ctx, reply, ItemKind.REPLY, parent, url)
                out += [item] if item else []
        return out

    def _item(self, ctx: PollContext, obj: dict[str, Any], kind: ItemKind,
              parent_id: str | None, url: object) -> Item | None:
        author = _author(obj)
        own_handle = ctx.account.handle.lstrip("@")
        if kind is ItemKind.OWN_POST:  # media: the `username` is the owner's
            author = Author(id=ctx.account.external_id, handle=author.handle or own_handle,
                            display_name=author.display_name or own_handle)
        elif kind is not ItemKind.TAG and (
                author.id == ctx.account.external_id
                or (not author.id and author.handle.lower() == own_handle.lower())):
            kind = ItemKind.OWN_POST  # the account answering in its own comments
        return make_item(ctx, obj, platform="instagram", kind=kind,
                         text_key="caption" if "caption" in obj else "text",
                         time_key="timestamp", url_key="permalink", author=author,
                         parent_id=parent_id, url=url if isinstance(url, str) else None)

    @staticmethod
    def _snapshot(ctx: PollContext, profile: dict[str, Any]) -> SettingsSnapshot:
        return SettingsSnapshot(
            taken_at=ctx.now, audience=Audience.PUBLIC,
            fields={k: profile.get(k) for k in MONITORED_FIELDS}, raw=profile)


def _author(obj: Mapping[str, Any]) -> Author:
    """Comments name their author by `username`, and by `from{id,username}` where available."""
    sender = obj.get("from")
    sender = sender if isinstance(sender, dict) else {}
    username = str(obj.get("username") or sender.get("username") or "")
    return Author(id=str(sender.get("id", "") or ""), handle=username, display_name=username)
