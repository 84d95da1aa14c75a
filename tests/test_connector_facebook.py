"""The Facebook connector against a loopback Graph API, through the real facebook-sdk."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.base import (
    AccountPoll,
    AuthError,
    ConnectorError,
    MalformedPayloadError,
    PermissionDeniedError,
    RateLimitedError,
    TransientError,
)
from connectors.facebook import FacebookConnector
from monitor.config import AccountConfig
from monitor.model import Audience, ItemKind, PollResult
from tests.fakes.graph_api import TOKEN, FakeGraphAPI, Reply, error, error_body

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
T = int(NOW.timestamp())
FAST = {"retry_wait": 0.001, "retry_max_wait": 0.005}
PARENT = {"id": "9001", "name": "Sam Parent"}
PAGE = "1001"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGraphAPI]:
    api = FakeGraphAPI().start()
    monkeypatch.setenv("FB_PAGE_TOKEN", api.token)
    api.add_page(PAGE, name="Grade 5 Central")
    yield api
    api.stop()


@pytest.fixture
def connector() -> Iterator[FacebookConnector]:
    c = FacebookConnector()
    yield c
    c.close()


def account(fake: FakeGraphAPI, page_id: str = PAGE, **kw: Any) -> AccountConfig:
    options = {**FAST, **kw.pop("options", {})}
    return AccountConfig(
        id=f"fb-{page_id}", platform="facebook", handle="grade5central", external_id=page_id,
        school="central", kind="classroom", owners=["owner@central.example"],
        credentials={"page_token_env": "FB_PAGE_TOKEN"}, api_base_url=fake.base_url,
        options=options, **kw)


def kinds(result: PollResult) -> dict[str, ItemKind]:
    return {i.external_id: i.kind for i in result.items}


def merged(cursors: dict[str, str], result: PollResult) -> dict[str, str]:
    return {**cursors, **result.new_cursors}


# ---------------------------------------------------------------------- items
def test_posts_comments_replies_tags_and_own_comments(fake: FakeGraphAPI,
                                                      connector: FacebookConnector) -> None:
    fake.add_post(PAGE, "1001_1", T - 3600, "Field trip today!")
    fake.add_comment(PAGE, "1001_1", "c1", T - 3000, "Great trip", PARENT)
    fake.add_comment(PAGE, "1001_1", "c2", T - 2900, "Thanks!", {"id": PAGE, "name": "G5"},
                     parent="c1")
    fake.add_comment(PAGE, "1001_1", "c3", T - 2800, "Agreed", {"id": "9002", "name": "Al"},
                     parent="c1")
    fake.add_post(PAGE, "1001_2", T - 1800, "Visitor post", author=PARENT)
    fake.add_tagged(PAGE, "777_1", T - 600, "Look @Grade5", {"id": "9003", "name": "Bo"})

    result = connector.poll(account(fake), {}, NOW)

    assert kinds(result) == {"1001_1": ItemKind.OWN_POST, "c1": ItemKind.COMMENT,
                             "c2": ItemKind.OWN_POST, "c3": ItemKind.REPLY,
                             "1001_2": ItemKind.COMMENT, "777_1": ItemKind.TAG}
    by_id = {i.external_id: i for i in result.items}
    c1, c3 = by_id["c1"], by_id["c3"]
    assert c1.parent_id == "1001_1" and c3.parent_id == "c1"
    assert c1.author.id == "9001" and c1.author.display_name == "Sam Parent"
    assert c1.text == "Great trip" and c1.url == "https://www.facebook.com/c1"
    assert c1.created_at == datetime.fromtimestamp(T - 3000, UTC)
    assert c1.platform == "facebook" and c1.account_id == "fb-1001"
    assert c1.raw["is_hidden"] is False
    assert by_id["1001_1"].author.handle == "grade5central"
    assert by_id["777_1"].author.id == "9003"
    assert set(result.new_cursors) >= {"feed", "tagged", "settings_at"}


def test_feed_request_uses_field_expansion_and_since(fake: FakeGraphAPI,
                                                     connector: FacebookConnector) -> None:
    connector.poll(account(fake), {}, NOW)
    feed = next(r for r in fake.batch_items if r.path == f"{PAGE}/feed")
    assert feed.query["fields"] == (
        "id,message,from,created_time,permalink_url,comments.filter(stream)"
        ".order(reverse_chronological){id,message,from,created_time,parent,permalink_url,"
        "is_hidden}")
    assert int(feed.query["since"]) == T - 7 * 86400  # the comment window
    assert len(fake.requests) == 1  # feed, tagged, page and roles in one batch


def test_pagination_follows_next_even_on_an_empty_page(fake: FakeGraphAPI,
                                                       connector: FacebookConnector) -> None:
    for n in range(60):
        fake.add_post(PAGE, f"1001_{n}", T - 7200 + n, f"post {n}")
    fake.empty_first_page.add(f"{PAGE}/feed")

    result = connector.poll(account(fake), {}, NOW)

    assert len(result.items) == 60
    followed = [r for r in fake.requests if r.path.endswith("/feed")]
    assert [r.query.get("since") for r in followed] == [str(T - 7 * 86400)] * 3
    assert all("access_token" in r.query for r in followed)  # the client's own token


def test_many_new_comments_page_through_the_comments_edge(fake: FakeGraphAPI,
                                                          connector: FacebookConnector) -> None:
    fake.nested_limit = 5
    fake.add_post(PAGE, "1001_1", T - 7200, "Concert")
    for n in range(12):
        fake.add_comment(PAGE, "1001_1", f"c{n}", T - 3600 + n, f"bravo {n}", PARENT)

    result = connector.poll(account(fake), {}, NOW)

    assert sum(k is ItemKind.COMMENT for k in kinds(result).values()) == 12
    assert [r.path for r in fake.requests[1:]] == ["/v21.0/1001_1/comments"] * 2


# ---------------------------------------------------------------------- settings
def test_settings_snapshot_with_roles_and_assigned_users(fake: FakeGraphAPI,
                                                         connector: FacebookConnector) -> None:
    page = fake.pages[PAGE]
    page.roles = [{"id": "501", "name": "Ms Lee", "tasks": ["MANAGE", "CREATE_CONTENT"]},
                  {"id": "502", "name": "Old Role", "role": "editor", "email": "x@y.example"}]
    page.assigned_users = [{"id": "501", "name": "Ms Lee", "tasks": ["MODERATE"]},
                           {"id": "503", "name": "Agency", "tasks": ["ADVERTISE"]}]

    result = connector.poll(account(fake, options={"business_id": "42"}), {}, NOW)

    snap = result.settings_snapshot
    assert snap is not None and snap.audience is Audience.PUBLIC and snap.taken_at == NOW
    assert snap.fields["is_published"] is True and "is_unclaimed" in snap.fields
    holders = {h.platform_user_id: h for h in snap.role_holders}
    assert holders["501"].role == "CREATE_CONTENT,MANAGE,MODERATE"
    assert holders["502"].role == "editor" and holders["502"].email == "x@y.example"
    assert holders["503"].name == "Agency"
    assigned = next(r for r in fake.batch_items if r.path.endswith("assigned_users"))
    assert assigned.query["business"] == "42"
    assert result.new_cursors["settings_at"] == NOW.isoformat()


def test_unpublished_page_is_private_and_role_edge_denials_are_tolerated(
        fake: FakeGraphAPI, connector: FacebookConnector) -> None:
    fake.pages[PAGE].fields["is_published"] = False
    fake.pages[PAGE].assigned_users = [{"id": "503", "name": "Agency", "tasks": ["ADVERTISE"]}]
    fake.fault("GET", f"{PAGE}/roles", error(200, message="Requires pages_manage_metadata"))
    fake.add_post(PAGE, "1001_1", T - 60, "hello")

    result = connector.poll(account(fake, options={"business_id": "42"}), {}, NOW)

    snap = result.settings_snapshot
    assert snap is not None and snap.audience is Audience.PRIVATE
    assert [h.platform_user_id for h in snap.role_holders] == ["503"]
    assert kinds(result) == {"1001_1": ItemKind.OWN_POST}
    assert any("roles not read" in w and "pages_manage_metadata" in w for w in result.warnings)

    fake.fault("GET", f"{PAGE}/assigned_users",
               error(200, message="Requires business_management permission", status=403))
    later = connector.poll(account(fake, options={"business_id": "42"}),
                           {}, NOW + timedelta(hours=2))
    assert later.settings_snapshot is not None
    assert any("assigned_users not read" in w for w in later.warnings)


def test_page_fields_denial_fails_the_poll(fake: FakeGraphAPI,
                                           connector: FacebookConnector) -> None:
    fake.fault("GET", PAGE, error(10, message="Application does not have permission"))
    with pytest.raises(PermissionDeniedError):
        connector.poll(account(fake), {}, NOW)


def test_settings_are_read_on_their_interval(fake: FakeGraphAPI,
                                             connector: FacebookConnector) -> None:
    acct = account(fake, settings_interval="1h")
    first = connector.poll(acct, {}, NOW)
    cursors = merged({}, first)
    fake.reset_log()

    second = connector.poll(acct, cursors, NOW + timedelta(minutes=30))
    assert second.settings_snapshot is None and "settings_at" not in second.new_cursors
    assert {r.path for r in fake.batch_items} == {f"{PAGE}/feed", f"{PAGE}/tagged"}

    third = connector.poll(acct, merged(cursors, second), NOW + timedelta(minutes=61))
    assert third.settings_snapshot is not None


# ---------------------------------------------------------------------- batching
def test_quiet_cycle_costs_at_most_a_tenth_of_a_request_per_page(
        fake: FakeGraphAPI, connector: FacebookConnector) -> None:
    pages = [str(2000 + n) for n in range(120)]
    for p in pages:
        fake.add_page(p)
    accounts = [account(fake, p) for p in pages]
    first = connector.poll_many([AccountPoll(a, {}) for a in accounts], NOW)
    assert all(isinstance(r, PollResult) for r in first.values())
    assert len(fake.requests) <= 12  # even with settings: 4 operations x 120 pages / 50
    fake.reset_log()

    later = NOW + timedelta(minutes=5)
    done = {k: v for k, v in first.items() if isinstance(v, PollResult)}
    polls = [AccountPoll(a, merged({}, done[a.id])) for a in accounts]
    second = connector.poll_many(polls, later)

    assert all(isinstance(r, PollResult) and not r.items for r in second.values())
    assert len(fake.requests) / len(pages) <= 0.1
    assert all(r.path == "/v21.0" and r.method == "POST" for r in fake.requests)
    assert all(len(json.loads(r.body["batch"])) <= 50 for r in fake.requests)


def test_one_failed_batch_item_fails_only_its_account(fake: FakeGraphAPI,
                                                      connector: FacebookConnector) -> None:
    for p in ("1002", "1003"):
        fake.add_page(p)
        fake.add_post(p, f"{p}_1", T - 60, "hello")
    fake.fault("GET", "1002/feed", error(100, 33, "Object 1002 does not exist"))

    results = connector.poll_many([AccountPoll(account(fake, p), {})
                                   for p in (PAGE, "1002", "1003")], NOW)

    assert len(fake.requests) == 1
    assert isinstance(results["fb-1002"], ConnectorError)
    assert "does not exist" in results["fb-1002"].reason
    assert isinstance(results["fb-1001"], PollResult)
    third = results["fb-1003"]
    assert isinstance(third, PollResult) and [i.external_id for i in third.items] == ["1003_1"]


def test_a_slow_token_group_does_not_hold_up_the_others(
        fake: FakeGraphAPI, connector: FacebookConnector, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FB_OTHER_TOKEN", fake.token)
    fake.add_page("1002")
    fake.add_post(PAGE, "1001_1", T - 60, "hello")
    fake.fault("GET", "1002/feed", Reply(200, {"data": []}, delay=1.0))
    options = {"timeout": 0.3, "retry_attempts": 1}
    slow = account(fake, "1002", options=options).model_copy(
        update={"credentials": {"page_token_env": "FB_OTHER_TOKEN"}})

    started = time.monotonic()
    results = connector.poll_many([AccountPoll(account(fake, options=options), {}),
                                   AccountPoll(slow, {})], NOW)

    assert time.monotonic() - started < 0.9
    assert isinstance(results["fb-1002"], TransientError)
    fine = results["fb-1001"]
    assert isinstance(fine, PollResult) and kinds(fine) == {"1001_1": ItemKind.OWN_POST}


# ---------------------------------------------------------------------- routing
def test_every_url_carries_the_version_and_goes_to_the_configured_host(
        fake: FakeGraphAPI, connector: FacebookConnector) -> None:
    fake.version = "v19.0"
    for n in range(30):
        fake.add_post(PAGE, f"1001_{n}", T - 600 + n, "x")  # next links name graph.facebook.com
    acct = account(fake, moderation="hide", options={"graph_version": "v19.0"})
    fake.add_comment(PAGE, "1001_0", "c1", T - 60, "spam", PARENT)

    connector.poll(acct, {}, NOW)
    connector.hide(acct, "c1")

    assert len(fake.requests) == 3  # batch, next page, hide: all reached the fake
    assert all(r.path == "/v19.0" or r.path.startswith("/v19.0/") for r in fake.requests)


# ---------------------------------------------------------------------- errors
def test_expired_token_is_an_auth_error_without_the_token(fake: FakeGraphAPI,
                                                          connector: FacebookConnector) -> None:
    message = (f"Error validating access token: Session has expired on Friday. "
               f"Request: /feed?access_token={TOKEN}&x=1 token {TOKEN}")
    fake.fault("POST", "", error(190, 463, message, status=401))

    with pytest.raises(AuthError) as caught:
        connector.poll(account(fake), {}, NOW)

    assert "expired" in caught.value.reason and "463" in caught.value.reason
    for text in (caught.value.reason, str(caught.value), repr(caught.value)):
        assert TOKEN not in text


def test_permission_error(fake: FakeGraphAPI, connector: FacebookConnector) -> None:
    fake.fault("GET", f"{PAGE}/feed",
               error(200, message="(#200) Requires pages_read_engagement permission"))
    with pytest.raises(PermissionDeniedError, match="pages_read_engagement"):
        connector.poll(account(fake), {}, NOW)


@pytest.mark.parametrize("code", [4, 17, 32, 613])
def test_rate_limit_codes(fake: FakeGraphAPI, connector: FacebookConnector, code: int) -> None:
    fake.fault("POST", "", error(code, message="(#4) Application request limit reached"))
    acct = account(fake, options={"rate_limit_wait": "15m"})

    with pytest.raises(RateLimitedError) as caught:
        connector.poll(acct, {}, NOW)
    assert caught.value.retry_after == 900

    fake.reset_log()
    with pytest.raises(RateLimitedError):  # still blocked: no request is made
        connector.poll(acct, {}, NOW + timedelta(minutes=1))
    assert fake.requests == []


def test_rate_limit_honours_estimated_time_to_regain_access(
        fake: FakeGraphAPI, connector: FacebookConnector) -> None:
    usage = {PAGE: [{"type": "pages", "call_count": 100, "total_cputime": 20,
                     "total_time": 30, "estimated_time_to_regain_access": 7}]}
    fake.fault("GET", f"{PAGE}/feed", Reply(400, {"error": {
        "message": "(#32) Page request limit reached", "code": 32, "type": "OAuthException"}},
        headers={"X-Business-Use-Case-Usage": json.dumps(usage)}))

    with pytest.raises(RateLimitedError) as caught:
        connector.poll(account(fake), {}, NOW)
    assert caught.value.retry_after == 7 * 60


def test_usage_above_threshold_slows_down_before_the_limit(
        fake: FakeGraphAPI, connector: FacebookConnector) -> None:
    fake.add_post(PAGE, "1001_1", T - 60, "hello")
    fake.usage_headers = {"X-App-Usage": json.dumps(
        {"call_count": 85, "total_cputime": 10, "total_time": 12})}
    acct = account(fake, options={"slowdown": "10m"})

    result = connector.poll(acct, {}, NOW)
    assert [i.external_id for i in result.items] == ["1001_1"]  # this poll still counts
    assert result.new_cursors["not_before"] == (NOW + timedelta(minutes=10)).isoformat()
    assert any("85 %" in w for w in result.warnings)
    fake.reset_log()

    with pytest.raises(RateLimitedError) as caught:
        connector.poll(acct, merged({}, result), NOW + timedelta(minutes=4))
    assert caught.value.retry_after == 360 and fake.requests == []

    # a restarted service honours the stored not-before as well
    restarted = FacebookConnector()
    with pytest.raises(RateLimitedError):
        restarted.poll(acct, merged({}, result), NOW + timedelta(minutes=4))
    fake.usage_headers = {}
    assert restarted.poll(acct, merged({}, result), NOW + timedelta(minutes=11)).items == []
    restarted.close()


def test_server_errors_are_retried_then_succeed(fake: FakeGraphAPI,
                                                connector: FacebookConnector) -> None:
    fake.add_post(PAGE, "1001_1", T - 60, "hello")
    fake.fault("POST", "", Reply(500, raw="<html>oops</html>", content_type="text/html"),
               Reply(503, error_body(2, message="Service temporarily unavailable")))
    fake.fault("GET", f"{PAGE}/tagged", error(1, message="An unknown error", status=500))

    result = connector.poll(account(fake), {}, NOW)

    assert kinds(result) == {"1001_1": ItemKind.OWN_POST}
    assert [r.path for r in fake.requests] == ["/v21.0"] * 3 + [f"/v21.0/{PAGE}/tagged"]


def test_server_errors_give_up_after_bounded_retries(fake: FakeGraphAPI,
                                                     connector: FacebookConnector) -> None:
    fake.fault("POST", "", *[Reply(502, raw="bad gateway", content_type="text/plain")] * 3)
    with pytest.raises(TransientError, match="3 attempts"):
        connector.poll(account(fake), {}, NOW)
    assert len(fake.requests) == 3


def test_timeouts_are_transient_and_bounded(fake: FakeGraphAPI,
                                            connector: FacebookConnector) -> None:
    fake.fault("POST", "", *[Reply(200, [], delay=0.5)] * 2)
    acct = account(fake, options={"timeout": 0.1, "retry_attempts": 2})
    with pytest.raises(TransientError) as caught:
        connector.poll(acct, {}, NOW)
    assert TOKEN not in caught.value.reason


def test_malformed_json_is_reported_not_raised(fake: FakeGraphAPI,
                                               connector: FacebookConnector) -> None:
    fake.fault("POST", "", Reply(200, raw="{not json"))
    with pytest.raises(MalformedPayloadError):
        connector.poll(account(fake), {}, NOW)

    fake.fault("GET", f"{PAGE}/feed", Reply(200, raw="[[[", content_type="text/javascript"))
    with pytest.raises(MalformedPayloadError):
        connector.poll(account(fake), {}, NOW)

    fake.fault("GET", f"{PAGE}/feed", Reply(200, {"data": "not a list"}))
    with pytest.raises(MalformedPayloadError):
        connector.poll(account(fake), {}, NOW)


def test_missing_token_is_an_auth_error(fake: FakeGraphAPI, connector: FacebookConnector,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FB_PAGE_TOKEN")
    with pytest.raises(AuthError, match="FB_PAGE_TOKEN"):
        connector.poll(account(fake), {}, NOW)
    assert fake.requests == []


# ---------------------------------------------------------------------- cursors
def test_second_poll_returns_only_what_is_new(fake: FakeGraphAPI,
                                              connector: FacebookConnector) -> None:
    fake.add_post(PAGE, "1001_1", T - 3 * 86400 + 60, "Old post still in the window")
    fake.add_post(PAGE, "1001_2", T - 600, "Recent post")
    fake.add_comment(PAGE, "1001_2", "c1", T - 300, "first", PARENT)
    acct = account(fake)
    first = connector.poll(acct, {}, NOW)
    assert set(kinds(first)) == {"1001_2", "c1"}  # older than the initial lookback: skipped

    fake.add_comment(PAGE, "1001_1", "c2", T + 60, "late comment on an old post", PARENT)
    second = connector.poll(acct, merged({}, first), NOW + timedelta(minutes=5))
    assert set(kinds(second)) == {"c2"}

    third = connector.poll(acct, merged(merged({}, first), second), NOW + timedelta(minutes=10))
    assert third.items == [] and "feed" not in third.new_cursors


def test_restart_resumes_without_skips_or_duplicates(fake: FakeGraphAPI) -> None:
    fake.add_post(PAGE, "1001_1", T - 600, "post")
    fake.add_comment(PAGE, "1001_1", "c1", T - 100, "one", PARENT)
    acct = account(fake)
    before = FacebookConnector()
    first = before.poll(acct, {}, NOW)
    before.close()
    cursors = merged({}, first)

    fake.add_comment(PAGE, "1001_1", "c2", T - 100, "same second as c1, seen late", PARENT)
    fake.add_comment(PAGE, "1001_1", "c3", T + 120, "after the restart", PARENT)
    fake.add_tagged(PAGE, "555_1", T + 100, "tag", PARENT)
    after = FacebookConnector()
    second = after.poll(acct, cursors, NOW + timedelta(minutes=5))
    after.close()

    assert sorted(kinds(second)) == ["555_1", "c2", "c3"]
    feed = json.loads(second.new_cursors["feed"])
    assert set(feed["seen"]) <= {"c1", "c2", "c3"}  # small: only the overlap window


def test_unreadable_cursor_restarts_from_the_lookback(fake: FakeGraphAPI,
                                                      connector: FacebookConnector) -> None:
    fake.add_post(PAGE, "1001_1", T - 60, "hello")
    result = connector.poll(account(fake), {"feed": "{garbage", "settings_at": "x"}, NOW)
    assert kinds(result) == {"1001_1": ItemKind.OWN_POST}
    assert any("unreadable" in w for w in result.warnings)


# ---------------------------------------------------------------------- hide
def test_hide_sets_is_hidden_and_never_deletes(fake: FakeGraphAPI,
                                               connector: FacebookConnector) -> None:
    fake.add_post(PAGE, "1001_1", T - 600, "post")
    fake.add_comment(PAGE, "1001_1", "c1", T - 60, "rude", PARENT)

    with pytest.raises(ConnectorError, match="moderation is off"):
        connector.hide(account(fake), "c1")
    connector.hide(account(fake, moderation="hide"), "c1")

    assert fake.comments["c1"]["is_hidden"] is True
    (hide,) = fake.requests
    assert (hide.method, hide.path, hide.body["is_hidden"]) == ("POST", "/v21.0/c1", "true")
    assert all(r.method != "DELETE" for r in fake.requests)
