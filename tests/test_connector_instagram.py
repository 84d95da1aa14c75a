"""The Instagram connector against a loopback Graph API, through the real facebook-sdk."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.base import AccountPoll, AuthError, ConnectorError, RateLimitedError
from connectors.instagram import InstagramConnector
from monitor.config import AccountConfig
from monitor.model import Audience, ItemKind, PollResult
from tests.fakes.graph_api import TOKEN, FakeGraphAPI, error

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
T = int(NOW.timestamp())
FAST = {"retry_wait": 0.001, "retry_max_wait": 0.005}
USER = "17841400000000001"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGraphAPI]:
    api = FakeGraphAPI().start()
    monkeypatch.setenv("IG_TOKEN", api.token)
    api.add_ig_user(USER, "grade5central")
    yield api
    api.stop()


@pytest.fixture
def connector() -> Iterator[InstagramConnector]:
    c = InstagramConnector()
    yield c
    c.close()


def account(fake: FakeGraphAPI, user: str = USER, **kw: Any) -> AccountConfig:
    options = {**FAST, **kw.pop("options", {})}
    return AccountConfig(
        id=f"ig-{user[-4:]}", platform="instagram", handle="@grade5central", external_id=user,
        school="central", kind="classroom", owners=["owner@central.example"],
        credentials={"access_token_env": "IG_TOKEN"}, api_base_url=fake.base_url,
        options=options, **kw)


def kinds(result: PollResult) -> dict[str, ItemKind]:
    return {i.external_id: i.kind for i in result.items}


def test_media_comments_replies_own_replies_and_tags(fake: FakeGraphAPI,
                                                     connector: InstagramConnector) -> None:
    fake.add_media(USER, "m1", T - 3600, "Science fair")
    fake.add_ig_comment(USER, "m1", "c1", T - 3000, "Wow", "parent_sam", from_id="901")
    fake.add_ig_comment(USER, "m1", "c2", T - 2900, "Thank you!", "grade5central",
                        from_id=USER, parent="c1")
    fake.add_ig_comment(USER, "m1", "c3", T - 2800, "+1", "uncle_bo", parent="c1")
    fake.add_ig_tag(USER, "t1", T - 600, "with @grade5central", "coach_al")

    result = connector.poll(account(fake), {}, NOW)

    assert kinds(result) == {"m1": ItemKind.OWN_POST, "c1": ItemKind.COMMENT,
                             "c2": ItemKind.OWN_POST, "c3": ItemKind.REPLY, "t1": ItemKind.TAG}
    by_id = {i.external_id: i for i in result.items}
    assert by_id["c1"].parent_id == "m1" and by_id["c3"].parent_id == "c1"
    assert by_id["c1"].author.id == "901" and by_id["c1"].author.handle == "parent_sam"
    assert by_id["c3"].author.handle == "uncle_bo" and by_id["c3"].text == "+1"
    assert by_id["c1"].url == "https://www.instagram.com/p/m1/"
    assert by_id["m1"].text == "Science fair" and by_id["t1"].author.handle == "coach_al"
    assert all(i.platform == "instagram" for i in result.items)
    # media, tags and profile in one batch, then the tags' `after` page (empty: the end)
    assert [r.path for r in fake.requests] == ["/v21.0", f"/v21.0/{USER}/tags"]
    media = next(r for r in fake.batch_items if r.path == f"{USER}/media")
    assert "replies{" in media.query["fields"] and int(media.query["since"]) == T - 7 * 86400


def test_profile_snapshot_is_public_without_counters(fake: FakeGraphAPI,
                                                     connector: InstagramConnector) -> None:
    result = connector.poll(account(fake), {}, NOW)
    snap = result.settings_snapshot
    assert snap is not None and snap.audience is Audience.PUBLIC
    assert snap.fields == {"username": "grade5central", "name": "Grade5Central",
                           "biography": "Our class", "website": "https://school.example"}
    assert snap.raw["followers_count"] == 10
    fake.reset_log()
    later = connector.poll(account(fake), dict(result.new_cursors), NOW + timedelta(minutes=5))
    assert later.settings_snapshot is None
    assert {r.path for r in fake.batch_items} == {f"{USER}/media", f"{USER}/tags"}


def test_tags_page_on_after_cursor_without_next_links(fake: FakeGraphAPI,
                                                      connector: InstagramConnector) -> None:
    for n in range(12):
        fake.add_ig_tag(USER, f"t{n}", T - 36000 + n * 600, f"tag {n}", "friend")
    acct = account(fake, options={"page_size": 5})

    first = connector.poll(acct, {}, NOW)

    assert sorted(kinds(first)) == sorted(f"t{n}" for n in range(12))
    follow = [r for r in fake.requests if r.path.endswith("/tags")]
    assert [("after" in r.query) for r in follow] == [True, True, True]  # 5+5+2, then empty

    fake.reset_log()
    fake.add_ig_tag(USER, "t99", T + 60, "new tag", "friend")
    cursors = dict(first.new_cursors)
    second = connector.poll(acct, cursors, NOW + timedelta(minutes=5))
    assert kinds(second) == {"t99": ItemKind.TAG}
    assert len(fake.requests) == 1  # the first page already reaches old tags: no paging


def test_comments_beyond_the_first_page_are_read(fake: FakeGraphAPI,
                                                 connector: InstagramConnector) -> None:
    fake.nested_limit = 4
    fake.add_media(USER, "m1", T - 7200, "Concert")
    for n in range(10):
        fake.add_ig_comment(USER, "m1", f"c{n}", T - 3600 + n, f"bravo {n}", "fan")

    result = connector.poll(account(fake), {}, NOW)

    assert sum(k is ItemKind.COMMENT for k in kinds(result).values()) == 10
    assert [r.path for r in fake.requests[1:]] == ["/v21.0/m1/comments"] * 2


def test_second_poll_and_restart_return_only_new_items(fake: FakeGraphAPI) -> None:
    fake.add_media(USER, "m1", T - 5 * 86400, "Old media, still in the comment window")
    fake.add_media(USER, "m2", T - 600, "New media")
    fake.add_ig_comment(USER, "m2", "c1", T - 300, "nice", "fan")
    acct = account(fake)
    first_connector = InstagramConnector()
    first = first_connector.poll(acct, {}, NOW)
    first_connector.close()
    assert set(kinds(first)) == {"m2", "c1"}

    fake.add_ig_comment(USER, "m1", "c2", T + 30, "late comment on old media", "fan")
    restarted = InstagramConnector()
    cursors = dict(first.new_cursors)
    second = restarted.poll(acct, cursors, NOW + timedelta(minutes=5))
    assert set(kinds(second)) == {"c2"}
    third = restarted.poll(acct, {**cursors, **second.new_cursors}, NOW + timedelta(minutes=10))
    assert third.items == []
    restarted.close()


def test_accounts_sharing_a_token_share_a_batch(fake: FakeGraphAPI,
                                                connector: InstagramConnector) -> None:
    other = "17841400000000002"
    fake.add_ig_user(other, "grade6central")
    fake.add_media(other, "m9", T - 60, "hello")
    fake.fault("GET", f"{USER}/media", error(10, message="Application does not have permission"))

    results = connector.poll_many([AccountPoll(account(fake), {}),
                                   AccountPoll(account(fake, other), {})], NOW)

    assert len(fake.requests) == 1
    assert isinstance(results["ig-0001"], ConnectorError)
    good = results["ig-0002"]
    assert isinstance(good, PollResult) and kinds(good) == {"m9": ItemKind.OWN_POST}


def test_errors_map_and_never_show_the_token(fake: FakeGraphAPI,
                                             connector: InstagramConnector) -> None:
    fake.fault("POST", "", error(190, 460, f"Password changed; token {TOKEN} invalid"))
    with pytest.raises(AuthError) as caught:
        connector.poll(account(fake), {}, NOW)
    assert TOKEN not in str(caught.value) and "password changed" in caught.value.reason

    fake.fault("POST", "", error(80002, message="Too many calls to this Instagram account"))
    with pytest.raises(RateLimitedError) as limited:
        connector.poll(account(fake), {}, NOW)
    assert limited.value.retry_after and limited.value.retry_after > 0


def test_hide_posts_hide_true_on_the_comment(fake: FakeGraphAPI,
                                             connector: InstagramConnector) -> None:
    fake.add_media(USER, "m1", T - 600, "post")
    fake.add_ig_comment(USER, "m1", "c1", T - 60, "rude", "troll")

    connector.hide(account(fake, moderation="hide"), "c1")

    assert fake.comments["c1"]["hidden"] is True
    (hide,) = fake.requests
    assert (hide.method, hide.path, hide.body["hide"]) == ("POST", "/v21.0/c1", "true")
